"""What a running handler sees: its job's config and release, log, progress, cancel check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.functional import cached_property

from . import registry, services
from .exceptions import JobCancelled
from .logbuffer import LogBuffer
from .models import Job, LogLevel

if TYPE_CHECKING:
    from .models import Task


class JobContext:
    def __init__(self, job: Job):
        self.job = job
        self.task: Task | None = None
        # Lines are written in batches (jobs.logbuffer); the runner flushes at task ends.
        self.logs = LogBuffer(job.pk)

    @property
    def config(self) -> dict:
        return self.job.config

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, …"""
        return self.job.attempts

    @cached_property
    def release(self):
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
        """Progress inside the current task (shown as a log line, cheap to call)."""
        services.job_task_progress(job_id=self.job.pk, task=self.task, done=done, total=total)

    def check_cancelled(self) -> None:
        """Raise JobCancelled if someone asked to cancel this job."""
        if services.job_cancel_requested(job_id=self.job.pk):
            raise JobCancelled(f"job #{self.job.pk} was cancelled")
