"""The claim statements pick exactly the jobs Job.objects.runnable() says are runnable,
in its order (priority, then FIFO), over random sets of jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import engine
from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db

QUEUES = ["default"]

job_specs = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from([JobStatus.PENDING] * 3 + [JobStatus.RUNNING, "completed"]),
            "priority": st.integers(-2, 2),
            "due": st.sampled_from([None, "past", "future"]),
            "queue": st.sampled_from(["default", "default", "reports"]),
            "lock": st.sampled_from([None, None, "a", "b", "release:1"]),
        }
    ),
    max_size=14,
)


def _make(specs: list[dict]) -> list[int]:
    now = timezone.now()
    when = {None: None, "past": now - timedelta(days=1), "future": now + timedelta(days=1)}
    running_locks: set[str] = set()
    rows = []
    for spec in specs:
        status = spec["status"]
        if status == JobStatus.RUNNING and spec["lock"] is not None:
            if spec["lock"] in running_locks:  # the database allows one per key
                status = JobStatus.PENDING
            running_locks.add(spec["lock"])
        rows.append(
            Job(
                job_type="demo.steps",
                config={"steps": 1, "delay": 0},
                status=status,
                priority=spec["priority"],
                run_after=when[spec["due"]],
                queue=spec["queue"],
                lock=spec["lock"],
                lock_slot=0 if status == JobStatus.RUNNING and spec["lock"] else None,
                attempts=1 if status != JobStatus.PENDING else 0,
            )
        )
    return [job.pk for job in Job.objects.bulk_create(rows)]


def _expected() -> int | None:
    return (
        Job.objects.runnable(queues=QUEUES)
        .order_by("-priority", "pk")
        .values_list("pk", flat=True)
        .first()
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=job_specs, named=st.integers(0, 13))
def test_claims_take_exactly_the_runnable_jobs_in_priority_then_fifo_order(specs, named):
    Job.objects.all().delete()
    ids = _make(specs)
    if ids:
        # claim_job: the named job is claimed if and only if it is runnable.
        target = ids[named % len(ids)]
        runnable = set(Job.objects.runnable(queues=QUEUES).values_list("pk", flat=True))
        claimed = engine.claim(worker="property:1", queues=QUEUES, job_id=target)
        assert (claimed is not None) == (target in runnable)
    # claim_next: one runnable job after another, as runnable() orders them, then none.
    for _ in range(len(ids) + 1):
        expected = _expected()
        claimed = engine.claim(worker="property:1", queues=QUEUES)
        assert (claimed.job.pk if claimed else None) == expected
        if claimed is None:
            break
        job = Job.objects.get(pk=claimed.job.pk)
        assert (job.status, job.worker) == (JobStatus.RUNNING, "property:1")
