"""A job waiting behind others on its release says so, in lists and in its status."""

from __future__ import annotations

import pytest

from jobs import runner, services
from tests.support.release_factories import make_release

pytestmark = pytest.mark.django_db


def demo(user, release):
    return services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, user=user, release=release
    )


def test_jobs_queued_behind_a_running_job_on_their_release_say_how_far_back_they_are(
    api_client, user
):
    release = make_release("shop", name="Shop")
    first, second, third = demo(user, release), demo(user, release), demo(user, release)
    assert runner.claim(worker="w").job.pk == first.pk

    rows = {r["id"]: r for r in api_client.get("/api/jobs/").json()["results"]}
    assert rows[first.pk]["waiting_reason"] is None
    assert rows[second.pk]["waiting_reason"].startswith(
        f"waiting, 1st behind job #{first.pk} on release Shop"
    )
    assert rows[third.pk]["waiting_reason"].startswith(
        f"waiting, 2nd behind job #{first.pk} on release Shop"
    )
    status = api_client.get(f"/api/jobs/{third.pk}/status/").json()
    assert status["waiting_reason"] == rows[third.pk]["waiting_reason"]


def test_the_waiting_reasons_of_a_page_cost_the_same_queries_for_5_and_50_jobs(
    api_client, user, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    release = make_release("big")
    for _ in range(5):
        demo(user, release)
    with CaptureQueriesContext(connection) as five:
        api_client.get("/api/jobs/?page_size=50")
    for _ in range(45):
        demo(user, release)
    with django_assert_max_num_queries(len(five)):
        assert len(api_client.get("/api/jobs/?page_size=50").json()["results"]) == 50
