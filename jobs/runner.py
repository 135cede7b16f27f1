"""The django-q2 entry points: run jobs, analyse drafts, the periodic tick.

A broker message is a wake-up. The worker runs the job it names if that job is
still runnable, then keeps claiming runnable jobs straight from the Job table
(`SELECT … FOR UPDATE SKIP LOCKED`, priority then FIFO) until none is left or its
time budget is spent. A redelivered message for a job already claimed is a no-op.

The worker's own hot-path writes (claim, task start, task and job completion) are
conditional UPDATEs compiled once per process and run through the connection's
cursor: one statement each, fenced on the claim's attempt. Building them through
the ORM for every job cost more CPU than the database spent running them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.models import Count
from django.utils import timezone
from django_q.exceptions import TimeoutException

from . import logbuffer, queues, registry, secretlog, services
from .context import JobContext
from .exceptions import IllegalTransition, JobCancelled
from .models import Job, JobLog, JobStatus, LogLevel, Task, TaskStatus

logger = logging.getLogger(__name__)


# What execute() reports when the job was taken back from this worker mid-run.
CLAIM_LOST = "claim lost"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- heartbeat ------------------------------------------------------------------


class Heartbeat:
    """One daemon thread per worker process, beating for the job it is running and
    writing that job's waiting log lines (jobs.logbuffer) once they are due.

    The thread has its own database connection. A worker killed with SIGKILL stops
    beating and the sweep recovers its job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[int, int, logbuffer.LogBuffer | None] | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def watch(self, job_id: int, attempts: int, logs: logbuffer.LogBuffer | None = None) -> None:
        interval = settings.JOBDECK_HEARTBEAT_SECONDS
        if interval <= 0:
            return
        with self._lock:
            self._current = (job_id, attempts, logs)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._beat, args=(interval,), name="jobdeck-heartbeat", daemon=True
                )
                self._thread.start()

    def clear(self) -> None:
        with self._lock:
            self._current = None

    def _beat(self, interval: float) -> None:
        flush_every = settings.JOBDECK_LOG_FLUSH_SECONDS
        tick = min(interval, flush_every) if flush_every > 0 else interval
        next_beat = time.monotonic() + interval
        while True:
            time.sleep(tick)
            with self._lock:
                current = self._current
            if current is None:
                continue
            job_id, attempts, logs = current
            try:
                if logs is not None and logs.due():
                    logs.flush()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + interval
                    Job.objects.filter(
                        pk=job_id, status=JobStatus.RUNNING, attempts=attempts
                    ).update(heartbeat_at=timezone.now())
            except Exception:  # the database may be restarting; try again next tick
                logger.warning("heartbeat or log flush for job %s failed", job_id, exc_info=True)
                close_old_connections()
                connection.close()


heartbeat = Heartbeat()


# --- claiming ---------------------------------------------------------------------


_JOBS, _TASKS = Job._meta.db_table, Task._meta.db_table

# runnable() compiled with this stand-in for "now", which is swapped for the real time.
_NOW_STANDIN = datetime(2000, 1, 1, 0, 0, 0, 424242, tzinfo=UTC)
_statements: dict[tuple, tuple[str, list[Any], list[int]]] = {}


def claim(
    *, worker: str, job_id: int | None = None, finished: Finished | None = None
) -> Job | None:
    """Claim one runnable job (the given one, or the next by priority then FIFO).

    One statement: `UPDATE … WHERE id = (SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED)
    AND status = 'pending' RETURNING …`, with runnable()'s rules (due, served queue,
    release FIFO), so concurrent claimers take different jobs and a job is claimed at
    most once. SQLite has no row locks; there the statement runs in a BEGIN IMMEDIATE
    transaction, writers queueing on the database lock. The partial unique index on
    (release) WHERE running refuses a second running job of one release; losing that
    race means "not now", never an error. The claim also starts the job's first
    unfinished task.

    With `finished` (the worker's previous job, its last task done), that job's
    completion commits in the same transaction as the claim: one commit per job.
    """
    if finished is None:
        return _claim(worker, job_id, None, [])
    with finished.ctx.logs.writing() as lines:
        try:
            return _claim(worker, job_id, finished, lines)
        except IntegrityError:  # the claim lost a release race: settle alone
            _record_success(finished, lines)
            return None


