"""Flow control in one process: what the claim takes under paused queues and types,
concurrency and rate limits, lock keys with a limit, and unique keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from jobs import engine, flow, flow_changes, registry, selectors, services
from jobs.engine import queries
from jobs.models import AuditEvent, FlowScope, Job, JobStatus, RateSlot
from tests.support import flow_jobtypes

pytestmark = pytest.mark.django_db

Q = ["default"]


@pytest.fixture
def keyed_type():
    registry.register(flow_jobtypes.Keyed)
    yield flow_jobtypes.keyed()
    registry.unregister(flow_jobtypes.Keyed.name)


def steps(n: int = 1, **fields) -> list[Job]:
    return [
        services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0}, **fields)
        for _ in range(n)
    ]


def claim_all() -> list[Job]:
    claimed = []
    while (c := engine.claim(worker="w:1", queues=Q)) is not None:
        claimed.append(c.job)
    return claimed


def finish(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, finished_at=timezone.now())


def set_type(**changes) -> None:
    flow_changes.update(scope=FlowScope.TYPE, name="demo.steps", changes=changes)


def set_queue(**changes) -> None:
    flow_changes.update(scope=FlowScope.QUEUE, name="default", changes=changes)


def test_a_paused_queue_starts_nothing_until_resumed():
    jobs = steps(3)
    flow_changes.pause(scope=FlowScope.QUEUE, name="default")
    assert claim_all() == []
    assert set(Job.objects.runnable(queues=Q)) == set()
    flow_changes.resume(scope=FlowScope.QUEUE, name="default")
    assert [j.pk for j in claim_all()] == [j.pk for j in jobs]


def test_a_paused_type_starts_nothing_and_other_types_still_run():
    steps(2)
    other = services.job_create(job_type="maintenance.cleanup", config={"dry_run": True})
    flow_changes.pause(scope=FlowScope.TYPE, name="demo.steps")
    assert [j.pk for j in claim_all()] == [other.pk]


def test_a_type_concurrency_limit_holds_and_frees_slots_as_jobs_finish():
    steps(5)
    set_type(concurrency_limit=2)
    first = claim_all()
    assert len(first) == 2
    assert sorted(j.type_slot for j in first) == [0, 1]
    finish(first[0])
    again = claim_all()
    assert len(again) == 1 and again[0].type_slot == first[0].type_slot


def test_a_queue_concurrency_limit_counts_every_type_in_the_queue():
    steps(3)
    services.job_create(job_type="maintenance.cleanup", config={"dry_run": True})
    set_queue(concurrency_limit=3)
    assert len(claim_all()) == 3
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 1


def test_a_limit_lowered_below_the_running_count_starts_nothing_more():
    steps(4)
    set_type(concurrency_limit=3)
    assert len(claim_all()) == 3
    set_type(concurrency_limit=1)
    running = list(Job.objects.filter(status=JobStatus.RUNNING))
    finish(running[0])
    assert claim_all() == []  # two still run: over the new limit of one


def test_a_key_limit_of_two_runs_two_per_key_in_fifo_order(keyed_type):
    def make(account):
        return services.job_create(job_type="flow.keyed", config={"account": account})

    a = [make(1) for _ in range(3)]
    b = make(2)
    assert a[0].lock == "account:1" and a[0].lock_limit == 2
    claimed = claim_all()
    assert [j.pk for j in claimed] == [a[0].pk, a[1].pk, b.pk]
    assert sorted(j.lock_slot for j in claimed if j.lock == "account:1") == [0, 1]
    finish(claimed[0])
    assert [j.pk for j in claim_all()] == [a[2].pk]


def test_a_type_rate_limit_starts_n_per_window_then_waits_for_the_window(monkeypatch):
    steps(5)
    set_type(rate_limit=2, rate_period_seconds=10)
    first = claim_all()
    assert len(first) == 2
    assert flow.next_opening(Q) is not None
    pending = Job.objects.filter(status=JobStatus.PENDING).first()
    assert "rate limit" in selectors.waiting_reason(pending)
    # The window passes: the slots' starts are ten seconds old.
    RateSlot.objects.update(started_at=timezone.now() - timedelta(seconds=11))
    assert len(claim_all()) == 2


def test_a_queue_rate_limit_counts_starts_of_every_type():
    steps(2)
    services.job_create(job_type="maintenance.cleanup", config={"dry_run": True})
    set_queue(rate_limit=2, rate_period_seconds=60)
    assert len(claim_all()) == 2


def test_a_key_rate_limit_holds_per_key(keyed_type, monkeypatch):
    monkeypatch.setattr(keyed_type, "concurrency_key_limit", 5)
    monkeypatch.setattr(keyed_type, "key_rate_limit", (1, 60))
    for account in (1, 1, 2):
        services.job_create(job_type="flow.keyed", config={"account": account})
    claimed = claim_all()
    assert sorted(j.lock for j in claimed) == ["account:1", "account:2"]


def test_the_plain_claim_refuses_while_a_rule_is_set():
    steps(1)
    set_queue(paused=True)
    params = {"worker": "w", "queues": Q, "job_id": None, "limit": 1}
    if connection.vendor == "postgresql":
        (rows,) = queries.execute_many(["claim_next"], params)
    else:
        params.update(queues='["default"]', now="2999-01-01")
        rows, _ = queries.execute("claim_next", params)
    assert rows == []


def test_a_waiting_job_names_the_rule_that_holds_it():
    job = steps(2)[1]
    set_queue(paused=True)
    assert selectors.waiting_reason(job) == "queue default is paused"
    set_queue(paused=False)
    set_type(paused=True)
    assert selectors.waiting_reason(job) == "job type demo.steps is paused"
    set_type(paused=False, concurrency_limit=1)
    running = claim_all()
    assert len(running) == 1
    assert selectors.waiting_reason(job) == (
        f"job type demo.steps is at its concurrency limit (1/1 running: #{running[0].pk})"
    )


def test_every_change_is_audited_with_who_and_the_door(django_user_model):
    user = django_user_model.objects.create_superuser("op", "op@example.com", "x")
    flow_changes.pause(scope=FlowScope.QUEUE, name="default", user=user, via="api")
    flow_changes.update(
        scope=FlowScope.TYPE,
        name="demo.steps",
        changes={"concurrency_limit": 3},
        user=user,
        via="cli",
    )
    flow_changes.resume(scope=FlowScope.QUEUE, name="default", user=user, via="admin")
    events = list(
        AuditEvent.objects.order_by("pk").values_list("action", "via", "target_id", "actor")
    )
    assert events == [
        ("paused", "api", "default", user.pk),
        ("changed", "cli", "demo.steps", user.pk),
        ("resumed", "admin", "default", user.pk),
    ]
    assert AuditEvent.objects.get(action="changed").detail == {
        "concurrency_limit": {"old": None, "new": 3}
    }


def test_changes_need_the_manage_queues_permission(django_user_model):
    alice = django_user_model.objects.create_user("alice", password="x")
    with pytest.raises(PermissionDenied):
        flow_changes.pause(scope=FlowScope.QUEUE, name="default", user=alice)


@pytest.mark.parametrize(
    "changes",
    [{"concurrency_limit": 0}, {"rate_limit": "3"}, {"paused": "yes"}, {"bogus": 1}],
)
def test_bad_changes_are_refused_and_change_nothing(changes):
    with pytest.raises(ValidationError):
        set_type(**changes)
    assert not flow.settings_active()


def test_unknown_names_are_refused():
    with pytest.raises(ValidationError):
        flow_changes.pause(scope=FlowScope.QUEUE, name="nope")
    with pytest.raises(ValidationError):
        flow_changes.pause(scope=FlowScope.TYPE, name="no.such.type")


def test_a_unique_key_returns_the_job_holding_it_while_pending_or_running():
    (first,) = steps(1, unique_key="nightly")
    (again,) = steps(1, unique_key="nightly")
    assert again.pk == first.pk and again.existing and not first.existing
    assert Job.objects.count() == 1
    claimed = claim_all()
    assert [j.pk for j in claimed] == [first.pk]
    assert steps(1, unique_key="nightly")[0].pk == first.pk  # running: still held
    finish(first)
    (fresh,) = steps(1, unique_key="nightly")
    assert fresh.pk != first.pk and not fresh.existing


def test_bulk_creation_honours_unique_keys():
    spec = {"job_type": "demo.steps", "config": {"steps": 1, "delay": 0}}
    ids = services.job_bulk_create(
        specs=[spec, {**spec, "unique_key": "k"}, {**spec, "unique_key": "k"}]
    )
    assert ids[1] == ids[2] and ids[0] != ids[1]
    assert ids.existing == {2}
    assert Job.objects.count() == 2


def test_retrying_a_job_whose_key_is_held_again_is_a_clear_error():
    (first,) = steps(1, unique_key="k")
    Job.objects.filter(pk=first.pk).update(status=JobStatus.FAILED, finished_at=timezone.now())
    steps(1, unique_key="k")
    with pytest.raises(ValidationError, match="unique key"):
        services.job_retry(job=Job.objects.get(pk=first.pk))


def test_a_job_type_with_bad_flow_attributes_fails_the_system_check(keyed_type, monkeypatch):
    from jobs.checks import check_job_type_flow

    assert check_job_type_flow() == []
    monkeypatch.setattr(keyed_type, "concurrency_limit", 0)
    monkeypatch.setattr(keyed_type, "rate_limit", (3,))
    monkeypatch.setattr(keyed_type, "concurrency_key_limit", True)
    messages = [m.msg for m in check_job_type_flow()]
    assert messages == [
        "Job type 'flow.keyed': concurrency_limit must be a positive int or None.",
        "Job type 'flow.keyed': rate_limit must be (starts, seconds) of positive ints, or None.",
        "Job type 'flow.keyed': concurrency_key_limit must be a positive int.",
    ]


def test_a_config_missing_what_the_concurrency_key_names_is_a_clear_error(keyed_type, monkeypatch):
    monkeypatch.setattr(keyed_type, "concurrency_key", "region:{region}")
    with pytest.raises(ValidationError, match="needs 'region'"):
        services.job_create(job_type="flow.keyed", config={"account": 1})
    assert not Job.objects.exists()


def test_the_tasks_backend_honours_a_unique_key_from_job_options():
    from django.tasks.exceptions import InvalidTask

    from jobs.tasks_backend import job_options
    from tests.support.django_tasks import add

    with job_options(unique_key="sum:1+2"):
        first = add.enqueue(1, 2)
        again = add.enqueue(1, 2)
    assert again.id == first.id
    assert Job.objects.filter(job_type="tasks.call").count() == 1
    steps(1, unique_key="taken")
    with job_options(unique_key="taken"), pytest.raises(InvalidTask, match="not a task"):
        add.enqueue(1, 2)


def test_an_operators_type_timeout_applies_to_new_jobs_unless_the_job_names_one():
    set_type(timeout_seconds=30)
    assert steps(1)[0].timeout_seconds == 30
    assert steps(1, timeout_seconds=5)[0].timeout_seconds == 5
    set_type(timeout_seconds=None)
    assert steps(1)[0].timeout_seconds is None
