"""In-process runner recovery: re-queued attempts, superseded claims, a dropped connection."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from jobs import runner, services
from jobs.models import Job, JobStatus, TaskStatus
from jobs.worker import execution

pytestmark = pytest.mark.django_db


def test_a_task_that_failed_on_the_first_attempt_runs_again_on_the_automatic_retry(settings):
    settings.JOBDECK_DRAIN_SECONDS = 0
    job = services.job_create(
        job_type="demo.steps",
        config={"steps": 2, "delay": 0, "fail_at": 2, "fail_attempts": 1},
        max_attempts=2,
    )
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert job.tasks.get(position=2).status == TaskStatus.FAILED

    Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
    runner.run_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == (JobStatus.COMPLETED, 2, ""), job.error
    first, second = job.tasks.order_by("position")
    assert (first.status, first.attempts) == (TaskStatus.SUCCEEDED, 1)
    assert (second.status, second.attempts, second.error) == (TaskStatus.SUCCEEDED, 2, "")
    assert second.finished_at >= second.started_at


@pytest.mark.django_db(transaction=True)
def test_a_job_requeued_by_the_sweep_runs_its_lost_task_again_and_completes(side_effects):
    job = services.job_create(job_type="reliability.once", config={"seconds": 0}, max_attempts=2)
    claimed = runner.claim(worker="lost:1", job_id=job.pk)
    assert claimed is not None
    job.tasks.update(status=TaskStatus.RUNNING, started_at=timezone.now())  # killed mid-task
    later = timezone.now() + timedelta(seconds=settings.JOBDECK_STALE_SECONDS + 1)
    assert services.sweep_stale_jobs(now=later) == {"requeued": 1, "failed": 0, "cancelled": 0}
    assert job.tasks.get().status == TaskStatus.FAILED

    Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
    claimed = runner.claim(worker="w:2", job_id=job.pk)
    assert claimed is not None and runner.execute(claimed) == JobStatus.COMPLETED
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result["attempt"]) == (JobStatus.COMPLETED, 2, 2)
    assert side_effects() == {job.pk: [2]}


@pytest.mark.parametrize("fail", [False, True])
def test_a_worker_whose_claim_was_swept_and_taken_over_cannot_finish_the_new_attempt(fail):
    job = services.job_create(job_type="reliability.instant", config={"fail": fail}, max_attempts=3)
    zombie = runner.claim(worker="paused:1", job_id=job.pk)
    later = timezone.now() + timedelta(seconds=settings.JOBDECK_STALE_SECONDS + 1)
    services.sweep_stale_jobs(now=later)
    Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
    current = runner.claim(worker="fresh:2", job_id=job.pk)
    assert zombie is not None and current is not None

    runner.execute(zombie)  # the paused worker wakes up and finishes "its" job

    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker) == (JobStatus.RUNNING, 2, "fresh:2")


@pytest.mark.django_db(transaction=True)
def test_finished_work_is_recorded_across_a_dropped_connection_and_not_run_again(
    side_effects, monkeypatch
):
    record = execution.complete  # the last task's success and the job's completion
    calls: list[int] = []

    def drop_first(*args):
        calls.append(1)
        if len(calls) == 1:  # the database restarts just after the work committed
            raise OperationalError("terminating connection due to administrator command")
        return record(*args)

    monkeypatch.setattr(execution, "complete", drop_first)
    job = services.job_create(job_type="reliability.once", max_attempts=2)
    claimed = runner.claim(worker="w:1", job_id=job.pk)
    assert claimed is not None

    assert runner.execute(claimed) == JobStatus.COMPLETED
    job.refresh_from_db()
    assert (job.status, job.attempts, len(calls)) == (JobStatus.COMPLETED, 1, 2)
    assert job.tasks.get().status == TaskStatus.SUCCEEDED
    assert side_effects() == {job.pk: [1]}
