"""Jobdeck as a django.tasks backend: `@task` functions run as `tasks.call` jobs.

`enqueue` validates the Task as Django specifies, then creates a job of the carrier
type `tasks.call` (config: the task's import path, its JSON arguments, queue and
backend alias) through `services.job_create`, so the job gets Jobdeck's admin, API,
logs, cancel and retry. The TaskResult id is the job id; `get_result` rebuilds the
TaskResult from the job row, its task row and its log.

Queues: every name in QUEUES is accepted (others raise InvalidTask). A task's
queue_name is the job's Jobdeck queue (jobs.queues): only the django-q2 cluster that
serves it (JOBDECK_QUEUE_CLUSTERS) wakes for it and claims it.

Timeouts: OPTIONS["TIMEOUT_SECONDS"] is the backend's default for its jobs; one
enqueue can set its own with `with job_options(timeout_seconds=30): task.enqueue(…)`
(Django's Task has no such field). Without either, the carrier type's default applies
(jobs.services.resolved_timeout).

Dependencies: `with job_options(depends_on=[result, 12]): task.enqueue(…)` makes the
job wait until those jobs (TaskResults of this backend, or job ids) completed; with
`on_parent_failure="run"` it runs once they ended, whatever happened. A parent that
failed or was cancelled cancels a "cancel" child: its TaskResult then reads FAILED
(jobs.engine.dependencies; docs/workflows.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from django.core import checks
from django.core.exceptions import ValidationError
from django.db import transaction
from django.tasks import Task, TaskResult, TaskResultStatus, task_backends
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils.dateparse import parse_datetime
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from . import queues, services
from .models import AuditAction, Job, JobStatus, TaskStatus
from .models import Task as JobTask

CARRIER = "tasks.call"

# The carrier logs this line when an attempt starts (for people reading the log; the
# worker history itself is the job's attempted_by, written by each claim).
ATTEMPT_LINE = "attempt {attempt} started on worker {worker}"

# Where the carrier keeps each attempt's structured error on the task row.
ERROR_KEY = "task_errors"

STATUS_MAP: dict[str, TaskResultStatus] = {
    JobStatus.DRAFT: TaskResultStatus.READY,
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}

_FINISHED = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)

_KNOWN_OPTIONS = {"MAX_ATTEMPTS", "TIMEOUT_SECONDS"}

# The Jobdeck options of the enqueues made inside job_options(…).
_job_options: ContextVar[dict[str, Any] | None] = ContextVar("jobdeck_job_options", default=None)


@contextmanager
def job_options(
    *,
    timeout_seconds: int | None = None,
    unique_key: str | None = None,
    depends_on: Sequence[TaskResult | int] | None = None,
    on_parent_failure: str | None = None,
) -> Iterator[None]:
    """Jobdeck options for the tasks enqueued inside the block (this thread or coroutine):
    `timeout_seconds`, the seconds each attempt may run before it is interrupted and
    fails "timed out after N s" (1 to 86400; it wins over OPTIONS["TIMEOUT_SECONDS"]);
    `unique_key`: while a task's job with that key is pending or running, enqueue returns
    that job's TaskResult instead of a new one (docs/flow-control.md);
    `depends_on`: TaskResults of this backend or job ids the task's job waits for, and
    `on_parent_failure`: "cancel" (the default: a parent that fails or is cancelled
    cancels it) or "run" (it runs once every parent ended, whatever happened).

        with job_options(timeout_seconds=30, unique_key="report:42"):
            send_report.enqueue(42)
        with job_options(depends_on=[extract_result], on_parent_failure="run"):
            cleanup.enqueue()

    A bad value is refused at enqueue (ValidationError naming the field)."""
    token = _job_options.set(
        {
            **(_job_options.get() or {}),
            "timeout_seconds": timeout_seconds,
            "unique_key": unique_key,
            "depends_on": depends_on,
            "on_parent_failure": on_parent_failure,
        }
    )
    try:
        yield
    finally:
        _job_options.reset(token)


def parent_ids(depends_on: Any) -> Any:
    """job_options' `depends_on` as job ids: a TaskResult stands for its job when its
    backend is a Jobdeck one (its id is the job id); anything else is passed on for
    jobs.services.valid_depends_on to judge."""
    if not isinstance(depends_on, list | tuple):
        return depends_on
    ids: list[Any] = []
    for parent in depends_on:
        if isinstance(parent, TaskResult):
            if not isinstance(task_backends[parent.backend], JobdeckBackend):
                raise ValidationError(
                    {
                        "depends_on": [
                            f"Task result {parent.id!r} is of backend {parent.backend!r}, "
                            "not a Jobdeck one: only Jobdeck jobs can be waited for."
                        ]
                    }
                )
            parent = int(parent.id)
        ids.append(parent)
    return ids


def resolve_task(path: str) -> Task:
    """The django.tasks Task at import path `path`; InvalidTask for anything else.

    Only a Task instance whose own module path is `path` is accepted, so a job can
    never make a worker call an arbitrary callable.
    """
    try:
        obj = import_string(path)
    except ImportError as exc:
        raise InvalidTask(f"{path!r} cannot be imported: {exc}") from exc
    if not isinstance(obj, Task):
        raise InvalidTask(f"{path!r} is not a django.tasks.Task")
    if obj.module_path != path:
        raise InvalidTask(f"{path!r} is an alias of the task {obj.module_path!r}")
    return obj


def exception_class_path(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def worker_history(job: Job) -> list[tuple[datetime, str]]:
    """(start time, worker) of each attempt, oldest first: the job's attempted_by (a
    job claimed before that column existed has only its last attempt's)."""
    history = []
    for worker, started in job.attempted_by or []:
        at = parse_datetime(str(started))
        if at is not None:
            history.append((at if at.tzinfo else at.replace(tzinfo=UTC), str(worker)))
    if not history and job.attempts and job.started_at is not None:
        history.append((job.started_at, job.worker))
    return history


