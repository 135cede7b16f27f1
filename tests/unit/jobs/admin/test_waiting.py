"""The admin says why a job waits behind others on its release."""

from __future__ import annotations

import pytest

from jobs import runner, services
from tests.support.release_factories import make_release

pytestmark = pytest.mark.django_db


def test_the_changelist_and_the_job_page_show_a_jobs_place_in_its_release_queue(admin_client):
    release = make_release("shop", name="Shop")
    first, second = (
        services.job_create(job_type="demo.steps", config={"steps": 1}, release=release)
        for _ in range(2)
    )
    assert runner.claim(worker="w").job.pk == first.pk

    changelist = admin_client.get("/admin/jobs/job/").content.decode()
    assert f"waiting, 1st behind job #{first.pk} on release Shop" in changelist
    page = admin_client.get(f"/admin/jobs/job/{second.pk}/change/").content.decode()
    assert f"waiting, 1st behind job #{first.pk} on release Shop" in page