def _claim(worker: str, job_id: int | None, finished: Finished | None, lines: list) -> Job | None:
    sqlite = connection.vendor == "sqlite"
    sql, params, now_at = _claim_statement(job_id, settling=finished is not None and not sqlite)
    params = [worker, *params]
    if job_id is not None:
        params.append(job_id)
    try:
        if sqlite or connection.in_atomic_block:  # SQLite: the write lock; else a savepoint
            with transaction.atomic():
                return _claim_run(sql, params, now_at, sqlite, finished, lines)
        return _claim_run(sql, params, now_at, sqlite, finished, lines)
    except IntegrityError:  # the release already has a running job: not now
        if finished is not None:
            raise  # the settle rolled back with it: claim() writes it alone
        return None


def _claim_run(
    sql: str,
    params: list[Any],
    now_at: list[int],
    sqlite: bool,
    finished: Finished | None,
    lines: list,
) -> Job | None:
    if finished is not None and sqlite:
        _record_success(finished, lines)  # in the claim's transaction
    # Read the clock once the write lock is held (SQLite) so the recorded start never
    # precedes a release predecessor's finish; PostgreSQL uses statement_timestamp().
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    for index in now_at:
        params[index] = now
    if sqlite:
        params = [now, now, *params]
    elif finished is not None:
        params = [*_settle_params(finished, lines), *params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while cursor.description is None and cursor.nextset():
            pass  # past SET LOCAL (PostgreSQL), to the claim's row
        row = cursor.fetchone()
        if not sqlite and connection.in_atomic_block:  # SET LOCAL outlives the statement
            cursor.execute("SET LOCAL enable_sort TO DEFAULT; SET LOCAL jit TO DEFAULT")
    if finished is not None and not sqlite:
        *row, settled = row
        if not settled:
            logger.warning("job #%s lost its claim before it completed", finished.job.pk)
        if row[0] is None:  # nothing claimed
            return None
    if row is None:
        return None
    width = len(Job._meta.concrete_fields)
    job = _job_from_row(row[:width])
    if sqlite:  # in the claim's transaction, as the PostgreSQL statement does
        with connection.cursor() as cursor:
            cursor.execute(_START_FIRST_TASK, [now, job.pk])
            started = cursor.fetchone()
        job._started_task_id = started[0] if started else None
    else:  # the first task was started by the same statement, which read the task list
        job._started_task_id = row[width]
        job._tasks = [
            Task.from_db(connection.alias, _TASK_FIELDS, [pk, job.pk, *rest])
            for pk, *rest in (row[width + 1] or [])
        ]
    return job


_TASK_FIELDS = ["id", "job_id", "position", "name", "status", "result"]
_TASKS_OF = f"SELECT {', '.join(_TASK_FIELDS)} FROM {_TASKS} WHERE job_id = %s ORDER BY position"


def _tasks_of(job_id: int) -> list[Task]:
    """The job's tasks in order, with the fields the runner reads (the rest deferred)."""
    with connection.cursor() as cursor:
        cursor.execute(_TASKS_OF, [job_id])
        rows = cursor.fetchall()
    result = Task._meta.get_field("result")
    return [
        Task.from_db(
            connection.alias,
            _TASK_FIELDS,
            [*row[:-1], result.from_db_value(row[-1], None, connection)],
        )
        for row in rows
    ]


_converters: dict[str, list[tuple[int, list, Any]]] = {}


def _job_from_row(row: tuple) -> Job:
    """A Job from a row of all its concrete columns, converted as the ORM would."""
    fields = Job._meta.concrete_fields
    if connection.vendor not in _converters:
        table = Job._meta.db_table
        cols = [(index, field.get_col(table)) for index, field in enumerate(fields)]
        _converters[connection.vendor] = [
            (index, convs, col)
            for index, col in cols
            if (convs := connection.ops.get_db_converters(col) + col.get_db_converters(connection))
        ]
    values = list(row)
    for index, convs, col in _converters[connection.vendor]:
        for convert in convs:
            values[index] = convert(values[index], col, connection)
    return Job.from_db(connection.alias, [f.attname for f in fields], values)


def _claim_statement(
    job_id: int | None, *, settling: bool = False
) -> tuple[str, list[Any], list[int]]:
    """The claim UPDATE for this connection and the served queues (cached), its
    parameters after the worker name, and where in them (after the name) "now" goes."""
    served = tuple(queues.served_queues())
    key = (connection.alias, connection.vendor, served, job_id is None, settling)
    if key in _statements:
        return _statements[key]
    candidates = Job.objects.runnable(_NOW_STANDIN, list(served)).order_by("-priority", "pk")
    if job_id is not None:
        candidates = candidates.filter(pk=-1)  # the id parameter comes last
    # Compiled without select_for_update (Django refuses that outside atomic());
    # the lock clause is appended.
    compiler = candidates.values("pk")[:1].query.get_compiler(connection=connection)
    inner, inner_params = compiler.as_sql()
    inner_params = list(inner_params)
    if job_id is not None:
        assert inner_params[-1] == -1
        inner_params.pop()
    standin = connection.ops.adapt_datetimefield_value(_NOW_STANDIN)
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    lock = ""
    if connection.features.has_select_for_update_skip_locked:
        lock = connection.ops.for_update_sql(skip_locked=True, of=(table,))
    # statement_timestamp(): this statement's snapshot is what saw a predecessor on
    # the same release finished, so its start is after that finish.
    started = "%s" if connection.vendor == "sqlite" else "statement_timestamp()"
    columns = ", ".join(qn(f.column) for f in Job._meta.concrete_fields)
    sql = (
        f"UPDATE {table} SET status = '{JobStatus.RUNNING}', attempts = attempts + 1, "
        f"started_at = {started}, heartbeat_at = {started}, worker = %s, "
        f"finished_at = NULL WHERE id = ({inner} {lock}) "
        f"AND status = '{JobStatus.PENDING}' RETURNING {columns}"
    )
    if connection.vendor == "postgresql":
        sql = _claim_and_start_pg(sql, settling=settling)
    # Positions of "now" among the parameters after the worker name.
    now_at = [i + 1 for i, p in enumerate(inner_params) if p == standin]
    entry = (sql, [*inner_params], now_at)
    _statements[key] = entry
    return entry


# A claim starts the job's first unfinished task at once (a fresh claim is not
# cancelled): only if it is pending, or failed by an earlier attempt.
_FIRST_TASK = (
    f"SELECT t.id FROM {_TASKS} t WHERE t.job_id = %s AND t.status <> 'succeeded' "
    "ORDER BY t.position LIMIT 1"
)


def _start_task(started_at: str, task: str) -> str:
    """The UPDATE starting `task` (SQL for its id) at `started_at` (SQL): only if it is
    pending, or failed by an earlier attempt (kept for display), which runs it again."""
    return (
        f"UPDATE {_TASKS} SET status = 'running', started_at = {started_at}, "
        "finished_at = NULL, error = '', attempts = attempts + 1 "
        f"WHERE id = {task} AND status IN ('pending', 'failed')"
    )


_START_FIRST_TASK = _start_task("%s", f"({_FIRST_TASK})") + " RETURNING id"


def _claim_and_start_pg(claim_sql: str, *, settling: bool) -> str:
    """PostgreSQL: the claim, the start of the job's first unfinished task and the read
    of its task list in one statement (data-modifying CTEs), one round trip and one
    commit where three were; `settling`, the previous job's completion first (its log
    lines, its last task's success, its status), whose count of rows comes last.

    Sorting is disabled for this statement only (SET LOCAL, one implicit transaction):
    the one good plan walks the claim index in order and stops at the first runnable
    row, and with stale statistics (a burst into a table analysed while nearly empty)
    the planner may sort every pending row instead, on every claim. JIT is off too: the
    disabled sort's huge cost estimate would make PostgreSQL JIT-compile this
    millisecond statement (about a second).
    """
    settle = f"{_SETTLE_CTES}, " if settling else ""
    first_task = f"({_FIRST_TASK % '(SELECT id FROM claimed)'})"
    columns = "claimed.*, (SELECT id FROM started), " + (
        "(SELECT json_agg(json_build_array(t.id, t.position, t.name, t.status, t.result) "
        f"ORDER BY t.position) FROM {_TASKS} t WHERE t.job_id = claimed.id)"
    )
    rows = (
        f"{columns}, (SELECT count(*) FROM done) FROM (SELECT 1) one LEFT JOIN claimed ON true"
        if settling
        else f"{columns} FROM claimed"
    )
    return (
        f"SET LOCAL enable_sort = off; SET LOCAL jit = off; WITH {settle}"
        f"claimed AS ({claim_sql}), "
        f"started AS ({_start_task('statement_timestamp()', first_task)} RETURNING id) "
        f"SELECT {rows}"
    )


# --- execution --------------------------------------------------------------------


@dataclass
class Finished:
    """A job whose tasks all succeeded, its completion not yet written: the log lines
    still buffered, its last task's success and the job's own. run_job() commits it
    with the worker's next claim (one transaction for both); execute() at once."""

    job: Job
    ctx: JobContext
    task: Task
    result: Any  # the last task's
    job_result: Any
    tasks: int


def execute(job: Job) -> str:
    """Run a claimed job's unfinished tasks in order; return its final status."""
    outcome = _execute(job)
    if isinstance(outcome, Finished):
        _outlasting_outage(_complete, outcome)
        return JobStatus.COMPLETED
    return outcome


def _execute(job: Job) -> str | Finished:
    ctx = JobContext(job)
    try:
        job_type = registry.get(job.job_type)
    except Exception:
        return _finish_failed(job, ctx, f"unknown job type {job.job_type!r}")
    heartbeat.watch(job.pk, job.attempts, ctx.logs)
    logbuffer.activate(ctx.logs)
    secretlog.watch(job.pk, job.job_type, job.config)  # its secrets masked in `logging`
    try:
        return _run_tasks(job, job_type, ctx)
    finally:
        secretlog.forget(job.pk)
        logbuffer.deactivate(ctx.logs)
        heartbeat.clear()


def _run_tasks(job: Job, job_type: registry.JobType, ctx: JobContext) -> str | Finished:
    tasks = getattr(job, "_tasks", None)
    if tasks is None:
        tasks = _tasks_of(job.pk)
    started = getattr(job, "_started_task_id", None)  # started by the claim itself
    results: list[Any] = []
    for task in tasks:
        if task.status == TaskStatus.SUCCEEDED:
            results.append(task.result)
            continue
        if task.pk == started:
            task.status = TaskStatus.RUNNING
        elif not _write(_START_TASK, task.pk, job.pk, job.attempts, now=True):
            # Started only while this worker's claim holds and nobody asked to cancel: a
            # cancel request is honoured at each task boundary, and a worker whose claim
            # was taken back (swept and re-queued, maybe claimed again) stops at once
            # instead of running tasks beside the new attempt. FAILED is a previous
            # attempt's (kept for display); this attempt runs the task again.
            return _not_started(job, ctx, task)
        ctx.task = task
        try:
            result = job_type.run_task(ctx, task)
        except JobCancelled:
            return _finish_cancelled(job, ctx, task)
        except Exception as exc:
            return _task_failed(job, job_type, ctx, task, exc)
        except TimeoutException as exc:
            # django-q2's timeout is a SystemExit: record it as the task's failure (not
            # "worker lost" a sweep later), then let django-q2 replace the worker.
            _task_failed(job, job_type, ctx, task, exc)
            raise
        task.result = result = registry.redact_result(job.job_type, job.config, result)
        results.append(result)
        if task is tasks[-1]:
            job_result = registry.redact_result(job.job_type, job.config, job_type.result(results))
            return Finished(job, ctx, task, result, job_result, len(tasks))
        # The task's log lines and its success commit together.
        _outlasting_outage(_task_succeeded, job, ctx, task, result)
    return _finish(
        job,
        JobStatus.COMPLETED,
        result=registry.redact_result(job.job_type, job.config, job_type.result(results)),
        progress_done=len(tasks),
        error="",  # a retried job that completes keeps no earlier attempt's error
    )


# The hot path's statements (see the module docstring): each is fenced on the claim
# (status running, this attempt), so a superseded worker changes nothing.
_FENCE = f"SELECT 1 FROM {_JOBS} WHERE id = %s AND status = 'running' AND attempts = %s"
_START_TASK = _start_task("%s", "%s") + f" AND EXISTS ({_FENCE} AND cancel_requested_at IS NULL)"
_TASK_SUCCEEDED = (
    f"UPDATE {_TASKS} SET status = 'succeeded', result = %s, finished_at = %s "
    f"WHERE id = %s AND status = 'running' AND EXISTS ({_FENCE})"
)
_JOB_PROGRESS = (
    f"UPDATE {_JOBS} SET progress_done = progress_done + 1 "
    "WHERE id = %s AND status = 'running' AND attempts = %s"
)
_JOB_COMPLETED = (
    f"UPDATE {_JOBS} SET status = 'completed', result = %s, progress_done = %s, "
    "error = '', finished_at = %s, heartbeat_at = NULL "
    "WHERE id = %s AND status = 'running' AND attempts = %s"
)
# PostgreSQL: a finished job's log lines, last task and completion as CTEs of one
# statement (alone, or before the next claim); `done` counts the completed row.
_SETTLE_CTES = (
    f"logs AS (INSERT INTO {JobLog._meta.db_table} "
    "(job_id, task_id, created_at, level, message) "
    "SELECT %s, * FROM UNNEST(%s::bigint[], %s::timestamptz[], %s::smallint[], %s::text[])), "
    f"task AS ({_TASK_SUCCEEDED}), done AS ({_JOB_COMPLETED} RETURNING id)"
)
_SETTLE_PG = f"WITH {_SETTLE_CTES} SELECT count(*) FROM done"


def _write(sql: str, *params: Any, now: bool = False) -> int:
    """Run one of the statements above; the number of rows it changed."""
    if now:
        params = (connection.ops.adapt_datetimefield_value(timezone.now()), *params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


_json = Task._meta.get_field("result")


def _task_succeeded(job: Job, ctx: JobContext, task: Task, result: Any) -> None:
    """A task that is not the job's last: its success with its log lines."""
    finished = connection.ops.adapt_datetimefield_value(timezone.now())
    with ctx.logs.writing() as lines, transaction.atomic():
        if lines:
            services.job_log_many(job.pk, lines)
        db_result = _json.get_db_prep_save(result, connection)
        _write(_TASK_SUCCEEDED, db_result, finished, task.pk, job.pk, job.attempts)
        _write(_JOB_PROGRESS, job.pk, job.attempts)


def _complete(finished: Finished) -> None:
    with finished.ctx.logs.writing() as lines:
        _record_success(finished, lines)


def _record_success(finished: Finished, lines: list) -> None:
    """Write a finished job's log lines, last task and completion (one transaction)."""
    job = finished.job
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_SETTLE_PG, _settle_params(finished, lines))
            settled = cursor.fetchone()[0]
    else:
        at = connection.ops.adapt_datetimefield_value(timezone.now())
        with transaction.atomic(savepoint=False):  # inside a claim: no savepoint needed
            if lines:
                services.job_log_many(job.pk, lines)
            db_result = _json.get_db_prep_save(finished.result, connection)
            _write(_TASK_SUCCEEDED, db_result, at, finished.task.pk, job.pk, job.attempts)
            settled = _write(
                _JOB_COMPLETED,
                _json.get_db_prep_save(finished.job_result, connection),
                finished.tasks,
                at,
                job.pk,
                job.attempts,
            )
    if not settled:
        logger.warning("job #%s lost its claim before it completed", job.pk)


def _settle_params(finished: Finished, lines: list) -> list[Any]:
    """The parameters of _SETTLE_CTES for `finished` and its waiting log lines."""
    job = finished.job
    at = timezone.now()
    columns = list(zip(*lines, strict=True)) if lines else [(), (), (), ()]
    return [
        job.pk,
        *(list(column) for column in columns),
        _json.get_db_prep_save(finished.result, connection),
        at,
        finished.task.pk,
        job.pk,
        job.attempts,
        _json.get_db_prep_save(finished.job_result, connection),
        finished.tasks,
        at,
        job.pk,
        job.attempts,
    ]


def _not_started(job: Job, ctx: JobContext, task: Task) -> str:
    """Why a task could not start: the claim was lost, a cancel request, or the task
    was not pending."""
    state = (
        Job.objects.filter(pk=job.pk).values_list("status", "attempts", "cancel_requested_at")
    ).first()
    if state is None or state[0] != JobStatus.RUNNING or state[1] != job.attempts:
        logger.warning("job #%s lost its claim (attempt %s); stopping", job.pk, job.attempts)
        ctx.logs.flush()
        return CLAIM_LOST
    if state[2] is not None:
        return _finish_cancelled(job, ctx, None)
    return _finish_failed(job, ctx, f"task {task.position} was not pending")


def _claimed(job: Job):
    """The job's row while this worker's attempt still holds it (the fencing token)."""
    return Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts)


