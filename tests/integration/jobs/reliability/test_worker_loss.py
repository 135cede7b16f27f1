"""Workers killed or stopped mid-job: the job is recovered, never lost, never stuck running.

Real `qcluster` processes on the test database; the recovery is django-q2's own
`jobdeck.tick` schedule running the stale-heartbeat sweep.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django_q.models import OrmQ

from jobs import services
from jobs.models import Job, JobLog, JobStatus, TaskStatus
from tests.support.cluster import wait_until
from tests.support.reliability import (
    SCHEDULER_CYCLE,
    STALE_SECONDS,
    final,
    status_of,
    sweep_due_once_stale,
    wait_for_status,
    worker_pid,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Kill → recovered: the heartbeat goes stale, then the next scheduler pass runs the tick
# (nominally stale + 30 s; the margin absorbs a guard loop slowed by a loaded machine).
RECOVERY_BOUND = STALE_SECONDS + SCHEDULER_CYCLE + 15


def running(status: str) -> bool:
    return status == JobStatus.RUNNING


def test_a_sigkilled_worker_s_job_with_one_attempt_ends_failed_as_worker_lost_in_bounded_time(
    start_cluster, side_effects, measure
):
    cluster = start_cluster()
    job = services.job_create(job_type="reliability.once", config={"seconds": 60}, max_attempts=1)
    wait_for_status(job.pk, running, 20, "the job to start")
    pid = worker_pid(job.pk)
    assert pid in cluster.worker_pids()

    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    sweep_due_once_stale(job.pk)
    wait_for_status(job.pk, lambda s: s != JobStatus.RUNNING, RECOVERY_BOUND, "the sweep")
    recovered = time.monotonic() - killed
    measure("sigkill_to_failed_seconds", recovered)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED, cluster.output
    assert job.error.startswith("worker lost: no heartbeat from")
    assert job.attempts == 1 and job.finished_at is not None and job.heartbeat_at is None
    assert list(job.tasks.values_list("status", flat=True)) == [TaskStatus.FAILED]
    assert recovered < RECOVERY_BOUND
    assert side_effects() == {}


def test_a_sigkilled_worker_s_job_with_attempts_left_is_requeued_and_its_work_runs_once(
    start_cluster, side_effects, measure
):
    cluster = start_cluster()
    job = services.job_create(
        job_type="reliability.once",
        config={"seconds": 60, "later_seconds": 0.2},
        max_attempts=2,
    )
    wait_for_status(job.pk, running, 20, "the job to start")
    # The worker's background thread writes the line within JOBDECK_LOG_FLUSH_SECONDS
    # while the handler sleeps; a SIGKILL loses only lines younger than that.
    wait_until(
        lambda: JobLog.objects.filter(job=job, message__startswith="attempt 1 started").exists(),
        5,
        0.05,
        "the first attempt's log line",
    )

    os.kill(worker_pid(job.pk), signal.SIGKILL)
    killed = time.monotonic()
    sweep_due_once_stale(job.pk)
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, attempts=2).exists(),
        RECOVERY_BOUND,
        0.1,
        "the second attempt",
    )
    measure("sigkill_to_second_attempt_seconds", time.monotonic() - killed)
    wait_for_status(job.pk, final, 20, "the second attempt to finish")
    measure("sigkill_to_completed_seconds", time.monotonic() - killed)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, cluster.output
    assert job.attempts == 2 and job.result["attempt"] == 2
    assert side_effects() == {job.pk: [2]}
    messages = list(JobLog.objects.filter(job=job).values_list("message", flat=True))
    assert sum("worker lost" in m and "re-queued" in m for m in messages) == 1
    assert sum(m.startswith("attempt ") and " started in pid " in m for m in messages) == 2


def test_a_job_that_kills_its_worker_every_time_ends_failed_after_max_attempts(
    start_cluster, side_effects, measure
):
    # A short django-q2 visibility timeout, so the killed workers' messages are
    # redelivered during the test: they must find the job not pending and do nothing.
    cluster = start_cluster(Q_TIMEOUT="8", Q_RETRY="14")
    job = services.job_create(
        job_type="reliability.once", config={"kill_on_attempts": [1, 2, 3]}, max_attempts=2
    )
    started = time.monotonic()
    for attempt in (1, 2):
        wait_until(
            lambda a=attempt: Job.objects.filter(pk=job.pk, attempts=a).exists(),
            RECOVERY_BOUND + 10,
            0.1,
            f"attempt {attempt}",
        )
        sweep_due_once_stale(job.pk)
    wait_for_status(job.pk, final, RECOVERY_BOUND + 10, "the job to fail")
    measure("self_killing_job_to_failed_seconds", time.monotonic() - started)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED, cluster.output
    assert job.attempts == 2
    assert "worker lost" in job.error
    last = JobLog.objects.filter(job=job).order_by("-pk").first()
    assert last is not None and last.message.endswith("attempts exhausted")
    # The killed workers' messages are redelivered and acknowledged as no-ops: the
    # queue drains and the job stays failed after two attempts.
    wait_until(lambda: not OrmQ.objects.exists(), 30, 0.2, "the broker queue to drain")
    time.sleep(1)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    assert side_effects() == {}
    assert "reincarnated worker" in cluster.output


def test_sigterm_lets_the_running_job_finish_before_the_cluster_exits(
    start_cluster, side_effects, measure
):
    cluster = start_cluster()
    job = services.job_create(job_type="reliability.once", config={"seconds": 4})
    wait_for_status(job.pk, running, 20, "the job to start")

    cluster.signal(signal.SIGTERM)
    signalled = time.monotonic()
    cluster.proc.wait(30)
    measure("sigterm_to_exit_seconds", time.monotonic() - signalled)

    assert cluster.proc.returncode == 0, cluster.output
    assert status_of(job.pk) == JobStatus.COMPLETED
    assert side_effects() == {job.pk: [1]}
    assert not OrmQ.objects.exists()


def test_a_job_still_running_when_the_stop_grace_period_ends_is_requeued_and_runs_once(
    start_cluster, side_effects, measure
):
    first = start_cluster()
    job = services.job_create(
        job_type="reliability.once",
        config={"seconds": 60, "later_seconds": 0.2},
        max_attempts=2,
    )
    wait_for_status(job.pk, running, 20, "the job to start")

    # What a process manager does: SIGTERM, a grace period, then SIGKILL to the group.
    first.signal(signal.SIGTERM)
    time.sleep(2)
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    killed = time.monotonic()
    assert status_of(job.pk) == JobStatus.RUNNING

    second = start_cluster()
    sweep_due_once_stale(job.pk)
    wait_for_status(job.pk, final, RECOVERY_BOUND + 20, "the re-queued job to finish")
    measure("grace_exceeded_to_completed_seconds", time.monotonic() - killed)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, second.output
    assert job.attempts == 2
    assert side_effects() == {job.pk: [2]}


def test_a_job_exceeding_the_django_q2_timeout_ends_failed_with_a_timeout_error(
    start_cluster, side_effects, measure
):
    # The smallest visibility window the start-up check accepts for a 4 s timeout.
    cluster = start_cluster(Q_TIMEOUT="4", Q_RETRY="10")
    job = services.job_create(job_type="reliability.once", config={"seconds": 30}, max_attempts=1)
    wait_for_status(job.pk, running, 20, "the job to start")
    started = time.monotonic()

    wait_for_status(job.pk, final, 15, "the timeout to end the job")
    measure("timeout_to_failed_seconds", time.monotonic() - started)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED, cluster.output
    assert "TimeoutException: Task exceeded maximum timeout value (4 seconds)" in job.error
    assert job.tasks.get().status == TaskStatus.FAILED
    assert side_effects() == {}
    # django-q2 still replaces the worker that timed out.
    wait_until(lambda: "reincarnated worker" in cluster.output, 10, 0.1, "the new worker")
