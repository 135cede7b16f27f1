"""The django-q2 entry points: run jobs, analyse drafts, the periodic tick.

A broker message is a wake-up. The worker runs the job it names if that job is
still runnable, then keeps claiming runnable jobs straight from the Job table
(`SELECT … FOR UPDATE SKIP LOCKED`, priority then FIFO) until none is left or its
time budget is spent. A redelivered message for a job already claimed is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
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
from django.db.models import Count, F
from django.utils import timezone
from django_q.exceptions import TimeoutException

from . import queues, registry, services
from .context import JobContext
from .exceptions import IllegalTransition, JobCancelled
from .models import Job, JobStatus, LogLevel, Task, TaskStatus

logger = logging.getLogger(__name__)


# What execute() reports when the job was taken back from this worker mid-run.
CLAIM_LOST = "claim lost"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- heartbeat ------------------------------------------------------------------


class Heartbeat:
    """One daemon thread per worker process beating for the job it is running.

    The thread has its own database connection. A worker killed with SIGKILL stops
    beating and the sweep recovers its job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def watch(self, job_id: int, attempts: int) -> None:
        interval = settings.JOBDECK_HEARTBEAT_SECONDS
        if interval <= 0:
            return
        with self._lock:
            self._current = (job_id, attempts)
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
        while True:
            time.sleep(interval)
            with self._lock:
                current = self._current
            if current is None:
                continue
            job_id, attempts = current
            try:
                Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempts).update(
                    heartbeat_at=timezone.now()
                )
            except Exception:  # the database may be restarting; beat again later
                logger.warning("heartbeat for job %s failed", job_id, exc_info=True)
                close_old_connections()
                connection.close()


heartbeat = Heartbeat()


# --- claiming ---------------------------------------------------------------------


def claim(*, worker: str, job_id: int | None = None) -> Job | None:
    """Claim one runnable job (the given one, or the next by priority then FIFO).

    The row is locked with SKIP LOCKED so concurrent claimers take different jobs,
    and the UPDATE is conditional on `pending`, so a job is claimed at most once
    even where row locks do not exist (SQLite serialises writers instead). The
    partial unique index on (release) WHERE running refuses a second running job
    of one release; losing that race means "not now", never an error.
    """
    now = timezone.now()
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return _claim_in_one_statement(worker=worker, job_id=job_id, now=now)
    with transaction.atomic():
        candidates = Job.objects.runnable(now).order_by("-priority", "pk")
        if job_id is not None:
            candidates = candidates.filter(pk=job_id)
        job = candidates.select_for_update(skip_locked=True, of=("self",)).first()
        if job is None:
            return None
        # Read the clock after the SELECT: a predecessor on the same release has
        # committed its finish by now, so the recorded start never precedes it.
        now = timezone.now()
        fields = dict(
            status=JobStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            finished_at=None,
        )
        claimed = Job.objects.filter(pk=job.pk, status=JobStatus.PENDING)
        try:
            if job.release_id is None:
                won = claimed.update(**fields)
            else:
                with transaction.atomic():  # savepoint: the release may be busy
                    won = claimed.update(**fields)
        except IntegrityError:
            return None
    if not won:
        return None
    job.status = JobStatus.RUNNING
    job.attempts += 1
    job.started_at = job.heartbeat_at = now
    job.worker = worker
    job.finished_at = None
    return job


def _claim_in_one_statement(*, worker: str, job_id: int | None, now) -> Job | None:
    """PostgreSQL: lock, re-check and claim in one autocommit statement.

    `UPDATE … WHERE id = (SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED) AND status =
    'pending' RETURNING …`: the same rules as the portable path (runnable(),
    priority then FIFO, the partial unique index per release) in one round trip
    and one commit instead of BEGIN, SELECT, UPDATE, COMMIT.
    """
    candidates = Job.objects.runnable(now).order_by("-priority", "pk")
    if job_id is not None:
        candidates = candidates.filter(pk=job_id)
    # Compiled without select_for_update (Django refuses that outside atomic());
    # the lock clause is appended, the statement being its own transaction.
    compiler = candidates.values("pk")[:1].query.get_compiler(connection=connection)
    inner, inner_params = compiler.as_sql()
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    lock = connection.ops.for_update_sql(skip_locked=True, of=(table,))
    columns = ", ".join(qn(f.column) for f in Job._meta.concrete_fields)
    sql = (
        # statement_timestamp(): this statement's snapshot is what saw a predecessor
        # on the same release finished, so its start is after that finish.
        f"UPDATE {table} SET status = %s, attempts = attempts + 1, "
        f"started_at = statement_timestamp(), heartbeat_at = statement_timestamp(), "
        f"worker = %s, finished_at = NULL "
        f"WHERE id = ({inner} {lock}) AND status = %s RETURNING {columns}"
    )
    params = (JobStatus.RUNNING, worker, *inner_params, JobStatus.PENDING)
    try:
        claimed = list(Job.objects.raw(sql, params))
    except IntegrityError:  # the release already has a running job: not now
        return None
    return claimed[0] if claimed else None


# --- execution --------------------------------------------------------------------


def execute(job: Job) -> str:
    """Run a claimed job's unfinished tasks in order; return its final status."""
    try:
        job_type = registry.get(job.job_type)
    except Exception:
        return _finish_failed(job, f"unknown job type {job.job_type!r}")
    heartbeat.watch(job.pk, job.attempts)
    try:
        return _run_tasks(job, job_type)
    finally:
        heartbeat.clear()


