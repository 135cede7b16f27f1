"""The worker's heartbeat thread and its name; the worker's presence (workers page)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from .. import engine, queues
from ..models import WORKER_PRUNE_AFTER, WorkerProcess
from .logbuffer import LogBuffer

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


def announce(now=None) -> None:
    """Record (or refresh) this worker process's row: one UPDATE, an INSERT the first time."""
    now = now or timezone.now()
    name = worker_name()
    fields = {"seen_at": now, "rss_bytes": resident_bytes()}
    if WorkerProcess.objects.filter(name=name).update(**fields):
        return
    WorkerProcess.objects.filter(seen_at__lt=now - WORKER_PRUNE_AFTER).delete()
    host, parent = socket.gethostname(), os.getppid()
    # A recycled worker joins a running cluster: keep the cluster's start.
    sibling = (
        WorkerProcess.objects.filter(host=host, cluster_pid=parent)
        .order_by("cluster_started_at")
        .values_list("cluster_started_at", flat=True)
        .first()
    )
    WorkerProcess.objects.update_or_create(
        name=name,
        defaults={
            **fields,
            "host": host,
            "pid": os.getpid(),
            "cluster": queues.this_cluster(),
            "cluster_pid": parent,
            "cluster_started_at": sibling or now,
            "queues": queues.served_queues(),
            "started_at": now,
        },
    )


class Heartbeat:
    """One daemon thread per worker process, beating for the jobs it is running (one,
    or one per drain thread: jobs.worker.threads) and writing their waiting log lines
    (logbuffer) once they are due.

    The thread has its own database connection. A worker killed with SIGKILL stops
    beating and the sweep recovers its job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # job id → (attempt, its log buffer), for every job this process is running.
        self._current: dict[int, tuple[int, LogBuffer | None]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._present = False  # announce this worker on the workers page

    def register(self) -> None:
        """Start beating for this worker process itself (django-q2's post_spawn), so
        the workers page lists it busy or idle from its start."""
        if settings.JOBDECK_HEARTBEAT_SECONDS <= 0:
            return
        with self._lock:
            self._present = True
            self._start()

    def watch(self, job_id: int, attempts: int, logs: LogBuffer | None = None) -> None:
        if settings.JOBDECK_HEARTBEAT_SECONDS <= 0:
            return
        with self._lock:
            self._current[job_id] = (attempts, logs)
            self._start()

    def _start(self) -> None:
        """Start the thread unless it runs in this process (called holding the lock)."""
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._beat,
                args=(settings.JOBDECK_HEARTBEAT_SECONDS,),
                name="jobdeck-heartbeat",
                daemon=True,
            )
            self._thread.start()

    def clear(self, job_id: int) -> None:
        with self._lock:
            self._current.pop(job_id, None)

    def watched(self) -> list[int]:
        """The ids of the jobs it beats for now."""
        with self._lock:
            return sorted(self._current)

    def _beat(self, interval: float) -> None:
        flush_every = settings.JOBDECK_LOG_FLUSH_SECONDS
        tick = min(interval, flush_every) if flush_every > 0 else interval
        next_beat = time.monotonic() + interval
        next_presence = time.monotonic()
        while True:
            if self._present and time.monotonic() >= next_presence:
                next_presence = time.monotonic() + interval
                try:
                    announce()
                except Exception:  # the database may be restarting; try again next beat
                    logger.warning("worker presence beat failed", exc_info=True)
                    close_old_connections()
                    connection.close()
            time.sleep(tick)
            with self._lock:
                current = list(self._current.items())
            beat = bool(current) and time.monotonic() >= next_beat
            if beat:
                next_beat = time.monotonic() + interval
            for job_id, (attempts, logs) in current:
                try:
                    if logs is not None and logs.due():
                        logs.flush()
                    if beat:
                        engine.heartbeat(job_id, attempts)
                except Exception:  # the database may be restarting; try again next tick
                    logger.warning(
                        "heartbeat or log flush for job %s failed", job_id, exc_info=True
                    )
                    close_old_connections()
                    connection.close()


heartbeat = Heartbeat()


def on_worker_spawn(sender=None, proc_name: str = "", **kwargs) -> None:
    """django-q2's post_spawn, sent in each new worker process (only those): announce it."""
    heartbeat.register()
