"""Running a claimed job: its unfinished tasks in order, each outcome through the engine.

Every write is the engine's and fenced on the claim, so a worker whose job was swept
and claimed again stops at the next task boundary without touching the new attempt.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone
from django_q.exceptions import TimeoutException

from .. import engine, registry
from ..exceptions import IllegalTransition, JobCancelled, JobTimedOut
from ..models import Job, JobStatus, LogLevel, Task, TaskStatus
from . import secretlog, timeouts
from .context import JobContext
from .heartbeat import heartbeat

logger = logging.getLogger(__name__)

# What execute() reports when the job was taken back from this worker mid-run.
CLAIM_LOST = "claim lost"


@dataclass
class Finished:
    """A job whose tasks all succeeded, its completion not yet written: the log lines
    still buffered, its last task's success and the job's own. The drain commits it
    with the worker's next claim (one transaction for both); execute() at once."""

    job: Job
    ctx: JobContext
    task: Task | None  # its last task; None if every task had succeeded before
    result: Any  # the last task's
    job_result: Any
    tasks: int

    def completion(self) -> engine.Completion:
        return engine.Completion(
            job_id=self.job.pk,
            attempt=self.job.attempts,
            task_id=self.task.pk if self.task is not None else None,
            task_result=self.result,
            job_result=self.job_result,
            progress=self.tasks,
        )


def execute(claim: engine.Claim) -> str:
    """Run a claimed job's unfinished tasks in order; return its final status."""
    outcome = execute_deferred(claim)
    if isinstance(outcome, Finished):
        outlasting_outage(complete, outcome)
        return JobStatus.COMPLETED
    return outcome


def execute_deferred(claim: engine.Claim) -> str | Finished:
    """execute(), but a completed job is returned as Finished, not yet written."""
    job = claim.job
    # The attempt's timeout counts from its claim (just made), across its tasks.
    budget = timeouts.Budget(job.timeout_seconds)
    ctx = JobContext(job)
    try:
        job_type = registry.get(job.job_type)
    except Exception:
        return _finish_failed(job, ctx, f"unknown job type {job.job_type!r}")
    heartbeat.watch(job.pk, job.attempts, ctx.logs)
    ctx.logs.activate()
    secretlog.watch(job.pk, job.job_type, job.config)  # its secrets masked in `logging`
    try:
        return _run_tasks(claim, job_type, ctx, budget)
    finally:
        secretlog.forget(job.pk)
        ctx.logs.deactivate()
        heartbeat.clear(job.pk)


def complete(finished: Finished) -> None:
    """Write a finished job's log lines, last task and completion (one transaction)."""
    with finished.ctx.logs.writing() as lines:
        engine.complete(finished.completion(), lines)


def _run_tasks(
    claim: engine.Claim, job_type: registry.JobType, ctx: JobContext, budget: timeouts.Budget
) -> str | Finished:
    job, tasks = claim.job, claim.tasks
    results: list[Any] = []
    for task in tasks:
        if task.status == TaskStatus.SUCCEEDED:
            results.append(task.result)
            continue
        if task.pk != claim.started_task_id and not engine.start_task(job, task.pk):
            # Started only while this worker's claim holds and nobody asked to cancel
            # (engine.start_task): a cancel request is honoured at each task boundary.
            return _not_started(job, ctx, task)
        ctx.task = task
        try:
            # Past the job's timeout the handler is interrupted (JobTimedOut, raised in it).
            with timeouts.interrupting(budget, job.pk):
                result = job_type.run_task(ctx, task)
        except JobCancelled:
            return _finish_cancelled(job, ctx, task)
        except JobTimedOut as exc:
            return _timed_out(job, job_type, ctx, task, exc)
        except Exception as exc:
            if budget.timed_out:  # the handler turned JobTimedOut into another error
                return _timed_out(job, job_type, ctx, task, exc)
            return _task_failed(job, job_type, ctx, task, exc)
        except TimeoutException as exc:
            # django-q2's timeout is a SystemExit: record it as the task's failure (not
            # "worker lost" a sweep later), then let django-q2 replace the worker.
            _task_failed(job, job_type, ctx, task, exc)
            raise
        # A secret a handler returns never reaches the rows.
        task.result = result = registry.redact_result(job.job_type, job.config, result)
        results.append(result)
        if task is tasks[-1]:
            job_result = registry.redact_result(job.job_type, job.config, job_type.result(results))
            return Finished(job, ctx, task, result, job_result, len(tasks))
        # The task's log lines and its success commit together.
        outlasting_outage(_task_succeeded, job, ctx, task, result)
    job_result = registry.redact_result(job.job_type, job.config, job_type.result(results))
    return Finished(job, ctx, None, None, job_result, len(tasks))


