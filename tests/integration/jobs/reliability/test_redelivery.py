"""django-q2 redelivers a message still unacknowledged after `retry` seconds: harmless.

django-q2 locks a message for `retry` seconds when its pusher takes it, not when a
worker starts it. A message that waited in a cluster's local queue behind a busy
worker therefore expires while its job is still running, and another cluster takes
it again. The redelivered copy must find the job not pending and do nothing.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from jobs import services
from jobs.models import Job, JobStatus
from tests.support.cluster import wait_until
from tests.support.reliability import final, status_of, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The smallest window the start-up check allows for a 14 s timeout: 14 * 1.1 + 5 ≤ 21.
Q_TIMEOUT, Q_RETRY = 14, 21
JOB_SECONDS = 12


def message_lock(job_id: int) -> datetime | None:
    """When the broker message waking `job_id` may next be delivered (None once acked)."""
    for row in OrmQ.objects.all():
        if SignedPackage.loads(row.payload).get("name") == f"job-{job_id}":
            return row.lock
    return None


def test_a_message_redelivered_while_its_job_runs_is_a_no_op_and_the_work_runs_once(
    start_cluster, side_effects, measure
):
    # One worker, one job at a time (whatever JOBDECK_WORKER_THREADS the suite runs
    # with), a one-second drain budget: each message runs just its own job, and the
    # second message waits in the local queue (already locked) behind the first.
    env = dict(
        Q_WORKERS="1", Q_TIMEOUT=str(Q_TIMEOUT), Q_RETRY=str(Q_RETRY), JOBDECK_WORKER_THREADS="1"
    )
    first = start_cluster(JOBDECK_DRAIN_SECONDS="1", **env)
    jobs = [
        services.job_create(job_type="reliability.once", config={"seconds": JOB_SECONDS})
        for _ in range(2)
    ]
    created = time.monotonic()
    # The job that runs second started ~12 s after its message was locked; the lock
    # expires at ~21 s, while it still runs until ~24 s.
    wait_until(
        lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], attempts=1).count() == 2,
        JOB_SECONDS + 10,
        0.1,
        "the second job to start",
    )
    late = Job.objects.get(pk__in=[j.pk for j in jobs], status=JobStatus.RUNNING)
    second = start_cluster(**env)

    # django-q2 re-locks the message when it delivers it again: watch its lock.
    first_lock = message_lock(late.pk)
    assert first_lock is not None
    wait_until(lambda: message_lock(late.pk) != first_lock, Q_RETRY, 0.05, "the redelivery")
    status_at_redelivery = status_of(late.pk)
    measure("redelivered_after_seconds", time.monotonic() - created)

    for job in jobs:
        wait_for_status(job.pk, final, JOB_SECONDS + 10, "the jobs to finish")
    assert status_at_redelivery == JobStatus.RUNNING, (first.output, second.output)
    # Both deliveries ran run_job; the one that found the job running did nothing …
    marker = f"processing job-{late.pk} "
    wait_until(lambda: not OrmQ.objects.exists(), Q_RETRY, 0.1, "the queue to drain")
    assert (first.output + second.output).count(marker) == 2, (first.output, second.output)
    assert set(Job.objects.values_list("status", "attempts")) == {(JobStatus.COMPLETED, 1)}
    assert side_effects() == {job.pk: [1] for job in jobs}  # … and its work ran once
    assert "IntegrityError" not in first.output + second.output