def _errors(job: Job, task_row: JobTask | None) -> list[TaskError]:
    """Failures of the task: structured (kept by the carrier) or derived from Job.error."""
    if job.status == JobStatus.COMPLETED:
        return []
    if task_row is not None and task_row.status != TaskStatus.SUCCEEDED:
        recorded = task_row.result.get(ERROR_KEY) if isinstance(task_row.result, dict) else None
        errors = [
            TaskError(
                exception_class_path=str(info["exception_class_path"]),
                traceback=str(info["traceback"]),
            )
            for info in recorded or []
            if isinstance(info, dict) and {"exception_class_path", "traceback"} <= info.keys()
        ]
        if errors:
            return errors
    if job.status == JobStatus.CANCELLED:
        return [
            TaskError(
                exception_class_path="jobs.exceptions.JobCancelled",
                traceback=job.error or f"job #{job.pk} was cancelled",
            )
        ]
    if job.error:
        # Failed outside the task function (worker lost, unknown task path, …).
        return [TaskError(exception_class_path="jobs.exceptions.JobError", traceback=job.error)]
    return []


def _with_options(task: Task, changes: dict[str, Any]) -> Task:
    """`task` with the job's options, not validated again: the job was validated at
    enqueue, and its result must stay readable if QUEUES changes later."""
    clone = object.__new__(type(task))
    for f in fields(task):
        object.__setattr__(clone, f.name, changes.get(f.name, getattr(task, f.name)))
    return clone


