"""Lists and details run a constant number of queries, whatever the number of rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.models import JobStatus
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db

DEMO = {"job_type": "demo.steps", "config": {"steps": 3, "delay": 0}}


def queries_for(client, url: str) -> int:
    client.get(url)  # warm per-user caches (permissions) like a long-lived client would
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "query", ["", "?status=pending,failed", "?created_by=alice", "?job_type=demo.steps"]
)
def test_the_jobs_list_runs_the_same_queries_for_5_and_for_50_rows(
    api_client, user, query, django_assert_max_num_queries
):
    services.job_bulk_create(specs=[DEMO] * 5, user=user)
    url = f"/api/jobs/{query}{'&' if query else '?'}page_size=50"
    five = queries_for(api_client, url)

    services.job_bulk_create(specs=[DEMO] * 45, user=user)
    fifty = queries_for(api_client, url)

    assert five == fifty
    with django_assert_max_num_queries(2):
        assert len(api_client.get(url).json()["results"]) == 50


def test_a_managers_list_runs_the_same_queries_for_5_and_for_50_rows(
    manager_client, user, other_user
):
    services.job_bulk_create(specs=[DEMO] * 5, user=user)
    five = queries_for(manager_client, "/api/jobs/?page_size=50")
    services.job_bulk_create(specs=[DEMO] * 45, user=other_user)

    assert queries_for(manager_client, "/api/jobs/?page_size=50") == five


def test_the_wizard_list_runs_constant_queries(api_client, user):
    for _ in range(5):
        make_job(JobStatus.DRAFT, user=user)
    five = queries_for(api_client, "/api/wizard/jobs/?page_size=50")
    for _ in range(45):
        make_job(JobStatus.DRAFT, user=user)

    assert queries_for(api_client, "/api/wizard/jobs/?page_size=50") == five


def test_a_job_detail_runs_the_same_queries_for_3_and_for_100_tasks(
    api_client, user, django_assert_num_queries
):
    small = make_job(steps=3, user=user)
    big = make_job(steps=100, user=user)

    assert queries_for(api_client, f"/api/jobs/{small.pk}/") == queries_for(
        api_client, f"/api/jobs/{big.pk}/"
    )
    # The job with its owner, its tasks, its audit trail, its parents and children;
    # whether a flow rule is set (the job is pending: its waiting reason).
    with django_assert_num_queries(5):
        api_client.get(f"/api/jobs/{big.pk}/")
