"""Every change of `Job.status` and `Task.status`: one named function per transition.

Each transition is a conditional write that reports whether it won, never a
read-modify-write: two clusters, a redelivered message, the sweep and a person
clicking cancel race, and exactly one of them wins. A worker's writes are fenced on
its claim (the job is running *on the worker's attempt*), so a worker whose job was
swept and claimed again changes nothing. The hot path runs the named statements of
sql/<vendor>.sql; the rest uses the ORM. Each function is declared with the moves it
makes (`@moves`), checked against TRANSITIONS when this module is imported, so the
table in jobs/models.py is the one that holds.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import flow
from ..exceptions import IllegalTransition
from ..extensions import job_finished, jobs_runnable
from ..models import TRANSITIONS, Job, JobStatus, LogLevel, Task, TaskStatus
from . import dependencies, logs
from .queries import db_datetime, db_json, execute, execute_many, job_from_row, py_json

logger = logging.getLogger(__name__)

S = JobStatus
F_ = TypeVar("F_", bound=Callable[..., Any])

# (function name, from statuses, to status) of every transition: see docs/architecture.md.
MOVES: list[tuple[str, tuple[str, ...], str]] = []


def moves(sources: Iterable[str], to: str) -> Callable[[F_], F_]:
    """Declare that the decorated function moves jobs from `sources` to `to`; refuse
    at import a move that TRANSITIONS does not allow."""
    sources = tuple(sources)

    def declare(function: F_) -> F_:
        for source in sources:
            if to not in TRANSITIONS[source]:
                raise AssertionError(f"{function.__name__}: {source} → {to} is not in TRANSITIONS")
        MOVES.append((function.__name__, sources, to))
        return function

    return declare


# A log line as the worker's buffer holds it: (task id, created at, level, message).
LogLine = tuple[int | None, datetime, int, str]


@dataclass(frozen=True)
class Claim:
    """A job this worker claimed: its row as the claim left it, its tasks in order
    (the fields the worker reads) and the task the claim itself started."""

    job: Job
    tasks: list[Task]
    started_task_id: int | None


@dataclass(frozen=True)
class Completion:
    """A job whose last task succeeded, not yet written (see complete())."""

    job_id: int
    attempt: int
    task_id: int | None  # the last task; None if it succeeded before (no task to mark)
    task_result: Any
    job_result: Any
    progress: int


def _finished(*job_ids: int) -> None:
    """Jobs `job_ids` reached a final status: the apps listening (notifications) hear of
    it once that is committed (at once outside a transaction), never of a rolled-back one."""
    transaction.on_commit(lambda: job_finished(job_ids), robust=True)


def _runnable(released: Sequence[tuple[int, str]]) -> None:
    """Waiting jobs `released` ((id, queue)) may run once this commits: the broker
    wakes workers for them (extensions.jobs_runnable)."""
    if released:
        pairs = list(released)
        transaction.on_commit(lambda: jobs_runnable(pairs), robust=True)


def _ended(job_id: int, status: str, now: datetime) -> None:
    """Job `job_id` just failed or was cancelled, in this transaction: its children
    are settled or cancelled (engine.dependencies)."""
    cancelled, released = dependencies.parents_ended({job_id: status}, now)
    if cancelled:
        _finished(*cancelled)
    _runnable(released)


# --- claiming -------------------------------------------------------------------


@moves([S.PENDING], to=S.RUNNING)
def claim(*, worker: str, queues: Sequence[str], job_id: int | None = None) -> Claim | None:
    """Claim one runnable job of `queues` (job `job_id`, or the next by priority then
    FIFO) for `worker`, and start its first unfinished task.

    Races (sql/postgresql.sql, claim_next): concurrent claimers take different jobs;
    a job is claimed at most once; two claimers of one free lock slot cannot both win
    (the loser claims nothing now). On SQLite the claim runs in a BEGIN IMMEDIATE
    transaction, writers queueing on the database lock. While a flow rule is set
    (jobs.flow) the claim is the governed one (claim_governed).
    """
    if _governed_recently():
        return _claim_governed(worker, queues, job_id, tried_plain=False)
    claimed = _claim_plain(worker, queues, job_id)
    if claimed is None:  # nothing, or a flow rule is set: the governed claim decides
        return _claim_governed(worker, queues, job_id)
    return claimed


@moves([S.RUNNING], to=S.COMPLETED)
@moves([S.PENDING], to=S.RUNNING)
def complete_and_claim(
    completion: Completion, lines: Sequence[LogLine], *, worker: str, queues: Sequence[str]
) -> Claim | None:
    """complete() and claim() in one transaction (one round trip on PostgreSQL): a
    draining worker commits once per job. A job of the same lock key waiting behind
    the completed one is claimable by this very claim.

    If the claim loses a lock race (the transaction rolls back, completion included),
    the completion is written alone and nothing is claimed. Governed (flow rules set):
    the completion, then the governed claim, in one transaction.
    """
    if _governed_recently():
        with transaction.atomic():
            complete(completion, lines)
            return _claim_governed(worker, queues, None, tried_plain=False)
    try:
        with _claim_transaction():
            settled, claimed, released = _claim_rows(worker, queues, None, completion, lines)
    except IntegrityError:
        complete(completion, lines)
        return None
    _announce([(completion.job_id, settled)])
    if settled:
        _runnable(released)
    if claimed is None:
        return _claim_governed(worker, queues, None)
    return claimed


@moves([S.RUNNING], to=S.COMPLETED)
@moves([S.PENDING], to=S.RUNNING)
def settle_and_claim(
    finished: Sequence[tuple[Completion, Sequence[LogLine]]],
    *,
    worker: str,
    queues: Sequence[str],
    limit: int,
) -> list[Claim]:
    """Batches, for a worker running jobs in threads: complete the jobs of `finished`
    and claim up to `limit` runnable jobs of `queues`, in one transaction (one round
    trip on PostgreSQL: complete_batch, release_children_batch, claim_next).

    The claims are claim_next's, `limit` at once: the caller asks
    for as many as it has threads free, so each job claimed runs at once. If the claim
    loses a lock race (the transaction rolls back), the completions are written alone
    and nothing is claimed now. Governed (flow rules set): the completions, then up to
    `limit` governed claims, each its own transaction.
    """
    if connection.vendor != "postgresql" or _governed_recently():
        return _settle_and_claim_each(finished, worker, queues, limit)
    names = (["complete_batch", "release_children_batch"] if finished else []) + (
        ["claim_next"] if limit > 0 else []
    )
    if not names:
        return []
    params: dict[str, Any] = {"worker": worker, "queues": list(queues), "limit": limit}
    params.update(_batch_params(finished))
    try:
        with _claim_transaction():
            results = execute_many(names, params)
    except IntegrityError:
        # A lock slot race (running_lock_slot_unique): the completions alone, then the
        # claim once more with a fresh snapshot (not now, if it loses again).
        if finished:
            with _claim_transaction():
                _settled(finished, *execute_many(names[:2], params))
        try:
            with _claim_transaction():
                results = [[]] * (len(names) - 1) + execute_many(["claim_next"], params)
        except IntegrityError:
            return []
        finished = []
    rows: list[dict[str, Any]] = []
    if finished:
        done, children, *rest = results
        _settled(finished, done, children)
        rows = rest[0] if rest else []
    elif limit > 0:
        rows = results[-1]
    claims = [_claim_from_pg_row(row) for row in rows]
    if not claims:  # nothing, or a flow rule is set: the governed claim decides
        return _claims_after_commit(worker, queues, limit)
    return claims


def _claims_after_commit(
    worker: str, queues: Sequence[str], limit: int, *, tried_plain: bool = True
) -> list[Claim]:
    """_claim_governed_many once the batch's completions are committed: an error here
    is logged and claims nothing (the next round meets it again), so that the caller
    never writes those completions a second time."""
    try:
        return _claim_governed_many(worker, queues, limit, tried_plain=tried_plain)
    except DatabaseError:
        logger.warning("a batch's claim failed after its completions committed", exc_info=True)
        return []


def _claim_governed_many(
    worker: str, queues: Sequence[str], limit: int, *, tried_plain: bool = True
) -> list[Claim]:
    """Up to `limit` governed claims, each its own transaction (none while no flow rule
    is set, when the plain claim was tried)."""
    claims: list[Claim] = []
    for _ in range(limit):
        claimed = _claim_governed(worker, queues, None, tried_plain=tried_plain)
        if claimed is None:
            break
        claims.append(claimed)
    return claims


def _settle_and_claim_each(
    finished: Sequence[tuple[Completion, Sequence[LogLine]]],
    worker: str,
    queues: Sequence[str],
    limit: int,
) -> list[Claim]:
    """settle_and_claim on SQLite (one BEGIN IMMEDIATE transaction and one commit for
    the whole batch; the clock read once the write lock is held, as in _claim_rows), or
    while flow rules are set (PostgreSQL: the completions in one transaction, then
    each governed claim in its own)."""
    if connection.vendor != "sqlite":
        if finished:
            with transaction.atomic():
                names = ["complete_batch", "release_children_batch"]
                _settled(finished, *execute_many(names, _batch_params(finished)))
        return _claims_after_commit(worker, queues, limit, tried_plain=False)
    claims: list[Claim] = []
    try:
        with transaction.atomic():
            now = db_datetime(timezone.now())
            outcomes = [_complete_sqlite(c, lines, now) for c, lines in finished]
            while len(claims) < limit:
                claimed = _claim_rows(worker, queues, None, None, [], now)[1]
                if claimed is None:
                    break
                claims.append(claimed)
    except IntegrityError:  # a lock slot race: the completions alone, no claim now
        with transaction.atomic():
            now = db_datetime(timezone.now())
            outcomes = [_complete_sqlite(c, lines, now) for c, lines in finished]
        claims = []
    _announce([(c.job_id, won) for (c, _), (won, _) in zip(finished, outcomes, strict=True)])
    _runnable([pair for _, released in outcomes for pair in released])
    return claims or _claims_after_commit(worker, queues, limit)


def _batch_params(finished: Sequence[tuple[Completion, Sequence[LogLine]]]) -> dict[str, Any]:
    """complete_batch's parallel arrays, one entry per job and one per log line."""
    lines = [(c.job_id, *line) for c, job_lines in finished for line in job_lines]
    arrays = logs.line_arrays([line[1:] for line in lines])
    return {
        "job_ids": [c.job_id for c, _ in finished],
        "attempts": [c.attempt for c, _ in finished],
        "task_ids": [c.task_id for c, _ in finished],
        "task_results": [db_json(c.task_result) for c, _ in finished],
        "job_results": [db_json(c.job_result) for c, _ in finished],
        "progress": [c.progress for c, _ in finished],
        "log_job_ids": [line[0] for line in lines],
        **arrays,
    }


