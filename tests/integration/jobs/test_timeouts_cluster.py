"""Per-job timeouts on a real cluster: the running handler is interrupted, the job
fails (or is retried) "timed out after N s", and its task stops doing work."""

from __future__ import annotations

import time

import pytest

from jobs import services
from jobs.models import Job, JobLog, JobStatus, Task, TaskStatus
from tests.support import timeout_jobtypes
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Loops for two minutes unless stopped, writing progress and a log line every 0.1 s and
# swallowing every Exception.
BUSY = {"job_type": "timeouts.busy", "config": {"seconds": 120, "every": 0.1}}


def status_of(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def work_written(job: Job) -> tuple[int, int]:
    """(log lines, the task's progress): what the handler has written so far."""
    progress = Task.objects.filter(job=job).values_list("progress_done", flat=True).get()
    return JobLog.objects.filter(job=job).count(), progress


def test_a_job_over_its_timeout_fails_within_timeout_plus_5_s_and_its_task_stops(make_cluster):
    cluster = make_cluster(JOBDECK_JOBTYPE_MODULES=timeout_jobtypes.MODULE)
    job = services.job_create(**BUSY, timeout_seconds=2)
    wait_until(lambda: status_of(job) == JobStatus.RUNNING, 20, 0.02, "the job to start")
    running_since = time.monotonic()
    wait_until(lambda: work_written(job)[1] > 0, 5, 0.05, "the handler to write progress")

    wait_until(lambda: status_of(job) == JobStatus.FAILED, 2 + 5, 0.05, "the timeout")
    assert time.monotonic() - running_since < 2 + 5, cluster.output

    job.refresh_from_db()
    assert job.error.split("\n\n")[0] == "timed out after 2 s", cluster.output
    assert job.started_at is not None and job.finished_at is not None
    assert 2 <= (job.finished_at - job.started_at).total_seconds() < 2 + 5
    task = job.tasks.get()
    assert task.status == TaskStatus.FAILED and task.error.startswith("timed out after 2 s")
    assert JobLog.objects.filter(job=job, message="task 1 (work 1) timed out after 2 s").exists()
    # Its task stopped doing work: nothing more is written.
    written = work_written(job)
    time.sleep(2)
    assert work_written(job) == written
    assert "timed out after 2 s; its handler was interrupted" in cluster.output

    # The worker survived it: it runs the next job.
    after = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    wait_until(lambda: status_of(after) == JobStatus.COMPLETED, 20, 0.05, "the next job")


def test_a_timed_out_job_with_attempts_left_is_retried_then_fails_timed_out(make_cluster):
    cluster = make_cluster(JOBDECK_JOBTYPE_MODULES=timeout_jobtypes.MODULE)
    job = services.job_create(**BUSY, timeout_seconds=1, max_attempts=2)

    wait_until(lambda: status_of(job) == JobStatus.FAILED, 30, 0.05, "both attempts to time out")
    job.refresh_from_db()
    assert job.attempts == 2, cluster.output
    assert job.error.split("\n\n")[0] == "timed out after 1 s"
    assert JobLog.objects.filter(
        job=job, message__startswith="attempt 1 of 2 failed; retrying in"
    ).exists()
    written = work_written(job)
    time.sleep(1.5)
    assert work_written(job) == written
