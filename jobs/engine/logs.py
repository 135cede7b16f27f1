"""Writing job log lines: one line (the ORM), or many in one statement (sql: insert_logs).

A worker buffers the lines of the job it runs (jobs.worker.logbuffer) and registers
the buffer here: a line written directly for that job (`append`, e.g. from a signal
receiver) first flushes the buffer, so lines keep the order they were logged in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection

from ..models import JobLog, LogLevel
from .queries import db_datetime, db_json, execute

LogLine = tuple[int | None, datetime, int, str]

# job id → flush function of the buffer of a job this process is running.
_buffers: dict[int, Callable[[], None]] = {}


def register_buffer(job_id: int, flush: Callable[[], None]) -> None:
    _buffers[job_id] = flush


def unregister_buffer(job_id: int, flush: Callable[[], None]) -> None:
    if _buffers.get(job_id) == flush:
        del _buffers[job_id]


def clean_message(message: str) -> str:
    """Bounded, and storable everywhere (PostgreSQL text cannot hold NUL)."""
    limit = settings.JOBDECK_LOG_MESSAGE_MAX
    message = message.replace("\x00", "\\x00")
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    return message


def append(
    job_id: int, message: str, level: int = LogLevel.INFO, task_id: int | None = None
) -> JobLog:
    """Append one log line (one INSERT; its id is the follow cursor)."""
    flush = _buffers.get(job_id)
    if flush is not None:
        flush()  # lines the running job buffered come first
    return JobLog.objects.create(
        job_id=job_id, task_id=task_id, level=level, message=clean_message(message)
    )


def append_many(job_id: int, lines: Sequence[LogLine]) -> None:
    """Append `lines` (task id, created at, level, clean message), in order, in one
    statement; their ids follow the given order."""
    if not lines:
        return
    if connection.vendor == "postgresql":
        execute("insert_logs", {"job_id": job_id, **line_arrays(lines)})
        return
    rows = [[task, db_datetime(at), level, message] for task, at, level, message in lines]
    execute("insert_logs", {"job_id": job_id, "lines": db_json(rows)})


def line_arrays(lines: Sequence[LogLine]) -> dict[str, Any]:
    """PostgreSQL: the parallel-array parameters of insert_logs, finish_task, complete."""
    tasks, times, levels, messages = (
        (list(c) for c in zip(*lines, strict=True)) if lines else ([], [], [], [])
    )
    return {
        "log_task_ids": tasks,
        "log_times": times,
        "log_levels": levels,
        "log_messages": messages,
    }