def _settled(
    finished: Sequence[tuple[Completion, Sequence[LogLine]]],
    done: Sequence[dict[str, Any]],
    children: Sequence[dict[str, Any]],
) -> None:
    """complete_batch's and release_children_batch's rows: who hears of what."""
    completed = {int(row["id"]) for row in done}
    _announce([(c.job_id, c.job_id in completed) for c, _ in finished])
    _runnable(dependencies.runnable(children))


def _announce(outcomes: Sequence[tuple[int, bool]]) -> None:
    """Each (job id, whether its completion won): the listeners hear of the completed
    ones at once (one notice for a batch), a lost claim is logged."""
    for job_id, settled in outcomes:
        if not settled:
            logger.warning("job #%s lost its claim before it completed", job_id)
    completed = [job_id for job_id, settled in outcomes if settled]
    if completed:
        _finished(*completed)


# How long a process keeps claiming the governed way after a claim found flow rules,
# before it tries claim_next again (which itself refuses while a rule is set, so
# this only saves a wasted statement per claim; it never delays a rule).
GOVERNED_RECHECK_SECONDS = 1.0
_governed_until = 0.0


def _governed_recently() -> bool:
    return time.monotonic() < _governed_until


class _RateWindowFull(Exception):
    def __init__(self, scope: str):
        self.scope = scope


