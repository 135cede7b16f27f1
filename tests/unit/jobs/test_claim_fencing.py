"""A worker that lost its claim stops; a cancel request survives re-queues and sweeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import registry, runner, services
from jobs.models import Job, JobStatus, TaskStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def job_type():
    """A two-task job type whose first task runs `hook(ctx)` (set by the test)."""

    class Hooked(registry.JobType):
        name = "test.hooked"
        hook = staticmethod(lambda ctx: None)

        def tasks(self, config):
            return ["first", "second"]

        def run_task(self, ctx, task):
            if task.position == 1:
                type(self).hook(ctx)
            return {"ran": task.position}

    registry.register(Hooked)
    yield Hooked
    registry.unregister("test.hooked")


def test_a_worker_whose_job_was_swept_and_reclaimed_stops_and_does_not_touch_the_new_attempt(
    job_type, settings
):
    settings.JOBDECK_DRAIN_SECONDS = 0
    job = services.job_create(job_type="test.hooked", max_attempts=2)
    first = runner.claim(worker="A")

    def swept_and_taken_by_b(ctx):
        # While A runs task 1, its heartbeat goes stale: the sweep re-queues, B claims.
        Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        services.sweep_stale_jobs()
        Job.objects.filter(pk=job.pk).update(run_after=None)
        assert runner.claim(worker="B").job.attempts == 2
        job.tasks.filter(position=1).update(status=TaskStatus.RUNNING)  # B started task 1

    job_type.hook = staticmethod(swept_and_taken_by_b)
    assert runner.execute(first) == runner.CLAIM_LOST
    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker) == (JobStatus.RUNNING, 2, "B")
    # A neither marked B's running task succeeded nor started task 2.
    assert list(job.tasks.order_by("position").values_list("status", flat=True)) == [
        TaskStatus.RUNNING,
        TaskStatus.PENDING,
    ]
    assert job.progress_done == 0


def test_a_cancel_requested_before_a_failure_ends_the_job_cancelled_not_requeued(settings):
    settings.JOBDECK_DRAIN_SECONDS = 0

    class CancelThenFail(registry.JobType):
        name = "test.cancel_then_fail"

        def run(self, ctx):
            services.job_cancel(job=ctx.job)
            raise RuntimeError("failed after the cancel request")

    registry.register(CancelThenFail)
    try:
        job = services.job_create(job_type="test.cancel_then_fail", max_attempts=3)
        runner.run_job(job.pk)
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED and job.attempts == 1
    finally:
        registry.unregister("test.cancel_then_fail")


def test_the_sweep_cancels_a_lost_job_that_someone_asked_to_cancel(settings):
    settings.JOBDECK_STALE_SECONDS = 30
    job = services.job_create(
        job_type="demo.steps", config={"steps": 2, "delay": 0}, max_attempts=3
    )
    runner.claim(worker="dead:1")
    services.job_cancel(job=job)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert services.sweep_stale_jobs() == {"requeued": 0, "failed": 0, "cancelled": 1}
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