def _task_succeeded(job: Job, ctx: JobContext, task: Task, result: Any) -> None:
    """A task that is not the job's last: its success with its log lines."""
    with ctx.logs.writing() as lines:
        engine.finish_task(job, task.pk, result, lines)


def _not_started(job: Job, ctx: JobContext, task: Task) -> str:
    """Why a task could not start: the claim was lost, a cancel request, or the task
    was not pending."""
    state = engine.claim_state(job.pk)
    if state is None or state[0] != JobStatus.RUNNING or state[1] != job.attempts:
        logger.warning("job #%s lost its claim (attempt %s); stopping", job.pk, job.attempts)
        ctx.logs.flush()
        return CLAIM_LOST
    if state[2] is not None:
        return _finish_cancelled(job, ctx, None)
    return _finish_failed(job, ctx, f"task {task.position} was not pending")


def outlasting_outage[T](write: Callable[..., T], *args: Any) -> T:
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


def _finish_failed(job: Job, ctx: JobContext, error: str) -> str:
    ctx.logs.add(error, LogLevel.ERROR, None)
    ctx.logs.flush()
    return _fail(job, error)


def _fail(job: Job, error: str) -> str:
    try:
        engine.fail(job, error)
    except IllegalTransition as exc:  # a lost race (sweep, redelivery): logged, not raised
        logger.warning("%s", exc)
    return JobStatus.FAILED


def _finish_cancelled(job: Job, ctx: JobContext, task: Task | None) -> str:
    ctx.logs.add("cancelled", LogLevel.WARNING, None)
    try:
        with ctx.logs.writing() as lines:
            engine.cancel_at_boundary(job, task.pk if task is not None else None, lines)
    except IllegalTransition as exc:
        logger.warning("%s", exc)
    return JobStatus.CANCELLED


def _task_failed(
    job: Job, job_type: registry.JobType, ctx: JobContext, task: Task, exc: BaseException
) -> str:
    def redact(text: str) -> str:  # a secret in the exception must not reach the rows
        return registry.redact_text(job.job_type, job.config, text)

    trace = redact("".join(traceback.format_exception(exc)))
    summary = redact(f"task {task.position} ({task.name}) failed: {type(exc).__name__}: {exc}")
    return _attempt_failed(
        job, job_type, ctx, task, task_error=trace, summary=summary, error=f"{summary}\n\n{trace}"
    )


def _timed_out(
    job: Job, job_type: registry.JobType, ctx: JobContext, task: Task, exc: BaseException
) -> str:
    """The handler was interrupted at the job's timeout: the task fails "timed out after
    N s" (with where it was interrupted), then the attempt is retried or the job fails,
    as for any failed task."""
    seconds = job.timeout_seconds or 0
    if not connection.in_atomic_block:
        # Interrupted maybe mid-query: the connection's state is unknown; start afresh.
        connection.close()
    reason = f"timed out after {seconds} s"
    trace = registry.redact_text(job.job_type, job.config, "".join(traceback.format_exception(exc)))
    summary = f"task {task.position} ({task.name}) {reason}"
    logger.error("job #%s (%s): %s; its handler was interrupted", job.pk, job.job_type, summary)
    return _attempt_failed(
        job,
        job_type,
        ctx,
        task,
        task_error=f"{reason}\n\n{trace}",
        summary=summary,
        error=f"{reason}\n\n{summary}; interrupted at:\n{trace}",
    )


def _attempt_failed(
    job: Job,
    job_type: registry.JobType,
    ctx: JobContext,
    task: Task,
    *,
    task_error: str,
    summary: str,
    error: str,
) -> str:
    """Task `task` failed with `task_error` (its log line: `summary`): the job is
    re-queued with backoff while attempts remain, else failed with `error`."""
    engine.fail_task(job, task.pk, task_error)
    ctx.logs.add(summary, LogLevel.ERROR, task.pk)
    ctx.logs.flush()
    if job.attempts >= job.max_attempts:
        return _fail(job, error)
    delay = engine.retry_delay(job.attempts, job_type.retry_backoff)
    if not engine.requeue(job, error=error, run_after=timezone.now() + delay):
        state = engine.claim_state(job.pk)
        if state is not None and state[:2] == (JobStatus.RUNNING, job.attempts):
            # Never re-queue a job someone asked to cancel: it ends cancelled instead.
            return _finish_cancelled(job, ctx, None)
        logger.warning("job #%s lost its claim before its re-queue", job.pk)
        return CLAIM_LOST
    engine.append_log(
        job.pk,
        f"attempt {job.attempts} of {job.max_attempts} failed; "
        f"retrying in {delay.total_seconds():.1f}s",
        level=LogLevel.WARNING,
    )
    return JobStatus.PENDING
