"""The workers page and the worker presence it reads (jobs.worker.heartbeat.announce)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Job, JobStatus, WorkerProcess
from jobs.worker import heartbeat
from tests.support.admin_helpers import client_for

pytestmark = pytest.mark.django_db


def worker(name: str, *, cluster_pid=100, seen=None, host="box", **fields) -> WorkerProcess:
    now = timezone.now()
    return WorkerProcess.objects.create(
        name=name,
        host=host,
        pid=int(name.rsplit(":", 1)[1]),
        cluster="jobdeck",
        cluster_pid=cluster_pid,
        cluster_started_at=now - timedelta(hours=2),
        started_at=now - timedelta(minutes=5),
        seen_at=seen or now,
        rss_bytes=50 * 1024 * 1024,
        queues=["default"],
        **fields,
    )


def test_announce_records_this_process_then_refreshes_it_with_one_update(settings):
    heartbeat.announce()
    row = WorkerProcess.objects.get()
    assert row.name == heartbeat.worker_name()
    assert row.rss_bytes and row.rss_bytes > 1_000_000
    assert row.queues == ["default"]
    with CaptureQueriesContext(connection) as queries:
        heartbeat.announce()
    assert len(queries.captured_queries) == 1
    assert WorkerProcess.objects.get().seen_at > row.seen_at


def test_announce_prunes_workers_silent_for_an_hour():
    worker("box:1", seen=timezone.now() - timedelta(hours=2))
    heartbeat.announce()
    assert list(WorkerProcess.objects.values_list("name", flat=True)) == [heartbeat.worker_name()]


def test_the_workers_page_shows_each_cluster_busy_and_idle_workers_and_their_jobs(
    superuser, make_job
):
    worker("box:11")
    worker("box:12")
    worker("box:13", seen=timezone.now() - timedelta(minutes=10))
    job = make_job(JobStatus.RUNNING, superuser)
    Job.objects.filter(pk=job.pk).update(worker="box:11", heartbeat_at=timezone.now())

    response = client_for(superuser).get("/admin/jobs/workers/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "1 cluster running, 1 worker busy, 1 idle" in html
    assert '1 busy</span>, <span class="jd-c-idle">1 idle</span>, 1 gone' in html
    assert f'href="/admin/jobs/job/{job.pk}/change/">#{job.pk} demo.steps</a>' in html
    assert "2 h 0 min" in html  # the cluster's uptime
    assert "100.0 MB" in html  # the live workers' memory
    assert "pid 100" in html


def test_a_running_job_of_a_worker_that_never_announced_itself_is_listed(superuser, make_job):
    job = make_job(JobStatus.RUNNING, superuser)
    Job.objects.filter(pk=job.pk).update(worker="old-host:77")
    html = client_for(superuser).get("/admin/jobs/workers/").content.decode()
    assert "old-host · unregistered workers" in html
    assert f"#{job.pk} demo.steps" in html


def test_others_jobs_are_not_named_to_a_user_who_sees_only_their_own(viewer, user, make_job):
    worker("box:11")
    job = make_job(JobStatus.RUNNING, user)
    Job.objects.filter(pk=job.pk).update(worker="box:11")
    html = client_for(viewer).get("/admin/jobs/workers/").content.decode()
    assert "a job of another user" in html
    assert f"#{job.pk}" not in html


def test_the_workers_page_runs_the_same_queries_for_2_and_20_workers(superuser):
    client = client_for(superuser)
    for i in range(2):
        worker(f"box:{i + 1}")
    with CaptureQueriesContext(connection) as two:
        client.get("/admin/jobs/workers/")
    for i in range(2, 20):
        worker(f"box:{i + 1}", cluster_pid=200)
    with CaptureQueriesContext(connection) as twenty:
        assert client.get("/admin/jobs/workers/").status_code == 200
    assert len(twenty.captured_queries) == len(two.captured_queries)


def test_the_workers_page_needs_the_jobs_view_permission(staff_user):
    assert client_for(staff_user).get("/admin/jobs/workers/").status_code == 403


def test_the_app_list_links_the_workers_page(superuser):
    html = client_for(superuser).get("/admin/jobs/").content.decode()
    assert 'href="/admin/jobs/workers/"' in html
