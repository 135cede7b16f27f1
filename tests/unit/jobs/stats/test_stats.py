"""Statistics per job type, queue and schedule: runs, failure rate, duration percentiles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import stats
from jobs.models import Job, JobStatus
from scheduler import services as schedule_services
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_figures(settings):
    settings.JOBDECK_STATS_CACHE_SECONDS = 0  # every request computes (caching: below)


@pytest.fixture
def manager_client(manager):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(manager)
    return client


def finished(status, seconds, *, ago=timedelta(hours=1), **fields):
    job = make_job(status, **fields)
    end = timezone.now() - ago
    Job.objects.filter(pk=job.pk).update(
        finished_at=end, started_at=end - timedelta(seconds=seconds)
    )
    return job


@pytest.fixture
def history(user):
    for seconds in (1, 2, 3, 4, 10):
        finished(JobStatus.COMPLETED, seconds, user=user)
    finished(JobStatus.FAILED, 20, user=user)
    finished(JobStatus.CANCELLED, 0, user=user)
    finished(JobStatus.COMPLETED, 100, user=user, ago=timedelta(days=3))  # 7d and 30d only
    finished(JobStatus.COMPLETED, 100, user=user, ago=timedelta(days=40))  # in no window
    make_job(JobStatus.RUNNING, user=user)  # not finished: not counted


def test_runs_failure_rate_and_percentiles_per_job_type(history, manager):
    data = stats.job_stats(user=manager, by="job-types", window="24h")

    (row,) = data["results"]
    assert (row["key"], row["runs"], row["completed"], row["failed"], row["cancelled"]) == (
        "demo.steps", 7, 5, 1, 1
    )  # fmt: skip
    assert row["failure_rate"] == round(1 / 6, 4)
    # 0, 1, 2, 3, 4, 10, 20 seconds, interpolated as percentile_cont does.
    assert row["duration_seconds"] == {"p50": 3.0, "p90": 14.0, "p95": 17.0, "p99": 19.4}


def test_the_windows_count_what_finished_in_them(history, manager):
    runs = {
        w: stats.job_stats(user=manager, by="queues", window=w)["results"][0]["runs"]
        for w in stats.WINDOWS
    }
    assert runs == {"24h": 7, "7d": 8, "30d": 8}


def test_an_owner_sees_figures_of_their_own_jobs_only(history, other_user):
    assert stats.job_stats(user=other_user, by="job-types", window="30d")["results"] == []


def test_per_schedule_with_its_name(manager):
    schedule = schedule_services.schedule_create(
        name="every 5", job_type="demo.steps", config={"steps": 1}, kind="interval",
        interval_minutes=5,
    )  # fmt: skip
    finished(JobStatus.FAILED, 2, schedule=schedule, user=manager)
    finished(JobStatus.COMPLETED, 2, user=manager)  # no schedule: not a row

    (row,) = stats.job_stats(user=manager, by="schedules", window="24h")["results"]

    assert (row["key"], row["label"], row["runs"], row["failure_rate"]) == (
        schedule.pk, "every 5", 1, 1.0
    )  # fmt: skip


def test_the_api_answers_json_at_constant_queries(history, manager_client):
    response = manager_client.get("/api/stats/job-types/?window=7d")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["window"] == "7d" and body["results"][0]["runs"] == 8

    with CaptureQueriesContext(connection) as ctx:
        manager_client.get("/api/stats/queues/")
    assert len(ctx.captured_queries) <= 2


@pytest.mark.parametrize(
    "url, status", [("/api/stats/job-types/?window=1y", 400), ("/api/stats/queues/?x=1", 400),
                    ("/api/stats/users/", 404)]
)  # fmt: skip
def test_bad_input_is_a_json_4xx(api_client, url, status):
    response = api_client.get(url)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"


def test_figures_are_cached_per_visibility_for_a_while(history, manager, user, settings):
    from django.core.cache import cache

    cache.clear()
    settings.JOBDECK_STATS_CACHE_SECONDS = 60
    first = stats.cached_job_stats(user=manager, by="job-types", window="24h")
    finished(JobStatus.FAILED, 1, user=user)

    assert stats.cached_job_stats(user=manager, by="job-types", window="24h") == first
    assert (
        stats.cached_job_stats(user=user, by="job-types", window="24h")["results"][0]["runs"] == 8
    )  # the owner's own key: computed now
    cache.clear()