def _claim_governed(
    worker: str, queues: Sequence[str], job_id: int | None, *, tried_plain: bool = True
) -> Claim | None:
    """The claim while flow rules are set (jobs.flow): the open lanes of `queues`,
    then the rate slots of the job claimed, in one transaction.

    A lost slot race (another claim took the last concurrency slot: an IntegrityError
    of a running_*_slot_unique index) or a rate window found full at the last moment
    rolls that attempt back and tries again with what it learnt, a few times.
    """
    global _governed_until
    snap = flow.snapshot(queues)
    if not snap.governed:  # no rule (any more): claim_next's answer stands
        _governed_until = 0.0
        return None if tried_plain else _claim_plain(worker, queues, job_id)
    _governed_until = time.monotonic() + GOVERNED_RECHECK_SECONDS
    blocked_keys: list[str] = []
    for _ in range(5):
        if not snap.lanes:
            return None
        try:
            with transaction.atomic():
                claimed = _claim_governed_rows(worker, snap, job_id, blocked_keys)
                if claimed is not None:
                    _take_rate_slots(claimed.job, snap)
                return claimed
        except IntegrityError:
            snap = flow.snapshot(queues)
        except _RateWindowFull as full:
            if full.scope.startswith("key:"):
                blocked_keys.append(full.scope.partition(":")[2])
            else:
                snap.without(full.scope)
    return None


