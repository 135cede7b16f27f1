"""`tasks.call`: the carrier job type that runs a django.tasks Task inside Jobdeck.

Only the task backend creates these jobs (`user_creatable = False`). The worker
imports the configured path only to check that it is a `django.tasks.Task`, then
calls that task's function: never an arbitrary callable named by input.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from traceback import format_exception
from typing import Any

from django.dispatch import Signal
from django.tasks import TaskContext, TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from rest_framework import serializers

from .exceptions import JobTimedOut
from .models import LogLevel
from .models import Task as JobTask
from .registry import JobType, register
from .tasks_backend import (
    ATTEMPT_LINE,
    CARRIER,
    ERROR_KEY,
    exception_class_path,
    resolve_task,
    result_from_job,
)
from .worker.context import JobContext

logger = logging.getLogger(__name__)


class TaskCallConfig(serializers.Serializer):
    task_path = serializers.RegexField(
        r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$",
        max_length=500,
        help_text="Import path of a module-level django.tasks Task.",
    )
    args = serializers.ListField(child=serializers.JSONField(), default=list)
    kwargs = serializers.DictField(child=serializers.JSONField(), default=dict)
    queue_name = serializers.CharField(max_length=100, default="default")
    backend = serializers.CharField(max_length=100, default="default")
    takes_context = serializers.BooleanField(default=False)


# --- the task function's `logging` records become the job's log lines ----------------

_capturing: ContextVar[_LogCapture | None] = ContextVar("jobdeck_task_log", default=None)

_LEVELS = (
    (logging.ERROR, LogLevel.ERROR),
    (logging.WARNING, LogLevel.WARNING),
    (logging.INFO, LogLevel.INFO),
)


class _LogCapture(logging.Handler):
    """Root handler writing records of the running task to its job log.

    Records are matched by a context variable, which async_to_sync carries into an
    async task's event loop thread but other threads (the heartbeat) do not share.
    Inside an event loop the ORM may not be used, so those lines are buffered and
    written when the task returns.
    """

    def __init__(self, ctx: JobContext) -> None:
        super().__init__(level=logging.INFO)
        self.ctx = ctx
        self.buffer: list[tuple[str, int]] = []
        self.writing = False

    def emit(self, record: logging.LogRecord) -> None:
        if _capturing.get() is not self or self.writing:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(format_exception(record.exc_info[1]))
            level = next((lv for n, lv in _LEVELS if record.levelno >= n), LogLevel.DEBUG)
            if _in_event_loop():
                self.buffer.append((message, level))
            else:
                self._write(message, level)
        except Exception:
            self.handleError(record)

    def _write(self, message: str, level: int) -> None:
        self.writing = True  # the write itself may log (SQL debug): never recurse
        try:
            self.ctx.log(message, level)
        finally:
            self.writing = False

    def flush_buffer(self) -> None:
        lines, self.buffer = self.buffer, []
        for message, level in lines:
            self._write(message, level)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextmanager
def capture_logs(ctx: JobContext) -> Iterator[None]:
    handler = _LogCapture(ctx)
    root = logging.getLogger()
    token = _capturing.set(handler)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        _capturing.reset(token)
        handler.flush_buffer()


# --- the carrier ---------------------------------------------------------------------


def _record_error(task_id: int, error: TaskError) -> None:
    """Append the attempt's error to the task row (the runner marks it failed next).

    get_result reads these back, so a TaskError keeps the exact exception class
    path and traceback; earlier attempts' errors stay until a manual retry.
    """
    current = JobTask.objects.filter(pk=task_id).values_list("result", flat=True).first()
    errors = current.get(ERROR_KEY) if isinstance(current, dict) else None
    errors = list(errors) if isinstance(errors, list) else []
    errors.append(
        {"exception_class_path": error.exception_class_path, "traceback": error.traceback}
    )
    JobTask.objects.filter(pk=task_id).update(result={ERROR_KEY: errors})


def _send(signal: Signal, sender: type, result: TaskResult, ctx: JobContext) -> None:
    """Send a task signal; a failing receiver is logged, it does not fail the task."""
    for receiver, response in signal.send_robust(sender, task_result=result):
        if isinstance(response, Exception):
            logger.error("task signal receiver %r failed", receiver, exc_info=response)
            ctx.warning(f"signal receiver {receiver!r} failed: {response!r}")


@register
class TasksCall(JobType):
    """Runs one django.tasks Task enqueued through `jobs.tasks_backend.JobdeckBackend`."""

    name = CARRIER
    label = "django.tasks call"
    description = "A Django @task function enqueued through Jobdeck's django.tasks backend."
    config_serializer = TaskCallConfig
    user_creatable = False

    def tasks(self, config: dict) -> list[str]:
        # The job's single task is named by the task's import path (admin, API, logs).
        return [config["task_path"][: JobTask._meta.get_field("name").max_length]]

    def run(self, ctx: JobContext) -> Any:
        config = ctx.config
        task = resolve_task(config["task_path"])  # refuses anything but a Task
        alias = config.get("backend") or task.backend
        ctx.check_cancelled()  # a cancel cannot interrupt the function; this is the last stop
        ctx.log(ATTEMPT_LINE.format(attempt=ctx.attempt, worker=ctx.job.worker))
        result = result_from_job(ctx.job, alias=alias, task=task)
        task = result.task
        backend = task.get_backend()
        _send(task_started, type(backend), result, ctx)
        try:
            with capture_logs(ctx):
                if task.takes_context:
                    context: TaskContext = TaskContext(task_result=result)
                    raw = task.call(context, *result.args, **result.kwargs)
                else:
                    raw = task.call(*result.args, **result.kwargs)
            # Django requires a JSON round-trip of the return value (NaN is not JSON).
            value = json.loads(json.dumps(normalize_json(raw), allow_nan=False))
        except (Exception, JobTimedOut) as exc:  # a timeout is the task's failure too
            error = TaskError(
                exception_class_path=exception_class_path(exc),
                traceback="".join(format_exception(exc)),
            )
            if ctx.task is not None:
                _record_error(ctx.task.pk, error)
            result.errors.append(error)
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            object.__setattr__(result, "finished_at", timezone.now())
            _send(task_finished, type(backend), result, ctx)
            raise
        object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "finished_at", timezone.now())
        object.__setattr__(result, "_return_value", value)
        _send(task_finished, type(backend), result, ctx)
        return value

    def analyze(self, config: dict, release=None) -> dict:
        return {"tasks": self.tasks(config), "task_path": config["task_path"], "warnings": []}
