"""Several jobs at once in one worker process: the drain loop in threads.

With JOBDECK_WORKER_THREADS (or a queue's JOBDECK_QUEUE_THREADS) above 1, a wake-up
runs up to that many drain loops (jobs.worker.drain.drain), each in its own thread
with its own database connection, each claiming and running jobs exactly as the
single loop does: every claim is the engine's, every write fenced on it. The
process's heartbeat thread beats for all of them; per-job timeouts come from the
watchdog (jobs.worker.timeouts), as signals reach only the main thread.

The pool grows with the work: the first thread takes the job the message names,
and each successful claim starts one more thread while fewer than the limit run; a
thread that finds nothing ends. Meanwhile the main thread waits, looking for new
runnable jobs a few times a second while a slot is free (a thread for them), and
raises django-q2's own timeout in every thread, so each records its task's failure
before the worker is replaced. No thread claims past the drain's deadline, so a
wake-up lasts at most JOBDECK_DRAIN_SECONDS plus its longest job, as with one thread.

Per-queue limits: a thread claims only from the served queues below their limit.
When those limits differ, claims in a process take turns (a lock held across the
claim), so two threads cannot both take a queue's last slot.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

from django.db import connections
from django_q.exceptions import TimeoutException

from .. import engine
from ..models import Job
from .drain import Slots, drain
from .timeouts import carrying, raise_in_thread

logger = logging.getLogger(__name__)

# How often the waiting main thread looks for runnable jobs while a slot is free.
LOOK_SECONDS = 0.25
# After django-q2's timeout, how long the threads get to record their tasks' failure.
INTERRUPT_GRACE_SECONDS = 2.0


class Pool(Slots):
    """The drain threads of one wake-up, and the slots they share."""

    def __init__(self, worker: str, deadline: float, limits: dict[str, int]) -> None:
        self.worker = worker
        self.deadline = deadline
        self.limits = limits  # served queue → jobs of it this process runs at once
        self.size = max(limits.values())
        self._state = threading.Condition()
        self._busy: Counter[str] = Counter()  # queue → its jobs running here now
        self._threads: set[threading.Thread] = set()  # alive drain threads
        self._turns: contextlib.AbstractContextManager[object] = (
            threading.Lock() if len(set(limits.values())) > 1 else contextlib.nullcontext()
        )
        self.ran = 0
        self.errors: list[BaseException] = []

    def run(self, job_id: int | None) -> int:
        """Drain in threads until all have ended; return how many jobs they ran."""
        with self._state:
            self._spawn(job_id)
        next_look = time.monotonic() + LOOK_SECONDS
        try:
            while self._wait(next_look):
                if time.monotonic() < next_look:
                    continue  # a thread ended: only see whether any is left
                next_look = time.monotonic() + LOOK_SECONDS
                if self._room() and self._runnable():
                    with self._state:
                        if self._room():
                            self._spawn(None)
        except TimeoutException as exc:
            # django-q2's timeout (a SIGALRM in this thread): the worker is about to be
            # replaced. Each thread records its task's failure first, as one loop does.
            self._interrupt(carrying(exc))
            raise
        if self.errors:
            raise self.errors[0]
        return self.ran

    # --- Slots: what each drain loop asks ---------------------------------------------

    @contextlib.contextmanager
    def claiming(self) -> Iterator[list[str] | None]:
        with self._turns:
            with self._state:
                served = [q for q, limit in sorted(self.limits.items()) if self._busy[q] < limit]
            yield served

    def started(self, claimed: engine.Claim | None) -> None:
        if claimed is None:
            return
        with self._state:
            self._busy[claimed.job.queue] += 1
            # Work was there: one more thread may find more.
            if self._room():
                self._spawn(None)

    def ended(self, claimed: engine.Claim) -> None:
        with self._state:
            self._busy[claimed.job.queue] -= 1

    def may_wait(self) -> bool:
        """Only the last thread waits for a job about to fall due; the others end."""
        with self._state:
            return len(self._threads) == 1

    # --- the threads ------------------------------------------------------------------

    def _room(self) -> bool:
        """A thread may start: fewer than the limit run and the deadline is ahead."""
        return len(self._threads) < self.size and time.monotonic() < self.deadline

    def _spawn(self, job_id: int | None) -> None:
        """Start a drain thread (called holding self._state)."""
        thread = threading.Thread(
            target=self._drain,
            args=(job_id,),
            name=f"jobdeck-drain-{len(self._threads) + 1}",
            daemon=True,  # a worker replaced after django-q2's timeout does not wait
        )
        self._threads.add(thread)
        thread.start()

    def _drain(self, job_id: int | None) -> None:
        ran = 0
        try:
            ran = drain(self.worker, self.deadline, job_id, self)
        except BaseException as exc:  # raised again by run(), in the main thread
            logger.exception("a drain thread stopped")
            with self._state:
                self.errors.append(exc)
        finally:
            # This thread's own connection (Django's are per thread) ends with it.
            connections.close_all()
            with self._state:
                self.ran += ran
                self._threads.discard(threading.current_thread())
                self._state.notify_all()

    def _wait(self, until: float) -> bool:
        """Wait until a thread ends or `until` (time.monotonic()); False once no thread
        is left."""
        with self._state:
            if self._threads:
                self._state.wait(max(until - time.monotonic(), 0))
            return bool(self._threads)

    def _runnable(self) -> bool:
        """Whether a served queue below its limit has a runnable job (one read)."""
        with self._state:
            open_queues = [q for q, limit in self.limits.items() if self._busy[q] < limit]
        return bool(open_queues) and Job.objects.runnable(queues=open_queues).exists()

    def _interrupt(self, exception: type[BaseException]) -> None:
        with self._state:
            threads = list(self._threads)
        for thread in threads:
            if thread.ident is not None:
                raise_in_thread(thread.ident, exception)
        until = time.monotonic() + INTERRUPT_GRACE_SECONDS
        for thread in threads:
            thread.join(max(until - time.monotonic(), 0))