def _claim_plain(worker: str, queues: Sequence[str], job_id: int | None) -> Claim | None:
    """claim_next (or claim_job): nothing while a flow rule is set."""
    try:
        with _claim_transaction():
            return _claim_rows(worker, queues, job_id, None, [])[1]
    except IntegrityError:  # the lock key's slot was just taken: not now
        return None


def _claim_governed_rows(
    worker: str, snap: flow.Snapshot, job_id: int | None, blocked_keys: list[str]
) -> Claim | None:
    if connection.vendor == "postgresql":
        params = {
            "worker": worker,
            "job_id": job_id,
            "lane_queues": [lane.queue for lane in snap.lanes],
            "lane_types": [lane.job_type for lane in snap.lanes],
            "lane_type_limits": [lane.type_limit for lane in snap.lanes],
            "lane_queue_limits": [lane.queue_limit for lane in snap.lanes],
            "blocked_keys": blocked_keys,
        }
        (rows,) = execute_many(["claim_governed"], params)
        if not rows:
            return None
        return _claim_from_pg_row(rows[0])
    now = db_datetime(timezone.now())
    lanes = [[lane.queue, lane.job_type, lane.type_limit, lane.queue_limit] for lane in snap.lanes]
    params = {
        "lanes": _json_list(lanes),
        "job_id": job_id,
        "now": now,
        "blocked_keys": _json_list(blocked_keys),
    }
    picked, _ = execute("claim_governed_candidate", params)
    if not picked:
        return None
    claim_params = {
        "worker": worker,
        "now": now,
        "job_id": picked[0]["id"],
        "type_limited": bool(picked[0]["type_limited"]),
        "queue_limited": bool(picked[0]["queue_limited"]),
    }
    rows, _ = execute("claim_governed", claim_params)
    if not rows:
        return None
    return _claim_from_sqlite_row(rows[0], now)


def _take_rate_slots(job: Job, snap: flow.Snapshot) -> None:
    """A slot of each rate scope `job` starts under, at its started_at; _RateWindowFull
    (rolling the claim back) when one has none free."""
    for scope, (rate, period) in snap.rate_scopes(job):
        at = job.started_at
        assert at is not None
        params: dict[str, Any] = {"scope": scope, "rate": rate, "period": period}
        if connection.vendor == "postgresql":
            params["at"] = at
        else:
            params.update(at=db_datetime(at), cutoff=db_datetime(at - timedelta(seconds=period)))
        rows, _ = execute("take_rate_slot", params)
        if rows:
            continue
        ensure: dict[str, Any] = {
            "scope": scope,
            "rate": rate,
            "epoch": db_datetime(flow.RATE_EPOCH),
        }
        if connection.vendor == "sqlite":
            ensure["slots"] = _json_list(range(rate))
        if execute("ensure_rate_slots", ensure)[1] and execute("take_rate_slot", params)[0]:
            continue
        raise _RateWindowFull(scope)


def _claim_transaction() -> Any:
    """SQLite: the write lock (BEGIN IMMEDIATE) for the claim and what commits with it.
    PostgreSQL: one implicit transaction per statement batch, or a savepoint when the
    caller holds a transaction, so a lost lock race does not break the caller's."""
    if connection.vendor == "sqlite" or connection.in_atomic_block:
        return transaction.atomic()
    return _nothing()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _claim_rows(
    worker: str,
    queues: Sequence[str],
    job_id: int | None,
    completion: Completion | None,
    lines: Sequence[LogLine],
    now: Any = None,
) -> tuple[bool, Claim | None, list[tuple[int, str]]]:
    """Run the claim (after `completion`'s statements when given): (whether the
    completion won, the claim, the (id, queue) of the waiting jobs the completion
    left runnable; the claim may have taken one of them)."""
    name = "claim_next" if job_id is None else "claim_job"
    settled = True
    released: list[tuple[int, str]] = []
    if connection.vendor == "postgresql":
        params: dict[str, Any] = {
            "worker": worker,
            "queues": list(queues),
            "job_id": job_id,
            "limit": 1,
        }
        if completion is None:
            (rows,) = execute_many([name], params)
        else:
            params.update(_completion_params(completion, lines))
            done, children, rows = execute_many(["complete", "release_children", name], params)
            settled = bool(done[0]["count"])
            released = dependencies.runnable(children)
        if not rows:
            return settled, None, released
        return settled, _claim_from_pg_row(rows[0]), released
    # SQLite, in the claim's BEGIN IMMEDIATE: the clock is read once the write lock is
    # held, so a start is never recorded before a lock predecessor's finish (`now`: read
    # so by the caller, for a batch).
    now = now or db_datetime(timezone.now())
    if completion is not None:
        settled, released = _complete_sqlite(completion, lines, now)
    params = {"worker": worker, "queues": _json_list(queues), "job_id": job_id, "now": now}
    rows, _ = execute(name, params)
    if not rows:
        return settled, None, released
    return settled, _claim_from_sqlite_row(rows[0], now), released


