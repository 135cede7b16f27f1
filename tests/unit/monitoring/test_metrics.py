"""GET /metrics: the exposition parses, its figures are the database's, and it is guarded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Job, JobStatus
from scheduler.models import Schedule
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db


def scrape(client: Client | None = None, **headers: str) -> dict[str, dict[tuple, float]]:
    """{metric name: {sorted label items: value}} of one scrape."""
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    figures: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            figures.setdefault(sample.name, {})[key] = sample.value
    return figures


def finished(job: Job, status: str, seconds: float, ago: timedelta = timedelta(0)) -> Job:
    end = timezone.now() - ago
    Job.objects.filter(pk=job.pk).update(
        status=status, started_at=end - timedelta(seconds=seconds), finished_at=end
    )
    return job


def test_the_figures_are_the_databases(settings, make_schedule):
    settings.JOBDECK_QUEUE_CLUSTERS = {"reports": "jobdeck-reports"}
    make_job(JobStatus.PENDING)
    make_job(JobStatus.PENDING)
    late = make_job(JobStatus.PENDING, queue="reports")
    Job.objects.filter(pk=late.pk).update(queued_at=timezone.now() - timedelta(seconds=120))
    make_job(JobStatus.RUNNING, queue="reports")
    make_job(JobStatus.DRAFT)
    for seconds in (1, 2, 3, 4):
        finished(make_job(JobStatus.RUNNING), JobStatus.COMPLETED, seconds)
    finished(make_job(JobStatus.RUNNING), JobStatus.FAILED, 10)
    finished(make_job(JobStatus.RUNNING), JobStatus.COMPLETED, 99, ago=timedelta(hours=2))
    schedule = make_schedule(now=timezone.now())
    Schedule.objects.filter(pk=schedule.pk).update(
        next_run_at=timezone.now() - timedelta(seconds=90)
    )

    m = scrape()

    jobs = m["jobdeck_jobs"]
    key = lambda status, queue: (("job_type", "demo.steps"), ("queue", queue), ("status", status))  # noqa: E731
    assert jobs[key("pending", "default")] == 2
    assert jobs[key("pending", "reports")] == 1
    assert jobs[key("running", "reports")] == 1
    assert jobs[key("draft", "default")] == 1
    assert (
        sum(jobs.values()) == Job.objects.filter(status__in=["draft", "pending", "running"]).count()
    )
    assert m["jobdeck_queue_pending"] == {(("queue", "default"),): 2, (("queue", "reports"),): 1}
    assert m["jobdeck_queue_running"] == {(("queue", "default"),): 0, (("queue", "reports"),): 1}
    oldest = m["jobdeck_queue_oldest_pending_age_seconds"]
    assert 119 <= oldest[(("queue", "reports"),)] < 180
    assert 0 <= oldest[(("queue", "default"),)] < 60
    done = m["jobdeck_jobs_finished"]
    assert done[(("job_type", "demo.steps"), ("status", "completed"))] == 4  # not the 2 h old one
    assert done[(("job_type", "demo.steps"), ("status", "failed"))] == 1
    durations = m["jobdeck_job_duration_seconds"]
    # 1, 2, 3, 4 and 10 seconds: percentile_cont's interpolation on both databases.
    assert durations[(("job_type", "demo.steps"), ("quantile", "0.5"))] == pytest.approx(
        3, abs=0.01
    )
    assert durations[(("job_type", "demo.steps"), ("quantile", "0.9"))] == pytest.approx(
        7.6, abs=0.01
    )
    assert 89 <= m["jobdeck_schedule_lag_seconds"][(("schedule", schedule.name),)] < 150
    assert m["jobdeck_cluster_up"][(("cluster", "jobdeck-reports"),)] == 1  # its running job
    assert m["jobdeck_cluster_heartbeat_age_seconds"][(("cluster", "jobdeck-reports"),)] < 60
    assert m["jobdeck_clusters_alive"][()] >= 1
    assert m["jobdeck_scrape_duration_seconds"][()] > 0


def test_a_scrape_costs_the_same_queries_for_10_and_100_jobs():
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            scrape()
        return len(ctx.captured_queries)

    for _ in range(10):
        make_job(JobStatus.PENDING)
    ten = queries()
    for _ in range(90):
        finished(make_job(JobStatus.RUNNING), JobStatus.COMPLETED, 1)
    assert queries() == ten


def test_without_a_token_only_allowed_addresses_may_scrape(settings):
    assert Client().get("/metrics").status_code == 200  # the test client is 127.0.0.1
    response = Client(REMOTE_ADDR="10.1.2.3").get("/metrics")
    assert response.status_code == 403
    assert response.json() == {"detail": "Metrics are served to JOBDECK_METRICS_ALLOWED_IPS only."}
    settings.JOBDECK_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client().get("/metrics").status_code == 403


def test_with_a_token_every_scrape_must_carry_it(settings):
    settings.JOBDECK_METRICS_TOKEN = "t0ken"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = Client(REMOTE_ADDR="10.1.2.3")
    assert "jobdeck_queue_pending" in scrape(ok, HTTP_AUTHORIZATION="Bearer t0ken")
    assert Client().post("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").status_code == 405