def _outlasting_outage[T](write: Callable[..., T], *args: Any) -> T:
    """Record a task's finished work, retrying across a dropped database connection.

    A database restart or failover between the work and its bookkeeping would leave
    the job running until the sweep re-queues it, and the work would run again. So the
    write is retried (reconnecting) for up to the stale threshold; past that the sweep
    may have taken the job, and the fenced final transition refuses to touch it.
    """
    deadline = time.monotonic() + settings.JOBDECK_STALE_SECONDS
    while True:
        try:
            return write(*args)
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block or time.monotonic() >= deadline:
                raise
            logger.warning("database unavailable; retrying a job's bookkeeping", exc_info=True)
            connection.close()
            time.sleep(0.5)


def _finish(job: Job, status: str, **fields: Any) -> str:
    """The final conditional UPDATE; a lost race (sweep, redelivery) is logged, not raised."""
    try:
        services.transition(
            job.pk,
            action=f"finish as {status}",
            expected=[JobStatus.RUNNING],
            to=status,
            attempt=job.attempts,  # fenced: a superseded claim changes nothing
            finished_at=timezone.now(),
            heartbeat_at=None,
            **fields,
        )
    except IllegalTransition as exc:
        logger.warning("%s", exc)
    return status


def _finish_failed(job: Job, ctx: JobContext, error: str) -> str:
    ctx.logs.add(error, LogLevel.ERROR, None)
    ctx.logs.flush()
    return _finish(job, JobStatus.FAILED, error=error)


