"""Batches (engine.settle_and_claim): a threaded worker completes the jobs its threads
finished and claims as many as it has threads free, in one statement and one commit."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from jobs import engine, flow_changes, services
from jobs.models import FlowScope, Job, JobDependency, JobLog, JobStatus, Task, TaskStatus

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "batch:1"
QUEUES = ["default"]


def pending(n: int, **fields) -> list[Job]:
    """`n` new pending jobs; `fields` set on their rows (a lock key, say)."""
    jobs = [
        services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
        for _ in range(n)
    ]
    if fields:
        Job.objects.filter(pk__in=[j.pk for j in jobs]).update(**fields)
    return jobs


def finished(claim: engine.Claim, line: str = "done") -> tuple[engine.Completion, list]:
    """The claimed job's one task succeeded, with a log line still buffered."""
    task = claim.tasks[-1]
    completion = engine.Completion(
        job_id=claim.job.pk,
        attempt=claim.job.attempts,
        task_id=task.pk,
        task_result={"ok": claim.job.pk},
        job_result={"job": claim.job.pk},
        progress=len(claim.tasks),
    )
    return completion, [(task.pk, timezone.now(), 20, line)]


def test_a_batch_claims_the_most_urgent_jobs_each_with_its_first_task_started():
    jobs = pending(5)
    urgent = pending(1, priority=5)[0]

    claims = engine.settle_and_claim([], worker=WORKER, queues=QUEUES, limit=3)

    assert [c.job.pk for c in claims] == [urgent.pk, jobs[0].pk, jobs[1].pk]
    for claim in claims:
        assert claim.started_task_id == claim.tasks[0].pk
        assert claim.tasks[0].status == TaskStatus.RUNNING
        job = Job.objects.get(pk=claim.job.pk)
        assert (job.status, job.worker, job.attempts) == (JobStatus.RUNNING, WORKER, 1)
        assert Task.objects.get(pk=claim.started_task_id).status == TaskStatus.RUNNING
    left = Job.objects.filter(status=JobStatus.PENDING).values_list("pk", flat=True)
    assert sorted(left) == [jobs[2].pk, jobs[3].pk, jobs[4].pk]


def test_a_lock_key_never_runs_more_jobs_than_its_limit_however_large_the_batch():
    a1, a2, a3 = pending(3, lock="a", lock_limit=2)
    b1 = pending(1, lock="b")[0]

    first = engine.settle_and_claim([], worker=WORKER, queues=QUEUES, limit=10)
    if connection.vendor == "postgresql":
        # One statement, one snapshot: a key gives a batch its head only.
        assert [c.job.pk for c in first] == [a1.pk, b1.pk]
    else:  # one claim after another in the batch's transaction, as claim_next would
        assert [c.job.pk for c in first] == [a1.pk, a2.pk, b1.pk]
    engine.settle_and_claim([], worker=WORKER, queues=QUEUES, limit=10)

    running = Job.objects.filter(lock="a", status=JobStatus.RUNNING)
    assert sorted(running.values_list("pk", flat=True)) == [a1.pk, a2.pk]
    assert sorted(running.values_list("lock_slot", flat=True)) == [0, 1]
    assert Job.objects.get(pk=a3.pk).status == JobStatus.PENDING


def test_a_batch_settles_each_job_with_its_logs_and_claims_the_next_ones():
    pending(6)
    claims = engine.settle_and_claim([], worker=WORKER, queues=QUEUES, limit=3)
    done = [finished(c, f"line of #{c.job.pk}") for c in claims]

    following = engine.settle_and_claim(done, worker=WORKER, queues=QUEUES, limit=3)

    assert len(following) == 3
    for claim in claims:
        job = Job.objects.get(pk=claim.job.pk)
        assert (job.status, job.result, job.progress_done) == (
            JobStatus.COMPLETED,
            {"job": job.pk},
            1,
        )
        assert job.finished_at is not None and job.heartbeat_at is None
        task = Task.objects.get(pk=claim.tasks[-1].pk)
        assert (task.status, task.result) == (TaskStatus.SUCCEEDED, {"ok": job.pk})
        assert list(JobLog.objects.filter(job=job).values_list("message", flat=True)) == [
            f"line of #{job.pk}"
        ]
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 3


def test_a_batch_completes_none_of_the_jobs_whose_claim_was_lost():
    pending(2)
    claims = engine.settle_and_claim([], worker=WORKER, queues=QUEUES, limit=2)
    kept, lost = claims[0], claims[1]
    # The lost job was swept and claimed again: a new attempt holds it.
    Job.objects.filter(pk=lost.job.pk).update(attempts=2)

    engine.settle_and_claim([finished(kept), finished(lost)], worker=WORKER, queues=QUEUES, limit=0)

    assert Job.objects.get(pk=kept.job.pk).status == JobStatus.COMPLETED
    job = Job.objects.get(pk=lost.job.pk)
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 2)
    assert Task.objects.get(pk=lost.tasks[-1].pk).status == TaskStatus.RUNNING


def test_two_parents_settled_in_one_batch_release_their_common_child_once():
    left, right = pending(2)
    child = services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, depends_on=[left.pk, right.pk]
    )
    assert Job.objects.get(pk=child.pk).waiting_on == 2
    claims = engine.settle_and_claim([], worker=WORKER, queues=QUEUES, limit=5)
    assert {c.job.pk for c in claims} == {left.pk, right.pk}  # the child waits

    again = engine.settle_and_claim(
        [finished(c) for c in claims], worker=WORKER, queues=QUEUES, limit=5
    )

    assert [c.job.pk for c in again] == [child.pk]  # released and claimed in the same round
    assert JobDependency.objects.filter(child=child, settled=True).count() == 2
    assert Job.objects.get(pk=child.pk).waiting_on == 0


def test_with_a_concurrency_limit_set_a_batch_takes_no_more_than_the_limit_allows():
    pending(5)
    flow_changes.update(scope=FlowScope.QUEUE, name="default", changes={"concurrency_limit": 2})

    claims = engine.settle_and_claim([], worker=WORKER, queues=QUEUES, limit=5)

    assert len(claims) == 2
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 2
    more = engine.settle_and_claim([finished(claims[0])], worker=WORKER, queues=QUEUES, limit=5)
    assert len(more) == 1  # one slot freed
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 2