def _claim_from_pg_row(row: dict[str, Any]) -> Claim:
    """A claim statement's row (the job, its started task, its task list)."""
    started = row["started_task_id"]
    tasks = [
        _task(row["id"], started, id=pk, position=pos, name=n, status=st, result=result)
        for pk, pos, n, st, result in py_json(row["task_list"]) or []
    ]
    return Claim(job_from_row(row), tasks, started)


def _claim_from_sqlite_row(row: dict[str, Any], now: Any) -> Claim:
    """SQLite: the claimed job's row; its first unfinished task started and its task
    list read, in the claim's transaction."""
    job = job_from_row(row)
    first, _ = execute("start_first_task", {"job_id": job.pk, "now": now})
    started = first[0]["id"] if first else None
    task_rows, _ = execute("task_list", {"job_id": job.pk})
    tasks = [_task(job.pk, started, **{**r, "result": py_json(r["result"])}) for r in task_rows]
    return Claim(job, tasks, started)


def _task(job_id: int, started: int | None, **fields: Any) -> Task:
    """A claimed job's task as the claim left it (the read preceded the start)."""
    if fields["id"] == started:
        fields["status"] = TaskStatus.RUNNING
    return Task(job_id=job_id, **fields)


def _json_list(values: Iterable[Any]) -> str:
    return db_json(list(values)) or "[]"


# --- running ------------------------------------------------------------------------


def start_task(job: Job, task_id: int) -> bool:
    """Start task `task_id` (pending, or failed in an earlier attempt): only while the
    worker's claim holds and nobody asked to cancel (sql: start_task)."""
    params = {"task_id": task_id, "job_id": job.pk, "attempt": job.attempts}
    if connection.vendor == "sqlite":
        params["now"] = db_datetime(timezone.now())
    return execute("start_task", params)[1] > 0


def finish_task(job: Job, task_id: int, result: Any, lines: Sequence[LogLine]) -> bool:
    """A task that is not the job's last succeeded: its log lines, its success and the
    job's progress in one transaction, fenced on the claim. False if the claim was lost."""
    if connection.vendor == "postgresql":
        params = {
            "job_id": job.pk,
            "attempt": job.attempts,
            "task_id": task_id,
            "task_result": db_json(result),
            **logs.line_arrays(lines),
        }
        rows, _ = execute("finish_task", params)
        return bool(rows[0]["count"])
    now = db_datetime(timezone.now())
    fence = {"job_id": job.pk, "attempt": job.attempts}
    with transaction.atomic():
        if lines:
            logs.append_many(job.pk, lines)
        params = {**fence, "task_id": task_id, "task_result": db_json(result), "now": now}
        execute("task_succeeded", params)
        return execute("job_progress", fence)[1] > 0


@moves([S.RUNNING], to=S.COMPLETED)
def complete(completion: Completion, lines: Sequence[LogLine]) -> bool:
    """The job's last task succeeded: its log lines, the task's success and the job's
    completion in one transaction, fenced on the claim. False if the claim was lost."""
    if connection.vendor == "postgresql":
        params = _completion_params(completion, lines)
        with _claim_transaction():
            done, children = execute_many(["complete", "release_children"], params)
        settled = bool(done[0]["count"])
        released = dependencies.runnable(children)
    else:
        with transaction.atomic():
            settled, released = _complete_sqlite(completion, lines, db_datetime(timezone.now()))
    _announce([(completion.job_id, settled)])
    if settled:
        _runnable(released)
    return settled


def _completion_params(completion: Completion, lines: Sequence[LogLine]) -> dict[str, Any]:
    return {
        "job_id": completion.job_id,
        "attempt": completion.attempt,
        "task_id": completion.task_id,
        "task_result": db_json(completion.task_result),
        "job_result": db_json(completion.job_result),
        "progress": completion.progress,
        **logs.line_arrays(lines),
    }