def _finish_cancelled(job: Job, ctx: JobContext, task: Task | None) -> str:
    ctx.logs.add("cancelled", LogLevel.WARNING, None)
    with ctx.logs.writing() as lines, transaction.atomic():
        services.job_log_many(job.pk, lines)
        now = timezone.now()
        if task is not None:
            Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING).update(
                status=TaskStatus.CANCELLED, finished_at=now
            )
        Task.objects.filter(job_id=job.pk, status=TaskStatus.PENDING).update(
            status=TaskStatus.SKIPPED
        )
        return _finish(job, JobStatus.CANCELLED)


def _task_failed(
    job: Job, job_type: registry.JobType, ctx: JobContext, task: Task, exc: BaseException
) -> str:
    def redact(text: str) -> str:  # a secret in the exception must not reach the rows
        return registry.redact_text(job.job_type, job.config, text)

    trace = redact("".join(traceback.format_exception(exc)))
    summary = redact(f"task {task.position} ({task.name}) failed: {type(exc).__name__}: {exc}")
    now = timezone.now()
    Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING).update(
        status=TaskStatus.FAILED, error=trace, finished_at=now
    )
    ctx.logs.add(summary, LogLevel.ERROR, task.pk)
    ctx.logs.flush()
    error = f"{summary}\n\n{trace}"
    if job.attempts < job.max_attempts:
        delay = services.retry_delay(job, job_type.retry_backoff)
        # Never re-queue a job someone asked to cancel: it ends cancelled instead.
        requeued = (
            _claimed(job)
            .filter(cancel_requested_at__isnull=True)
            .update(
                status=JobStatus.PENDING,
                error=error,
                worker="",
                heartbeat_at=None,
                run_after=now + delay,
            )
        )
        if not requeued:
            if _claimed(job).filter(cancel_requested_at__isnull=False).exists():
                return _finish_cancelled(job, ctx, None)
            logger.warning("job #%s lost its claim before its re-queue", job.pk)
            return CLAIM_LOST
        services.job_log(
            job_id=job.pk,
            message=f"attempt {job.attempts} of {job.max_attempts} failed; "
            f"retrying in {delay.total_seconds():.1f}s",
            level=LogLevel.WARNING,
        )
        return JobStatus.PENDING
    return _finish(job, JobStatus.FAILED, error=error)