def result_from_job(
    job: Job,
    *,
    alias: str,
    task: Task | None = None,
    task_row: JobTask | None = None,
) -> TaskResult:
    """The TaskResult a `tasks.call` job stands for (its id is the job id)."""
    config = job.config
    if task is None:
        task = resolve_task(config["task_path"])
    changes: dict[str, Any] = {"priority": job.priority, "backend": alias}
    if config.get("queue_name"):
        changes["queue_name"] = config["queue_name"]
    if job.run_after is not None:
        changes["run_after"] = job.run_after
    task = _with_options(task, changes)
    status = STATUS_MAP[job.status]
    if task_row is None and status != TaskResultStatus.SUCCESSFUL and job.attempts:
        task_row = JobTask.objects.filter(job_id=job.pk).order_by("position").first()
    history = worker_history(job)
    worker_ids = [worker for _, worker in history]
    result: TaskResult = TaskResult(
        task=task,
        id=str(job.pk),
        status=status,
        enqueued_at=job.queued_at or job.created_at,
        started_at=history[0][0] if history else job.started_at,
        finished_at=job.finished_at if status in _FINISHED else None,
        last_attempted_at=job.started_at,
        args=config.get("args", []),
        kwargs=config.get("kwargs", {}),
        backend=alias,
        errors=_errors(job, task_row),
        worker_ids=worker_ids,
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


class JobdeckBackend(BaseTaskBackend):
    """Runs django.tasks Tasks as Jobdeck jobs on django-q2 clusters."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        self.max_attempts: int | None = self.options.get("MAX_ATTEMPTS")
        self.timeout_seconds: int | None = self.options.get("TIMEOUT_SECONDS")

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Create a `tasks.call` job; it runs once the surrounding transaction commits."""
        self.validate_task(task)
        # Django requires JSON arguments: normalise (TypeError/ValueError as Django's
        # own backends raise) and round-trip so the result shows what the worker gets.
        args = json.loads(json.dumps(normalize_json(list(args)), allow_nan=False))
        kwargs = json.loads(json.dumps(normalize_json(dict(kwargs)), allow_nan=False))
        config = {
            "task_path": task.module_path,
            "args": args,
            "kwargs": kwargs,
            "queue_name": task.queue_name,
            "backend": self.alias,
            "takes_context": task.takes_context,
        }
        options = _job_options.get() or {}
        timeout = options.get("timeout_seconds")
        with transaction.atomic():
            job = services.job_create(
                job_type=CARRIER,
                config=config,
                priority=task.priority,
                run_after=task.run_after,
                max_attempts=self.max_attempts,
                timeout_seconds=self.timeout_seconds if timeout is None else timeout,
                queue=task.queue_name,
                unique_key=options.get("unique_key"),
                depends_on=parent_ids(options.get("depends_on")),
                on_parent_failure=options.get("on_parent_failure"),
                allow_internal=True,
            )
            if job.existing:  # the key's job is pending or running: that one
                if job.job_type != CARRIER:
                    raise InvalidTask(
                        f"unique key {job.unique_key!r} is held by job #{job.pk} "
                        f"({job.job_type}), not a task"
                    )
                return result_from_job(job, alias=self.alias)
            services.audit(
                job=job,
                user=None,
                via="tasks",
                action=AuditAction.CREATED,
                detail={
                    "task": task.module_path,
                    "queue": task.queue_name,
                    **({"depends_on": job.parent_ids} if job.parent_ids else {}),
                },
            )
        result = result_from_job(job, alias=self.alias, task=task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The TaskResult of job `result_id`; TaskResultDoesNotExist if no such task job."""
        try:
            pk = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        job = Job.objects.filter(pk=pk, job_type=CARRIER).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return result_from_job(job, alias=self.alias)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = []
        for name in sorted(set(self.options) - _KNOWN_OPTIONS):
            messages.append(
                checks.Warning(
                    f"TASKS[{self.alias!r}]['OPTIONS'] has an unknown key {name!r}.",
                    hint=f"Known keys: {', '.join(sorted(_KNOWN_OPTIONS))}.",
                    id="jobdeck.W101",
                )
            )
        timeout = self.timeout_seconds
        if timeout is not None and not services.timeout_is_valid(timeout):
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}]['OPTIONS']['TIMEOUT_SECONDS'] is {timeout!r}.",
                    hint=services.TIMEOUT_ERROR,
                    id="jobdeck.E102",
                )
            )
        for queue in sorted(self.queues - queues.known_queues()):
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}]['QUEUES'] names {queue!r}, which no cluster serves.",
                    hint="Map it in JOBDECK_QUEUE_CLUSTERS (queue=cluster).",
                    id="jobdeck.E101",
                )
            )
        return messages
