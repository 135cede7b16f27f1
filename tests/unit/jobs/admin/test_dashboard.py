"""The dashboard on the admin index and the figures behind it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import dashboard
from jobs.models import Job, JobStatus
from scheduler.dashboard import failing_schedules
from scheduler.models import Schedule
from tests.support.admin_helpers import client_for

pytestmark = pytest.mark.django_db


def finished(job_type: str, seconds: float, status=JobStatus.COMPLETED, ago=timedelta(hours=1)):
    end = timezone.now() - ago
    return Job.objects.create(
        job_type=job_type,
        status=status,
        started_at=end - timedelta(seconds=seconds),
        finished_at=end,
    )


def test_the_admin_index_shows_counts_charts_queue_and_health(boss, make_job):
    make_job(JobStatus.PENDING, boss)
    make_job(JobStatus.FAILED, boss)

    response = client_for(boss).get("/admin/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Jobs dashboard" in html
    assert '<span class="jd-card-count" data-status="pending">1</span>' in html
    assert '<svg class="jd-chart" id="jd-chart-hourly"' in html
    assert '<svg class="jd-chart" id="jd-chart-daily"' in html
    assert "Queue and cluster health" in html and "Slowest job types" in html
    assert 'data-url="/admin/jobs/job/dashboard/"' in html
    assert "jobs/dashboard.js" in html


def test_the_dashboard_fragment_is_served_for_the_refresh(boss):
    response = client_for(boss).get("/admin/jobs/job/dashboard/")

    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "Running jobs" in response.content.decode()


def test_the_dashboard_of_a_staff_user_counts_only_their_own_jobs(viewer, user, make_job):
    make_job(JobStatus.PENDING, viewer)
    make_job(JobStatus.PENDING, user)

    html = client_for(viewer).get("/admin/").content.decode()

    assert '<span class="jd-card-count" data-status="pending">1</span>' in html


def test_a_user_without_the_jobs_admin_gets_the_plain_index(staff_user):
    response = client_for(staff_user).get("/admin/")

    assert response.status_code == 200
    assert "Jobs dashboard" not in response.content.decode()


def test_throughput_counts_completed_and_failed_per_hour_and_day():
    finished("a", 1, ago=timedelta(minutes=5))
    finished("a", 1, JobStatus.FAILED, ago=timedelta(minutes=5))
    finished("a", 1, ago=timedelta(days=3))
    now = timezone.now()

    hourly = dashboard.throughput(Job.objects.all(), unit="hour", periods=24, now=now)
    daily = dashboard.throughput(Job.objects.all(), unit="day", periods=30, now=now)

    assert len(hourly) == 24 and len(daily) == 30
    assert sum(p["completed"] for p in hourly) == 1
    assert sum(p["failed"] for p in hourly) == 1
    assert sum(p["completed"] for p in daily) == 2
    assert sum(p["failed"] for p in daily) == 1
    assert hourly[-1]["start"] <= now


def test_slowest_types_report_median_and_p95_over_the_last_seven_days():
    for seconds in (1, 2, 3, 4, 100):
        finished("slow", seconds)
    finished("fast", 0.5)
    finished("old", 1000, ago=timedelta(days=8))

    rows = dashboard.slowest_types(Job.objects.all())

    assert [r["job_type"] for r in rows] == ["slow", "fast"]
    assert rows[0]["count"] == 5
    assert rows[0]["median"] == pytest.approx(3)
    assert rows[0]["p95"] == pytest.approx(80.8)


def test_queue_reports_depth_and_the_oldest_pending_age(make_job):
    job = make_job(JobStatus.PENDING)
    Job.objects.filter(pk=job.pk).update(queued_at=timezone.now() - timedelta(minutes=10))
    make_job(JobStatus.PENDING)

    figures = dashboard.queue(Job.objects.all())

    assert figures["depth"] == 2
    assert 590 < figures["oldest_age"] < 700


def test_failing_schedules_are_those_whose_last_job_failed(make_job):
    failed = make_job(JobStatus.FAILED)
    ok = make_job(JobStatus.COMPLETED)
    Schedule.objects.create(name="bad", job_type="demo.steps", kind="interval", last_job=failed)
    Schedule.objects.create(name="good", job_type="demo.steps", kind="interval", last_job=ok)

    panel = failing_schedules(None, timezone.now())
    assert [s.name for s in panel["schedules"]] == ["bad"]


def test_cluster_health_reads_heartbeats_and_the_tick_schedule(make_job):
    from django_q.models import Schedule as QSchedule

    make_job(JobStatus.RUNNING, heartbeat_at=timezone.now(), worker="host:1")
    QSchedule.objects.update_or_create(
        name="jobdeck.tick",
        defaults={
            "func": "jobs.runner.tick",
            "schedule_type": QSchedule.MINUTES,
            "minutes": 1,
            "next_run": timezone.now() + timedelta(seconds=30),
        },
    )

    health = dashboard.cluster_health()

    assert health["workers"] == 1
    assert health["heartbeat_age"] < 5
    assert health["scheduler_alive"]
    assert 25 < health["tick_age"] < 35


def test_cluster_health_calls_an_overdue_tick_late():
    from django_q.models import Schedule as QSchedule

    QSchedule.objects.filter(name="jobdeck.tick").update(
        next_run=timezone.now() - timedelta(minutes=10)
    )

    health = dashboard.cluster_health()

    assert not health["scheduler_alive"]
    assert health["last_tick"] is None
    assert 590 < health["tick_overdue"] < 700


def test_the_bar_chart_scales_bars_to_the_largest_value():
    now = timezone.now()
    series = [
        {"start": now, "completed": 4, "failed": 2},
        {"start": now, "completed": 0, "failed": 0},
    ]

    chart = dashboard.bar_chart(series, label_format="%H:00")

    heights = [b["h"] for b in chart["bars"]]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert heights[2:] == [0, 0]
    assert chart["totals"] == {"completed": 4, "failed": 2}