def _complete_sqlite(
    completion: Completion, lines: Sequence[LogLine], now: Any
) -> tuple[bool, list[tuple[int, str]]]:
    """complete() on SQLite, inside the caller's transaction: whether it won, and the
    (id, queue) of the waiting jobs it left runnable."""
    if lines:
        logs.append_many(completion.job_id, lines)
    fence = {"job_id": completion.job_id, "attempt": completion.attempt}
    task = {"task_id": completion.task_id, "task_result": db_json(completion.task_result)}
    execute("task_succeeded", {**fence, **task, "now": now})
    done = {"job_result": db_json(completion.job_result), "progress": completion.progress}
    if not execute("job_completed", {**fence, **done, "now": now})[1]:
        return False, []
    return True, dependencies.release_children_sqlite(completion.job_id)


def _claimed(job: Job) -> Any:
    """The job's row while the worker's attempt still holds it (the fencing token)."""
    return Job.objects.filter(pk=job.pk, status=S.RUNNING, attempts=job.attempts)


def fail_task(job: Job, task_id: int, error: str) -> bool:
    """A running task's handler raised: the task is failed with `error`, fenced on
    the claim (the job's own outcome follows: fail() or requeue())."""
    with transaction.atomic():
        if not _claimed(job).exists():
            return False
        updated = Task.objects.filter(pk=task_id, status=TaskStatus.RUNNING).update(
            status=TaskStatus.FAILED, error=error, finished_at=timezone.now()
        )
    return updated > 0


@moves([S.RUNNING], to=S.FAILED)
def fail(job: Job, error: str) -> None:
    """The running job failed with `error` (its last attempt, an unknown type, a task
    that was not pending). Fenced on the claim: IllegalTransition if it was lost. Its
    children are cancelled (or settled) in the same transaction."""
    now = timezone.now()
    with transaction.atomic():
        transition(
            job.pk,
            action="finish as failed",
            expected=[S.RUNNING],
            to=S.FAILED,
            attempt=job.attempts,
            error=error,
            finished_at=now,
            heartbeat_at=None,
        )
        _finished(job.pk)
        _ended(job.pk, S.FAILED, now)


@moves([S.RUNNING], to=S.PENDING)
def requeue(job: Job, *, error: str, run_after: datetime) -> bool:
    """A failed attempt with attempts left goes back to pending, due at `run_after`.

    Never a job someone asked to cancel (it ends cancelled instead: see
    cancel_at_boundary), and only on the worker's own attempt.
    """
    return bool(
        _claimed(job)
        .filter(cancel_requested_at__isnull=True)
        .update(status=S.PENDING, error=error, worker="", heartbeat_at=None, run_after=run_after)
    )


@moves([S.RUNNING], to=S.CANCELLED)
def cancel_at_boundary(job: Job, task_id: int | None, lines: Sequence[LogLine]) -> None:
    """A running job whose cancel was requested ends cancelled at a task boundary (or
    when its handler raised JobCancelled): the running task `task_id` cancelled, the
    pending ones skipped, with the job's last log lines, in one transaction. Fenced on
    the claim: the job first, the tasks only if it won (IllegalTransition otherwise)."""
    with transaction.atomic():
        if lines:
            logs.append_many(job.pk, lines)
        transition(
            job.pk,
            action="finish as cancelled",
            expected=[S.RUNNING],
            to=S.CANCELLED,
            attempt=job.attempts,
            finished_at=timezone.now(),
            heartbeat_at=None,
        )
        now = timezone.now()
        _end_tasks(job.pk, running=TaskStatus.CANCELLED, skip_pending=True, now=now)
        _finished(job.pk)
        _ended(job.pk, S.CANCELLED, now)


def _end_tasks(
    job_id: int, *, running: str, skip_pending: bool, now: datetime, error: str | None = None
) -> None:
    """The tasks of a job that just ended: the running one becomes `running` (with
    `error` if given), and the pending ones skipped if asked."""
    fields: dict[str, Any] = {"status": running, "finished_at": now}
    if error is not None:
        fields["error"] = error
    Task.objects.filter(job_id=job_id, status=TaskStatus.RUNNING).update(**fields)
    if skip_pending:
        Task.objects.filter(job_id=job_id, status=TaskStatus.PENDING).update(
            status=TaskStatus.SKIPPED
        )


