"""Several jobs at once in one worker process: the drain loop in threads.

With JOBDECK_WORKER_THREADS (or a queue's JOBDECK_QUEUE_THREADS) above 1, a wake-up
runs up to that many drain loops (jobs.worker.drain.drain), each in its own thread
with its own database connection, each claiming and running jobs exactly as the
single loop does: every claim is the engine's, every write fenced on it. The
process's heartbeat thread beats for all of them; per-job timeouts come from the
watchdog (jobs.worker.timeouts), as signals reach only the main thread.

The pool grows with the work: the first thread takes the job the message names,
and each successful claim starts two more threads while fewer than the limit run; a
thread that finds nothing ends its part of the wake-up. Its thread is then parked,
keeping its database connection (CONN_MAX_AGE, as django-q2 keeps the main
thread's), for the next wake-up of this process; a thread parked for PARK_SECONDS
closes its connection and exits. Meanwhile the main thread waits, looking for new
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
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

from django.db import close_old_connections, connections
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
# Drain loops a successful claim starts, while fewer than the limit run.
SPAWN_PER_CLAIM = 2
# How long a drain thread waits, parked, for the next wake-up before it closes its
# database connection and exits.
PARK_SECONDS = 60.0


class _Parked:
    """A drain thread between wake-ups: what it should run next, and the event for it."""

    def __init__(self, work: Callable[[], None]) -> None:
        self.work: Callable[[], None] | None = work
        self.ready = threading.Event()
        self.ready.set()
        self.thread: threading.Thread | None = None


class Crew:
    """The drain threads of this worker process, kept between wake-ups."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Parked] = []
        self._pid = os.getpid()
        self._started = 0

    def start(self, work: Callable[[], None]) -> None:
        """Run `work` in a parked thread, or in a new one if none is parked."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child has none of its parent's threads
                self._pid, self._idle = os.getpid(), []
            if self._idle:
                parked = self._idle.pop()
                parked.work = work
                parked.ready.set()
                return
            self._started += 1
            parked = _Parked(work)
            parked.thread = threading.Thread(
                target=self._serve,
                args=(parked,),
                name=f"jobdeck-drain-{self._started}",
                daemon=True,  # a worker replaced after django-q2's timeout does not wait
            )
        parked.thread.start()

    def _serve(self, parked: _Parked) -> None:
        try:
            while True:
                if not parked.ready.wait(PARK_SECONDS):
                    with self._lock:
                        if parked in self._idle:  # not taken meanwhile: leave
                            self._idle.remove(parked)
                            return
                    continue  # taken just now: its event is set
                parked.ready.clear()
                work, parked.work = parked.work, None
                if work is None:  # dismissed
                    return
                try:
                    close_old_connections()  # parked a while: the database may have gone
                    work()
                finally:
                    # Kept while usable and younger than CONN_MAX_AGE, as between tasks.
                    close_old_connections()
                    with self._lock:
                        self._idle.append(parked)
        finally:
            connections.close_all()  # this thread's own (Django's are per thread)

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def dismiss(self, timeout: float = 5.0) -> None:
        """End the parked threads, each closing its connection (tests: before the test
        database is dropped)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for parked in idle:
            parked.work = None
            parked.ready.set()
        for parked in idle:
            if parked.thread is not None:
                parked.thread.join(timeout)


crew = Crew()


class Pool(Slots):
    """The drain threads of one wake-up, and the slots they share."""

    def __init__(self, worker: str, deadline: float, limits: dict[str, int]) -> None:
        self.worker = worker
        self.deadline = deadline
        self.limits = limits  # served queue → jobs of it this process runs at once
        self.size = max(limits.values())
        self._state = threading.Condition()
        self._busy: Counter[str] = Counter()  # queue → its jobs running here now
        self._alive = 0  # drain loops started and not ended
        self._idents: set[int] = set()  # the threads running them
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
            # Work was there: two more threads may find more (the pool doubles each
            # round of claims, so a wake-up reaches ten threads after three rounds).
            for _ in range(SPAWN_PER_CLAIM):
                if self._room():
                    self._spawn(None)

    def ended(self, claimed: engine.Claim) -> None:
        with self._state:
            self._busy[claimed.job.queue] -= 1

    def may_wait(self) -> bool:
        """Only the last thread waits for a job about to fall due; the others end."""
        with self._state:
            return self._alive == 1

    # --- the threads ------------------------------------------------------------------

    def _room(self) -> bool:
        """A thread may start: fewer than the limit run and the deadline is ahead."""
        return self._alive < self.size and time.monotonic() < self.deadline

    def _spawn(self, job_id: int | None) -> None:
        """Start a drain loop in a thread of the crew (called holding self._state)."""
        self._alive += 1
        crew.start(lambda: self._drain(job_id))

    def _drain(self, job_id: int | None) -> None:
        ran = 0
        with self._state:
            self._idents.add(threading.get_ident())
        try:
            ran = drain(self.worker, self.deadline, job_id, self)
        except BaseException as exc:  # raised again by run(), in the main thread
            logger.exception("a drain thread stopped")
            with self._state:
                self.errors.append(exc)
        finally:
            with self._state:
                self.ran += ran
                self._alive -= 1
                self._idents.discard(threading.get_ident())
                self._state.notify_all()

    def _wait(self, until: float) -> bool:
        """Wait until a drain loop ends or `until` (time.monotonic()); False once none is
        left."""
        with self._state:
            if self._alive:
                self._state.wait(max(until - time.monotonic(), 0))
            return bool(self._alive)

    def _runnable(self) -> bool:
        """Whether a served queue below its limit has a runnable job (one read)."""
        with self._state:
            open_queues = [q for q, limit in self.limits.items() if self._busy[q] < limit]
        return bool(open_queues) and Job.objects.runnable(queues=open_queues).exists()

    def _interrupt(self, exception: type[BaseException]) -> None:
        with self._state:
            for ident in self._idents:
                raise_in_thread(ident, exception)
            until = time.monotonic() + INTERRUPT_GRACE_SECONDS
            while self._alive and time.monotonic() < until:
                self._state.wait(max(until - time.monotonic(), 0))
