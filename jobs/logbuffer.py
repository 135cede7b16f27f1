"""The log lines of the job a worker is running, written in batches.

One INSERT and one commit per line caps a chatty handler at a few hundred lines a
second. A running job's lines are kept here and written as one multi-row INSERT:
by the worker's background thread once the oldest waiting line is
JOBDECK_LOG_FLUSH_SECONDS old (so a line shows in the live log even while the
handler blocks), when JOBDECK_LOG_FLUSH_LINES are waiting, and at the latest with
the task's own bookkeeping (the last task's lines commit with the job's
completion). JOBDECK_LOG_FLUSH_SECONDS=0 writes every line at once.

A line written directly (services.job_log, e.g. from a signal receiver) for a job
whose buffer is active in this process first flushes the buffer, so lines keep the
order they were logged in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone

from . import services


class LogBuffer:
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._lines: list[tuple[int | None, object, int, str]] = []
        self._oldest = 0.0  # time.monotonic() of the oldest waiting line
        self._guard = threading.Lock()  # the list itself; held for microseconds
        # Held while lines are taken *and* inserted, so two flushers (the worker and its
        # background thread) cannot write ids out of order. add() never waits for it.
        self._writing = threading.Lock()

    def add(self, message: str, level: int, task_id: int | None) -> None:
        line = (task_id, timezone.now(), level, services.clean_log_message(message))
        with self._guard:
            if not self._lines:
                self._oldest = time.monotonic()
            self._lines.append(line)
            waiting = len(self._lines)
        if settings.JOBDECK_LOG_FLUSH_SECONDS <= 0 or waiting >= settings.JOBDECK_LOG_FLUSH_LINES:
            self.flush(wait=False)  # the background thread may be writing already

    def due(self) -> bool:
        """Whether the oldest waiting line has waited long enough (background thread)."""
        return bool(self._lines) and (
            time.monotonic() - self._oldest >= settings.JOBDECK_LOG_FLUSH_SECONDS
        )

    @contextmanager
    def writing(self) -> Iterator[list]:
        """The waiting lines, to be written in the caller's transaction.

        If the block raises (its transaction rolls back), the lines are put back and
        the next flush writes them.
        """
        with self._writing:
            with self._guard:
                lines, self._lines = self._lines, []
            try:
                yield lines
            except BaseException:
                with self._guard:
                    self._lines[:0] = lines
                raise

    def flush(self, *, wait: bool = True) -> None:
        """Write the waiting lines now (one multi-row INSERT)."""
        if not wait and self._writing.locked():
            return
        with self.writing() as lines:
            if lines:
                services.job_log_many(self.job_id, lines)


# The buffers of the jobs this process is running (the runner registers them).
_active: dict[int, LogBuffer] = {}


def activate(logs: LogBuffer) -> None:
    _active[logs.job_id] = logs


def deactivate(logs: LogBuffer) -> None:
    if _active.get(logs.job_id) is logs:
        del _active[logs.job_id]


def flush_active(job_id: int) -> None:
    """Write job `job_id`'s buffered lines now, if this process is running it."""
    logs = _active.get(job_id)
    if logs is not None:
        logs.flush()