def heartbeat(job_id: int, attempt: int) -> bool:
    """The worker still runs job `job_id` on `attempt` (not a status change)."""
    return bool(
        Job.objects.filter(pk=job_id, status=S.RUNNING, attempts=attempt).update(
            heartbeat_at=timezone.now()
        )
    )


def claim_state(job_id: int) -> tuple[str, int, datetime | None] | None:
    """(status, attempts, cancel_requested_at) of job `job_id`, None if it is gone."""
    return (
        Job.objects.filter(pk=job_id)
        .values_list("status", "attempts", "cancel_requested_at")
        .first()
    )


def cancel_requested(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested_at__isnull=False).exists()


def task_progress(job_id: int, task_id: int, done: int, total: int) -> None:
    """Progress inside a running task, as its handler reports it (not a status)."""
    Task.objects.filter(pk=task_id, job_id=job_id).update(
        progress_done=max(0, done), progress_total=max(0, total)
    )


def retry_delay(attempts: int, base: float | None = None) -> timedelta:
    """Exponential backoff with jitter before attempt `attempts` + 1:
    base * 2^(attempts-1), ±50 %, at most an hour."""
    base = settings.JOBDECK_RETRY_BACKOFF_SECONDS if base is None else base
    seconds = base * (2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.5)
    return timedelta(seconds=min(seconds, 3600))


# --- people's actions ---------------------------------------------------------------


def transition(
    job_id: int,
    *,
    action: str,
    expected: Iterable[str],
    to: str,
    attempt: int | None = None,
    **fields: Any,
) -> None:
    """Move job `job_id` from one of `expected` to `to` in one conditional UPDATE.

    Raises IllegalTransition (naming the current status) when the job was not in an
    expected status (another actor won the race) or when TRANSITIONS forbids the move.
    With `attempt` (the fencing token), only while the job is still on that attempt.
    """
    expected = tuple(expected)
    if any(to not in TRANSITIONS[source] for source in expected):
        raise IllegalTransition(job_id, action, None, allowed=expected)
    matching = Job.objects.filter(pk=job_id, status__in=expected)
    if attempt is not None:
        matching = matching.filter(attempts=attempt)
    if not matching.update(status=to, **fields):
        current = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        raise IllegalTransition(job_id, action, current, allowed=expected)


@moves([S.DRAFT], to=S.PENDING)
def submit(job_id: int) -> None:
    """A draft becomes a pending job that runs (IllegalTransition if not a draft)."""
    transition(job_id, action="submit", expected=[S.DRAFT], to=S.PENDING, queued_at=timezone.now())


@moves([S.PENDING], to=S.CANCELLED)
def cancel(job_id: int) -> str:
    """Cancel job `job_id`: a pending one at once (its tasks skipped; it never runs), a
    running one by recording the request, honoured at its next task boundary (a second
    request keeps the first one's time). Returns the status it had; IllegalTransition
    for any other. The pending→cancelled UPDATE and the claim's `status = 'pending'`
    re-check settle a cancel racing a claim: exactly one of them wins."""
    now = timezone.now()
    with transaction.atomic():
        if Job.objects.filter(pk=job_id, status=S.PENDING).update(
            status=S.CANCELLED, cancel_requested_at=now, finished_at=now
        ):
            Task.objects.filter(job_id=job_id, status=TaskStatus.PENDING).update(
                status=TaskStatus.SKIPPED
            )
            _finished(job_id)
            _ended(job_id, S.CANCELLED, now)
            return S.PENDING
        if Job.objects.filter(pk=job_id, status=S.RUNNING).update(
            cancel_requested_at=Coalesce(F("cancel_requested_at"), Value(now))
        ):
            return S.RUNNING
    current = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
    raise IllegalTransition(job_id, "cancel", current, allowed=[S.PENDING, S.RUNNING])


@moves([S.FAILED, S.CANCELLED], to=S.PENDING)
def retry(job_id: int, *, fields: dict[str, Any], task_names: list[str] | None) -> None:
    """A failed or cancelled job runs again (IllegalTransition otherwise): succeeded
    tasks are kept and skipped, the others reset to pending. With `task_names` (a
    corrected config's tasks), succeeded tasks whose position and name still match are
    kept and the rest rebuilt. Call inside a transaction."""
    transition(
        job_id,
        action="retry",
        expected=[S.FAILED, S.CANCELLED],
        to=S.PENDING,
        error="",
        result=None,
        finished_at=None,
        cancel_requested_at=None,
        heartbeat_at=None,
        run_after=None,
        worker="",
        queued_at=timezone.now(),
        cancelled_by_parent=None,
        **fields,
    )
    if task_names is not None:
        _replace_unfinished_tasks(job_id, task_names)
    Task.objects.filter(job_id=job_id).exclude(status=TaskStatus.SUCCEEDED).update(
        status=TaskStatus.PENDING,
        error="",
        result=None,
        started_at=None,
        finished_at=None,
        progress_done=0,
        progress_total=0,
    )
    dependencies.recount([job_id])
    dependencies.parent_retried(job_id, timezone.now())


