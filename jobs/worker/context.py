"""What a running handler sees: its job's config and release, log, progress, cancel check."""

from __future__ import annotations

from typing import Any

from django.utils.functional import cached_property

from .. import engine, registry
from ..exceptions import JobCancelled
from ..models import Job, LogLevel, Task
from .logbuffer import LogBuffer


class JobContext:
    def __init__(self, job: Job):
        self.job = job
        self.task: Task | None = None
        # Lines are written in batches (logbuffer); the worker flushes at task ends.
        self.logs = LogBuffer(job.pk)

    @property
    def config(self) -> dict:
        return self.job.config

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, …"""
        return self.job.attempts

    @cached_property
    def release(self) -> Any:
        return self.job.release

    def log(self, message: Any, level: int = LogLevel.INFO) -> None:
        self.logs.add(
            registry.redact_text(self.job.job_type, self.job.config, str(message)),
            level,
            self.task.pk if self.task else None,
        )

    def warning(self, message: Any) -> None:
        self.log(message, LogLevel.WARNING)

    def progress(self, done: int, total: int) -> None:
        """Progress inside the current task (cheap to call)."""
        if self.task is not None:
            engine.task_progress(self.job.pk, self.task.pk, done, total)

    def check_cancelled(self) -> None:
        """Raise JobCancelled if someone asked to cancel this job."""
        if engine.cancel_requested(self.job.pk):
            raise JobCancelled(f"job #{self.job.pk} was cancelled")