# --- django-q2 entry points ---------------------------------------------------------


def run_job(job_id: int | None = None) -> dict[str, int]:
    """Broker entry point: run `job_id` if still runnable, then drain runnable jobs.

    Each completed job's bookkeeping commits with the next claim (one transaction
    per job); the last one alone, before the worker returns.
    """
    worker = worker_name()
    deadline = time.monotonic() + settings.JOBDECK_DRAIN_SECONDS
    ran = 0
    finished: Finished | None = None
    job = claim(worker=worker, job_id=job_id) if job_id is not None else None
    try:
        while True:
            if job is not None:
                outcome = _execute(job)
                finished = outcome if isinstance(outcome, Finished) else None
                ran += 1
            if time.monotonic() >= deadline:
                break
            settling, finished = finished, None
            job = _claim_settling(worker, settling)
            if job is None and settling is not None:
                # The statement that completed it saw it running: a job of the same
                # release waiting behind it becomes claimable only now.
                job = claim(worker=worker)
            if job is None and not _wait_for_due_job(deadline):
                break
    finally:
        if finished is not None:
            _outlasting_outage(_complete, finished)
    # Work left that this worker did not take (budget spent): wake another worker
    # of this cluster.
    if time.monotonic() >= deadline:
        left = Job.objects.runnable().values_list("queue", flat=True).first()
        if left is not None:
            services.enqueue_wakeup(None, left)
    return {"ran": ran}


