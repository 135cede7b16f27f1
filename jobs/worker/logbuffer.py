"""The log lines of the job a worker is running, written in batches.

One INSERT and one commit per line caps a chatty handler at a few hundred lines a
second. A running job's lines are kept here and written as one multi-row INSERT:
by the worker's heartbeat thread once the oldest waiting line is
JOBDECK_LOG_FLUSH_SECONDS old (so a line shows in the live log even while the
handler blocks), when JOBDECK_LOG_FLUSH_LINES are waiting, and at the latest with
the task's own bookkeeping (the last task's lines commit with the job's
completion). JOBDECK_LOG_FLUSH_SECONDS=0 writes every line at once.

An active buffer is registered with the engine's log writer: a line written
directly for its job (engine.append_log, e.g. from a signal receiver) first
flushes the buffer, so lines keep the order they were logged in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone

from .. import engine
from ..engine import logs


class LogBuffer:
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._lines: list[engine.LogLine] = []
        self._oldest = 0.0  # time.monotonic() of the oldest waiting line
        self._guard = threading.Lock()  # the list itself; held for microseconds
        # Held while lines are taken *and* inserted, so two flushers (the worker and its
        # background thread) cannot write ids out of order. add() never waits for it.
        self._writing = threading.Lock()

    def add(self, message: str, level: int, task_id: int | None) -> None:
        line = (task_id, timezone.now(), level, engine.clean_message(message))
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
    def writing(self) -> Iterator[list[engine.LogLine]]:
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
            engine.append_logs(self.job_id, lines)

    def activate(self) -> None:
        """Register with the engine: direct lines for this job flush this buffer first."""
        logs.register_buffer(self.job_id, self.flush)

    def deactivate(self) -> None:
        logs.unregister_buffer(self.job_id, self.flush)
