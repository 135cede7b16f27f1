"""The worker's heartbeat thread and its name."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection

from .. import engine
from .logbuffer import LogBuffer

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """One daemon thread per worker process, beating for the job it is running and
    writing that job's waiting log lines (logbuffer) once they are due.

    The thread has its own database connection. A worker killed with SIGKILL stops
    beating and the sweep recovers its job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[int, int, LogBuffer | None] | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def watch(self, job_id: int, attempts: int, logs: LogBuffer | None = None) -> None:
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
                    engine.heartbeat(job_id, attempts)
            except Exception:  # the database may be restarting; try again next tick
                logger.warning("heartbeat or log flush for job %s failed", job_id, exc_info=True)
                close_old_connections()
                connection.close()


heartbeat = Heartbeat()