def _claim_settling(worker: str, finished: Finished | None) -> Job | None:
    """claim(finished=…), and if the database drops meanwhile, the finished job's
    completion written alone, outlasting the outage."""
    try:
        return claim(worker=worker, finished=finished)
    except (OperationalError, InterfaceError):
        if finished is None or connection.in_atomic_block:
            raise
        connection.close()
        _outlasting_outage(_complete, finished)
        raise


def _wait_for_due_job(deadline: float) -> bool:
    """If a delayed job falls due before `deadline`, sleep until then and say so."""
    next_due = (
        Job.objects.filter(
            status=JobStatus.PENDING,
            queue__in=queues.served_queues(),
            run_after__gt=timezone.now(),
        )
        .order_by("run_after")
        .values_list("run_after", flat=True)
        .first()
    )
    if next_due is None:
        return False
    wait = (next_due - timezone.now()).total_seconds()
    if time.monotonic() + wait >= deadline:
        return False
    time.sleep(max(0.0, min(wait, 1.0)))
    return True


def analyze_job(job_id: int) -> dict:
    """Broker entry point: analyse a draft."""
    return services.job_analyze(job_id=job_id)


def tick() -> dict[str, Any]:
    """Periodic maintenance (a django-q2 schedule): recover stale jobs, wake workers for
    delayed jobs that fell due."""
    swept = services.sweep_stale_jobs()
    workers = int(settings.Q_CLUSTER.get("workers") or 1)
    woken = 0
    # Runnable jobs per queue, each queue's cluster woken (the tick runs on one cluster).
    due = (
        Job.objects.runnable(queues=sorted(queues.known_queues()))
        .values("queue")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in due:
        for _ in range(min(row["n"], workers)):
            services.enqueue_wakeup(None, row["queue"])
            woken += 1
    return {**swept, "woken": woken}
