"""A real qcluster process runs, cancels and recovers jobs."""

from __future__ import annotations

import os
import signal

import pytest
from django.utils import timezone

from jobs import selectors, services
from jobs.models import Job, JobStatus, TaskStatus
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def status_of(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def test_demo_job_runs_to_completion_and_its_logs_can_be_tailed_and_followed(cluster):
    job = services.job_create(job_type="demo.steps", config={"steps": 3, "delay": 0.3})

    wait_until(lambda: status_of(job) == JobStatus.RUNNING, 20, 0.02, "the job to start")
    seen, cursor = [], 0
    while status_of(job) not in (JobStatus.COMPLETED, JobStatus.FAILED):
        for line in selectors.log_after(job.pk, cursor):
            seen.append(line.message)
            cursor = line.pk
    seen += [line.message for line in selectors.log_after(job.pk, cursor)]

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, cluster.output
    assert job.progress == 100
    assert job.started_at <= job.finished_at
    assert set(job.tasks.values_list("status", flat=True)) == {TaskStatus.SUCCEEDED}
    assert seen == [m for i in (1, 2, 3) for m in (f"step {i} of 3 started", f"step {i} done")]
    assert [line.message for line in selectors.log_tail(job.pk, 2)] == [
        "step 3 of 3 started",
        "step 3 done",
    ]


def test_a_line_a_running_task_logged_shows_in_the_log_before_the_task_ends(cluster):
    # The worker buffers log lines; its background thread writes them within
    # JOBDECK_LOG_FLUSH_SECONDS even while the handler sleeps.
    job = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 4})
    wait_until(lambda: status_of(job) == JobStatus.RUNNING, 20, 0.02, "the job to start")
    wait_until(
        lambda: [line.message for line in selectors.log_tail(job.pk, 5)] == ["step 1 of 1 started"],
        3,
        0.05,
        "the first line to be written",
    )
    assert status_of(job) == JobStatus.RUNNING


def test_a_running_job_cancelled_from_another_process_ends_cancelled(cluster):
    job = services.job_create(job_type="demo.steps", config={"steps": 5, "delay": 1})
    wait_until(lambda: status_of(job) == JobStatus.RUNNING, 20, 0.02, "the job to start")

    services.job_cancel(job=job, via="test")

    wait_until(lambda: status_of(job) == JobStatus.CANCELLED, 10, 0.05, "the cancel")
    statuses = list(job.tasks.order_by("position").values_list("status", flat=True))
    assert statuses[0] == TaskStatus.CANCELLED or TaskStatus.CANCELLED in statuses
    assert statuses[-1] == TaskStatus.SKIPPED
    assert TaskStatus.RUNNING not in statuses and TaskStatus.PENDING not in statuses


def test_a_job_whose_worker_is_killed_is_recovered_by_the_periodic_sweep(cluster):
    from django_q.models import Schedule

    job = services.job_create(
        job_type="demo.steps", config={"steps": 3, "delay": 30}, max_attempts=1
    )
    wait_until(lambda: status_of(job) == JobStatus.RUNNING, 20, 0.02, "the job to start")
    job.refresh_from_db()
    pid = int(job.worker.rsplit(":", 1)[1])
    assert pid in cluster.worker_pids()

    os.kill(pid, signal.SIGKILL)
    # The sweep is django-q2's own schedule; bring its next run forward instead of
    # waiting for the minute (the guard checks schedules every 30 seconds).
    Schedule.objects.filter(name="jobdeck.tick").update(next_run=timezone.now())

    wait_until(lambda: status_of(job) != JobStatus.RUNNING, 60, 0.5, "the sweep")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "worker lost" in job.error
    assert job.finished_at is not None