def _replace_unfinished_tasks(job_id: int, names: list[str]) -> None:
    """Keep succeeded tasks whose (position, name) still match; rebuild the rest."""
    kept = set(
        Task.objects.filter(job_id=job_id, status=TaskStatus.SUCCEEDED).values_list(
            "position", "name"
        )
    )
    wanted = set(enumerate(names, start=1))
    keep_positions = {p for p, n in kept if (p, n) in wanted}
    Task.objects.filter(job_id=job_id).exclude(position__in=keep_positions).delete()
    Task.objects.bulk_create(
        [
            Task(job_id=job_id, position=p, name=n)
            for p, n in sorted(wanted)
            if p not in keep_positions
        ]
    )
    Job.objects.filter(pk=job_id).update(
        progress_total=len(names), progress_done=len(keep_positions)
    )


# --- recovery -------------------------------------------------------------------------


@dataclass(frozen=True)
class Swept:
    counts: dict[str, int]
    requeued: list[tuple[int, str]]  # (job id, queue): to be woken


@moves([S.RUNNING], to=S.PENDING)
@moves([S.RUNNING], to=S.FAILED)
@moves([S.RUNNING], to=S.CANCELLED)
def sweep(
    *, now: datetime, stale_after: timedelta, workers: Collection[str] | None = None
) -> Swept:
    """Recover running jobs whose worker stopped heartbeating (killed, machine lost), or
    whose worker is one of `workers` (known dead): re-queued while attempts remain, else
    failed; cancelled if someone asked to.

    Each UPDATE re-checks that the job is still lost and on its attempt, so a worker that
    heartbeats meanwhile keeps its job and two sweeps (two clusters' ticks) recover it once.
    """
    cutoff = now - stale_after
    lost = Q(heartbeat_at__lt=cutoff) if workers is None else Q(worker__in=list(workers))
    stale = Job.objects.filter(lost, status=S.RUNNING)
    counts = {"requeued": 0, "failed": 0, "cancelled": 0}
    requeued: list[tuple[int, str]] = []
    fields = ("pk", "attempts", "max_attempts", "worker", "heartbeat_at", "queue")
    for job in stale.only(*fields, "cancel_requested_at"):
        if workers is None:
            reason = (
                f"worker lost: no heartbeat from {job.worker or 'its worker'} "
                f"since {job.heartbeat_at.isoformat() if job.heartbeat_at else 'its claim'}"
            )
        else:
            reason = f"worker stopped: {job.worker} was killed when its cluster shut down"
        with transaction.atomic():
            still_stale = Job.objects.filter(
                lost, pk=job.pk, status=S.RUNNING, attempts=job.attempts
            )
            if job.cancel_requested_at is not None:
                # Someone asked to cancel it: a lost worker does not earn a re-run.
                outcome, suffix = "cancelled", "cancelled as requested"
                won = still_stale.update(
                    status=S.CANCELLED, error=reason, finished_at=now, heartbeat_at=None
                )
            elif job.attempts < job.max_attempts:
                outcome, suffix = "requeued", "re-queued"
                won = still_stale.filter(cancel_requested_at__isnull=True).update(
                    status=S.PENDING,
                    error=reason,
                    worker="",
                    heartbeat_at=None,
                    run_after=now + retry_delay(job.attempts),
                )
            else:
                outcome, suffix = "failed", "attempts exhausted"
                won = still_stale.update(
                    status=S.FAILED, error=reason, finished_at=now, heartbeat_at=None
                )
            if not won:
                continue
            _end_tasks(
                job.pk,
                running=TaskStatus.FAILED,
                skip_pending=outcome == "cancelled",
                now=now,
                error=reason,
            )
            logs.append(job.pk, f"{reason} — {suffix}", level=LogLevel.ERROR)
            counts[outcome] += 1
            if outcome == "requeued":
                requeued.append((job.pk, job.queue))
            else:
                _finished(job.pk)
                _ended(job.pk, S.FAILED if outcome == "failed" else S.CANCELLED, now)
    return Swept(counts, requeued)
