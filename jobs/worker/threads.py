"""Several jobs at once in one worker process: a dispatcher and its threads.

With JOBDECK_WORKER_THREADS (or a queue's JOBDECK_QUEUE_THREADS) above 1, a wake-up
runs a dispatcher in the worker's main thread (Pool) and each job it claims in a
thread of the process's crew, each thread with its own database connection. The
dispatcher is the process's only claimer: each round settles the jobs its threads
finished since the last one and claims as many runnable jobs as threads are free
(at most JOBDECK_CLAIM_BATCH), in one statement and one commit
(engine.settle_and_claim, claim_next's predicate with a LIMIT). So a batch is exactly
as large as the work that can start now: a lone job is claimed alone and at once, a
deep backlog goes in batches, no claimed job waits for a thread while shown running,
and a finished job waits only for the round in flight. Every write a thread makes is
the engine's and fenced on its claim; the process's heartbeat thread beats for all
of them; per-job timeouts come from the watchdog (jobs.worker.timeouts), as signals
reach only the main thread.

Between wake-ups a crew thread is parked, keeping its database connection
(CONN_MAX_AGE, as django-q2 keeps the main thread's); a thread parked for
PARK_SECONDS closes its connection and exits. While threads are free and none of the
last round's claims found more, the dispatcher looks again a few times a second. On
django-q2's own timeout it raises that timeout in every thread, so each records its
task's failure before the worker is replaced. Nothing is claimed past the drain's
deadline, so a wake-up lasts at most JOBDECK_DRAIN_SECONDS plus its longest job.

Per-queue limits: a round claims only from the served queues below their limit;
while one of them has less room than the round asks for, it claims per queue.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable

from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)
from django_q.exceptions import TimeoutException

from .. import broker, engine, queues
from .drain import wait_for_due_job
from .execution import Finished, complete, execute_deferred, outlasting_outage
from .timeouts import carrying, raise_in_thread

logger = logging.getLogger(__name__)

# How often the dispatcher looks for runnable jobs while a thread is free.
LOOK_SECONDS = 0.25
# The longest the dispatcher blocks waiting for a thread with none free (then it waits again).
WAIT_SECONDS = 60.0
# After django-q2's timeout, how long the threads get to record their tasks' failure.
INTERRUPT_GRACE_SECONDS = 2.0
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
                    work()  # reports its own outcome, whatever happens in it
                except BaseException:  # e.g. a timeout raised into this thread just after
                    logger.exception("a drain thread's work ended in an error")
                finally:
                    # Kept while usable and younger than CONN_MAX_AGE, as between tasks.
                    with contextlib.suppress(Exception):
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


class Pool:
    """One wake-up of a threaded worker: a dispatcher (the main thread) and the crew's
    threads running the jobs it claims.

    The dispatcher is the only claimer: each round it completes the jobs its threads
    finished since the last round and claims as many jobs as it has threads free (up to
    JOBDECK_CLAIM_BATCH), all in one statement and one commit (engine.settle_and_claim),
    then hands each job to a thread at once. A lone job is one round, as before; under
    a deep backlog each round settles and claims a batch. No job waits as "running"
    for a thread, and a finished one waits only for the round being run.
    """

    def __init__(self, worker: str, deadline: float, limits: dict[str, int]) -> None:
        self.worker = worker
        self.deadline = deadline
        self.limits = limits  # served queue → jobs of it this process runs at once
        self.size = max(limits.values())
        self.batch = max(1, int(settings.JOBDECK_CLAIM_BATCH))
        self._outcomes: queue.SimpleQueue[tuple[engine.Claim, object]] = queue.SimpleQueue()
        self._busy: Counter[str] = Counter()  # queue → its jobs running here now
        self._running = 0
        self._idents: set[int] = set()  # the threads running jobs now
        self._lock = threading.Lock()
        self._finished: list[Finished] = []  # completions for the next round
        self.ran = 0
        self.errors: list[BaseException] = []

    def run(self, job_id: int | None) -> int:
        """Claim and run jobs until none is left or the deadline passes, then wait for
        the threads and settle what they finished; return how many jobs ran."""
        fan_out = broker.DrainFanOut(
            queues.served_queues(), interval=settings.JOBDECK_FANOUT_SECONDS, at_once=job_id is None
        )
        try:
            if job_id is not None:
                claimed = engine.claim(worker=self.worker, queues=self._open(), job_id=job_id)
                self._start([claimed] if claimed is not None else [])
            while True:
                room = self._room()
                asked = min(room, self.batch)
                claims = self._round(asked)
                if claims:
                    fan_out()
                if self._running == 0 and not claims:
                    if asked and wait_for_due_job(self.deadline):
                        continue
                    break
                if claims and len(claims) == asked < room:
                    continue  # the batch's size was the bound: more may be waiting
                # Nothing more to claim now (no thread free, or nothing found): wait for
                # a thread, looking for new jobs a few times a second while one is free.
                self._collect(LOOK_SECONDS if room > len(claims) else None)
        except TimeoutException as exc:
            # django-q2's timeout (a SIGALRM in this thread): the worker is about to be
            # replaced. Each thread records its task's failure first, as one loop does.
            self._interrupt(carrying(exc))
            self._settle_alone()
            raise
        except BaseException:
            self._settle_alone()
            self._drain_threads(settle=True)
            raise
        self._drain_threads()
        if self._finished:
            self._round(0)
        if self.errors:
            raise self.errors[0]
        return self.ran

    # --- the rounds -------------------------------------------------------------------

    def _room(self) -> int:
        """How many jobs may be claimed now: free threads, none past the deadline (a
        thread's error stops only that thread: run() raises it once the others end)."""
        if time.monotonic() >= self.deadline:
            return 0
        return self.size - self._running

    def _open(self) -> list[str]:
        return [q for q, limit in sorted(self.limits.items()) if self._busy[q] < limit]

    def _round(self, asked: int) -> list[engine.Claim]:
        """Settle the finished jobs and claim up to `asked` of the open queues, in one
        statement while each open queue has that much room; else in several, each as
        large as the smallest room (the first one settling), so the most urgent job of
        the open queues is always the next one claimed."""
        finished, self._finished = self._finished, []
        claims: list[engine.Claim] = []
        while True:
            want = asked - len(claims)
            open_queues = self._open() if want > 0 else []
            limit = min([want, *(self.limits[q] - self._busy[q] for q in open_queues)])
            limit = limit if open_queues else 0
            if not limit and not finished:
                return claims
            try:
                got = _settle_and_claim(finished, self.worker, open_queues, limit)
            except BaseException:
                # Not known to be written: settled again on the way out (each completion
                # is fenced on its claim, and its log lines only with it).
                self._finished[:0] = finished
                raise
            finished = []
            self._start(got)
            claims += got
            if len(got) < limit or not limit:
                return claims

    def _start(self, claims: list[engine.Claim]) -> None:
        """Each claimed job to a crew thread. If a thread cannot start, the jobs not
        handed over stay running without a heartbeat: the sweep recovers them."""
        for claimed in claims:
            crew.start(functools.partial(self._execute, claimed))
            self._busy[claimed.job.queue] += 1
            self._running += 1

    def _execute(self, claimed: engine.Claim) -> None:
        """In a crew thread: run the job; its outcome goes back to the dispatcher, even
        if a timeout is raised into this thread as the job ends."""
        ident = threading.get_ident()
        outcome: object = None
        try:
            with self._lock:
                self._idents.add(ident)
            outcome = execute_deferred(claimed)
            with self._lock:
                self._idents.discard(ident)  # no interrupt reaches it after this
        except BaseException as exc:  # raised again by run(), in the main thread
            logger.exception("job #%s stopped its thread", claimed.job.pk)
            outcome = outcome if isinstance(outcome, Finished) else exc
        finally:
            self._outcomes.put((claimed, outcome))
            with self._lock:
                self._idents.discard(ident)

    def _collect(self, timeout: float | None) -> None:
        """Wait for a thread's outcome (`timeout` at most; None: until the deadline and
        a look after it), then take every outcome ready."""
        if timeout is None:
            timeout = min(max(self.deadline - time.monotonic(), LOOK_SECONDS), WAIT_SECONDS)
        try:
            item = self._outcomes.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._take(*item)
            try:
                item = self._outcomes.get_nowait()
            except queue.Empty:
                return

    def _take(self, claimed: engine.Claim, outcome: object) -> None:
        self._busy[claimed.job.queue] -= 1
        self._running -= 1
        self.ran += 1
        if isinstance(outcome, Finished):
            self._finished.append(outcome)
        elif isinstance(outcome, BaseException):
            self.errors.append(outcome)

    def _drain_threads(self, until: float | None = None, *, settle: bool = False) -> None:
        """Wait for every running job's outcome (or `until`, time.monotonic()); with
        `settle`, each finished job's completion is written as it arrives (leaving on an
        error: none waits for its slowest sibling, unbeaten)."""
        while self._running:
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                self._take(*self._outcomes.get(timeout=left))
            except queue.Empty:
                return
            if settle:
                self._settle_alone()

    def _settle_alone(self) -> None:
        """The finished jobs' completions, each alone and outlasting an outage (the
        dispatcher is leaving on an error)."""
        finished, self._finished = self._finished, []
        for done in finished:
            outlasting_outage(complete, done)

    def _interrupt(self, exception: type[BaseException]) -> None:
        with self._lock:
            for ident in self._idents:
                raise_in_thread(ident, exception)
        self._drain_threads(until=time.monotonic() + INTERRUPT_GRACE_SECONDS)


def _settle_and_claim(
    finished: list[Finished], worker: str, served: list[str], limit: int
) -> list[engine.Claim]:
    """engine.settle_and_claim with the finished jobs' buffered log lines (put back if
    it fails); if the database drops meanwhile, each completion written alone,
    outlasting the outage."""
    try:
        with contextlib.ExitStack() as stack:
            batch = [(f.completion(), stack.enter_context(f.ctx.logs.writing())) for f in finished]
            return engine.settle_and_claim(batch, worker=worker, queues=served, limit=limit)
    except (OperationalError, InterfaceError):
        if not finished or connection.in_atomic_block:
            raise
        connection.close()
        for done in finished:
            outlasting_outage(complete, done)
        finished.clear()  # written: not again by the caller
        raise
