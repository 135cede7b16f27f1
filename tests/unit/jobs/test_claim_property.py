"""The claim statements pick exactly the jobs Job.objects.runnable() says are runnable,
in its order (priority, then FIFO), over random sets of jobs (some waiting for a parent)."""

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
            "waiting_on": st.sampled_from([0, 0, 0, 1]),  # a parent not yet completed
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
                waiting_on=spec["waiting_on"] if status == JobStatus.PENDING else 0,
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


# --- with flow rules set (the governed claim) ----------------------------------------

TYPES = ["demo.steps", "maintenance.cleanup"]

flow_jobs = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from([JobStatus.PENDING] * 3 + [JobStatus.RUNNING]),
            "priority": st.integers(-1, 1),
            "due": st.sampled_from([None, None, "past", "future"]),
            "queue": st.sampled_from(["default", "default", "reports"]),
            "job_type": st.sampled_from(TYPES),
            "lock": st.sampled_from([None, None, "a", "b"]),
            "lock_limit": st.sampled_from([1, 2]),
            "waiting_on": st.sampled_from([0, 0, 0, 1]),
        }
    ),
    max_size=12,
)
maybe_limit = st.one_of(st.none(), st.integers(1, 3))
flow_rules = st.fixed_dictionaries(
    {
        "reports_paused": st.booleans(),
        "type_paused": st.sampled_from([False, False, False, True]),
        "type_limit": maybe_limit,
        "queue_limit": maybe_limit,
        "type_rate": maybe_limit,
        "queue_rate": maybe_limit,
        "recent_type_starts": st.integers(0, 3),
        "recent_queue_starts": st.integers(0, 3),
    }
)


def _make_flow(specs: list[dict], rules: dict) -> None:
    from jobs import flow_changes
    from jobs.models import FlowScope, FlowSetting, RateSlot

    FlowSetting.objects.all().delete()
    RateSlot.objects.all().delete()
    now = timezone.now()
    when = {None: None, "past": now - timedelta(days=1), "future": now + timedelta(days=1)}
    slots: dict[str, int] = {}
    rows = []
    for spec in specs:
        status, lock = spec["status"], spec["lock"]
        slot = None
        if status == JobStatus.RUNNING and lock is not None:
            slot = slots.get(lock, 0)
            if slot >= spec["lock_limit"]:
                status, slot = JobStatus.PENDING, None
            else:
                slots[lock] = slot + 1
        rows.append(
            Job(
                job_type=spec["job_type"],
                config={"steps": 1, "delay": 0},
                status=status,
                priority=spec["priority"],
                run_after=when[spec["due"]],
                queue=spec["queue"],
                lock=lock,
                lock_limit=spec["lock_limit"],
                lock_slot=slot,
                attempts=1 if status == JobStatus.RUNNING else 0,
                started_at=now if status == JobStatus.RUNNING else None,
                waiting_on=spec["waiting_on"] if status == JobStatus.PENDING else 0,
            )
        )
    Job.objects.bulk_create(rows)
    changes_type = {
        "paused": rules["type_paused"],
        "concurrency_limit": rules["type_limit"],
        "rate_limit": rules["type_rate"],
        "rate_period_seconds": 60 if rules["type_rate"] else None,
    }
    changes_queue = {
        "concurrency_limit": rules["queue_limit"],
        "rate_limit": rules["queue_rate"],
        "rate_period_seconds": 60 if rules["queue_rate"] else None,
    }
    flow_changes.update(scope=FlowScope.TYPE, name="demo.steps", changes=changes_type)
    flow_changes.update(scope=FlowScope.QUEUE, name="default", changes=changes_queue)
    FlowSetting.objects.create(
        scope=FlowScope.QUEUE, name="reports", paused=rules["reports_paused"]
    )
    for scope, n in (
        ("type:demo.steps", rules["recent_type_starts"]),
        ("queue:default", rules["recent_queue_starts"]),
    ):
        RateSlot.objects.bulk_create(
            RateSlot(scope=scope, slot=i, started_at=now - timedelta(seconds=5)) for i in range(n)
        )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=flow_jobs, rules=flow_rules)
def test_governed_claims_take_exactly_the_jobs_the_flow_rules_allow(specs, rules):
    Job.objects.all().delete()
    _make_flow(specs, rules)
    queues = ["default", "reports"]
    for _ in range(len(specs) + 1):
        expected = (
            Job.objects.runnable(queues=queues)
            .order_by("-priority", "pk")
            .values_list("pk", flat=True)
            .first()
        )
        claimed = engine.claim(worker="property:1", queues=queues)
        assert (claimed.job.pk if claimed else None) == expected, rules
        if claimed is None:
            break


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=job_specs, batch=st.integers(1, 5))
def test_batch_claims_take_the_first_runnable_jobs_in_priority_then_fifo_order(specs, batch):
    # claim_next with a LIMIT: each batch is the head of runnable() as it stands, `batch` at most
    # (runnable() holds one job per lock key: a key gives at most its head to a batch).
    Job.objects.all().delete()
    ids = _make(specs)
    for _ in range(len(ids) + 1):
        expected = list(
            Job.objects.runnable(queues=QUEUES)
            .order_by("-priority", "pk")
            .values_list("pk", flat=True)[:batch]
        )
        claims = engine.settle_and_claim([], worker="property:1", queues=QUEUES, limit=batch)
        assert [c.job.pk for c in claims] == expected
        if not claims:
            break
        running = Job.objects.filter(pk__in=expected, status=JobStatus.RUNNING, worker="property:1")
        assert running.count() == len(expected)