def _run_tasks(job: Job, job_type: registry.JobType) -> str:
    ctx = JobContext(job)
    tasks = list(Task.objects.filter(job_id=job.pk).order_by("position"))
    results: list[Any] = []
    first = True
    for task in tasks:
        if task.status == TaskStatus.SUCCEEDED:
            results.append(task.result)
            continue
        # Before each task: a cancel request is honoured, and a worker whose claim was
        # taken back (swept and re-queued, maybe claimed again) stops at once instead
        # of running tasks beside the new attempt. The claim's own row answers for the
        # first task; later ones ask the database (one indexed read).
        state = (
            (job.status, job.attempts, job.cancel_requested_at)
            if first
            else Job.objects.filter(pk=job.pk)
            .values_list("status", "attempts", "cancel_requested_at")
            .first()
        )
        first = False
        if state is None or state[0] != JobStatus.RUNNING or state[1] != job.attempts:
            logger.warning("job #%s lost its claim (attempt %s); stopping", job.pk, job.attempts)
            return CLAIM_LOST
        if state[2] is not None:
            return _finish_cancelled(job, None)
        now = timezone.now()
        # FAILED is a previous attempt's (an automatic re-queue or the sweep keeps it
        # for display); this attempt holds the fresh claim, so it runs the task again.
        if not Task.objects.filter(
            pk=task.pk, status__in=(TaskStatus.PENDING, TaskStatus.FAILED)
        ).update(
            status=TaskStatus.RUNNING,
            started_at=now,
            finished_at=None,
            error="",
            attempts=F("attempts") + 1,
        ):
            return _finish_failed(job, f"task {task.position} was not pending")
        ctx.task = task
        try:
            result = job_type.run_task(ctx, task)
        except JobCancelled:
            return _finish_cancelled(job, task)
        except Exception as exc:
            return _task_failed(job, job_type, task, exc)
        except TimeoutException as exc:
            # django-q2's timeout is a SystemExit: record it as the task's failure (not
            # "worker lost" a sweep later), then let django-q2 replace the worker.
            _task_failed(job, job_type, task, exc)
            raise
        task.result = result
        finished = timezone.now()
        results.append(result)
        if task is tasks[-1]:
            # The last task's success and the job's completion commit together:
            # nothing runs between the two, and it saves one WAL flush per job.
            return _outlasting_outage(
                _complete, job, task, result, finished, job_type.result(results), len(tasks)
            )
        _outlasting_outage(_task_succeeded, job, task, result, finished)
        _claimed(job).update(progress_done=F("progress_done") + 1)
    return _finish(
        job,
        JobStatus.COMPLETED,
        result=job_type.result(results),
        progress_done=len(tasks),
        error="",  # a retried job that completes keeps no earlier attempt's error
    )


def _claimed(job: Job):
    """The job's row while this worker's attempt still holds it (the fencing token)."""
    return Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts)


def _task_succeeded(job: Job, task: Task, result: Any, finished) -> None:
    # Fenced on the claim: a superseded worker must not mark the new attempt's task.
    Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING).filter(job__in=_claimed(job)).update(
        status=TaskStatus.SUCCEEDED, result=result, finished_at=finished
    )


def _complete(job: Job, task: Task, result: Any, finished, job_result: Any, total: int) -> str:
    with transaction.atomic():
        _task_succeeded(job, task, result, finished)
        return _finish(
            job,
            JobStatus.COMPLETED,
            result=job_result,
            progress_done=total,
            error="",  # a retried job that completes keeps no earlier error
        )


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


def _finish_failed(job: Job, error: str) -> str:
    services.job_log(job_id=job.pk, message=error, level=LogLevel.ERROR)
    return _finish(job, JobStatus.FAILED, error=error)


def _finish_cancelled(job: Job, task: Task | None) -> str:
    with transaction.atomic():
        now = timezone.now()
        if task is not None:
            Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING).update(
                status=TaskStatus.CANCELLED, finished_at=now
            )
        Task.objects.filter(job_id=job.pk, status=TaskStatus.PENDING).update(
            status=TaskStatus.SKIPPED
        )
        services.job_log(job_id=job.pk, message="cancelled", level=LogLevel.WARNING)
        return _finish(job, JobStatus.CANCELLED)


def _task_failed(job: Job, job_type: registry.JobType, task: Task, exc: BaseException) -> str:
    def redact(text: str) -> str:  # a secret in the exception must not reach the rows
        return registry.redact_text(job.job_type, job.config, text)

    trace = redact("".join(traceback.format_exception(exc)))
    summary = redact(f"task {task.position} ({task.name}) failed: {type(exc).__name__}: {exc}")
    now = timezone.now()
    Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING).update(
        status=TaskStatus.FAILED, error=trace, finished_at=now
    )
    services.job_log(job_id=job.pk, task_id=task.pk, message=summary, level=LogLevel.ERROR)
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
                return _finish_cancelled(job, None)
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
    """Broker entry point: run `job_id` if still runnable, then drain runnable jobs."""
    worker = worker_name()
    deadline = time.monotonic() + settings.JOBDECK_DRAIN_SECONDS
    ran = 0
    job = claim(worker=worker, job_id=job_id) if job_id is not None else None
    while True:
        if job is not None:
            execute(job)
            ran += 1
        if time.monotonic() >= deadline:
            break
        job = claim(worker=worker)
        if job is None and not _wait_for_due_job(deadline):
            break
    # Work left that this worker did not take (budget spent): wake another worker
    # of this cluster.
    if time.monotonic() >= deadline:
        left = Job.objects.runnable().values_list("queue", flat=True).first()
        if left is not None:
            services.enqueue_wakeup(None, left)
    return {"ran": ran}


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
