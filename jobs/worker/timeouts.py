"""Per-job timeouts: a running handler is interrupted once its attempt's time is up.

django-q2 runs a task in the worker process's main thread, so the interruption is a
signal: while a handler runs, ITIMER_REAL is armed for what is left of the attempt's
budget (`timeout_seconds` from the claim, across its tasks) and the SIGALRM handler
raises JobTimedOut (a BaseException: `except Exception` cannot swallow it) in the
handler's frame. Python runs signal handlers between bytecodes and interrupts sleeps
and waits, so a Python loop or a `time.sleep` stops within milliseconds; a call blocked
in C code that ignores signals stops when it returns to Python (and django-q2's own
`Q_CLUSTER['timeout']` stays the last resort, killing the worker).

django-q2 uses the same timer (`signal.alarm`) for its own timeout around the whole
wake-up: the scope reads what is left of it, fires at whichever deadline comes first,
hands django-q2's deadline to django-q2's handler, and on leaving restores both its
handler and its remaining time. The timer runs only around a handler, never around
the worker's bookkeeping; a signal that arrives after the scope closed does nothing.

Signals reach only the main thread, so a handler running in a drain thread
(JOBDECK_WORKER_THREADS > 1, jobs.worker.threads) is interrupted by the process's
watchdog thread instead: at the deadline it raises the same JobTimedOut in the
handler's thread (PyThreadState_SetAsyncExc), again every REPEAT_SECONDS if swallowed.
An asynchronous exception is raised between bytecodes: a Python loop stops within
milliseconds, but a blocking C call (`time.sleep`, a socket read) only once it returns,
so there an I/O call's own timeout is what bounds it.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..exceptions import JobTimedOut

logger = logging.getLogger(__name__)

# After a JobTimedOut a handler swallowed (`except BaseException`), raise it again this
# often until the handler returns.
REPEAT_SECONDS = 1.0
# setitimer may wake a little before the monotonic deadline; closer than this is "due".
_SLACK = 0.005


class Budget:
    """One attempt's time: `seconds` (None: no timeout) from `start` (time.monotonic()
    when the worker claimed the job)."""

    def __init__(self, seconds: int | None, start: float | None = None) -> None:
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start
        self.timed_out = False  # set once JobTimedOut was raised for this attempt

    @property
    def deadline(self) -> float | None:
        return None if self.seconds is None else self.start + self.seconds

    def left(self) -> float | None:
        """Seconds left (≤ 0 once spent); None without a timeout."""
        deadline = self.deadline
        return None if deadline is None else deadline - time.monotonic()


class _Scope:
    """The timer's state while one handler runs."""

    active = False  # the handler is running: a signal may interrupt it
    outer_fired = False  # django-q2's own deadline came first (its handler ran)


@contextmanager
def interrupting(budget: Budget, job_id: int | None = None) -> Iterator[None]:
    """Run the block (a handler) with `budget`'s time left: past it, JobTimedOut is raised
    in the block and `budget.timed_out` is set. A budget already spent raises at once (a
    task boundary). Outside the main thread (no signals there) the watchdog thread
    interrupts the block."""
    left = budget.left()
    if left is None:
        yield
        return
    if left <= _SLACK:
        budget.timed_out = True
        raise JobTimedOut(budget.seconds or 0)
    if threading.current_thread() is not threading.main_thread():
        with watchdog.interrupting(budget):
            yield
        return
    scope = _Scope()
    deadline = budget.deadline
    assert deadline is not None and budget.seconds is not None
    seconds = budget.seconds
    # The timer as it was (django-q2's timeout around the wake-up, if armed).
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer_deadline = time.monotonic() + outer_delay if outer_delay > 0 else None

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if not scope.active:
            return  # delivered after the handler returned: nothing to interrupt
        now = time.monotonic()
        if outer_deadline is not None and now >= outer_deadline - _SLACK:
            # django-q2's deadline came first: its handler does what it would have done.
            scope.active = False
            scope.outer_fired = True
            _call(previous, signum, frame)
            return
        if now >= deadline - _SLACK:
            budget.timed_out = True
            signal.setitimer(signal.ITIMER_REAL, REPEAT_SECONDS)  # again, if swallowed
            raise JobTimedOut(seconds)
        _arm(deadline, outer_deadline)  # woke early: wait for the rest

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        scope.active = True
        _arm(deadline, outer_deadline)
        yield
    finally:
        # In this order: a signal arriving meanwhile finds the scope closed.
        scope.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_deadline is not None and not scope.outer_fired:
            rest = max(outer_deadline - time.monotonic(), 0.001)
            signal.setitimer(signal.ITIMER_REAL, rest, outer_interval)
    if budget.timed_out:
        # The handler caught JobTimedOut and returned anyway: it still timed out.
        raise JobTimedOut(seconds)


def _arm(deadline: float, outer_deadline: float | None) -> None:
    """The timer for the nearer of the two deadlines."""
    due = deadline if outer_deadline is None else min(deadline, outer_deadline)
    signal.setitimer(signal.ITIMER_REAL, max(due - time.monotonic(), 0.001))


def _call(handler: Any, signum: int, frame: FrameType | None) -> None:
    """Run the SIGALRM disposition that was installed before the scope."""
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_IGN:
        return
    else:  # SIG_DFL (or unknown): the default action, as if the scope had not been there
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.raise_signal(signum)


class _Watched:
    """One handler running in a thread other than the main one, and its deadline."""

    def __init__(self, budget: Budget, ident: int) -> None:
        assert budget.deadline is not None and budget.seconds is not None
        self.budget = budget
        self.ident = ident
        self.due = budget.deadline
        self.exception = _timed_out_class(budget.seconds)
        self.active = True


def _timed_out_class(seconds: int) -> type[JobTimedOut]:
    """An asynchronous exception is raised by class, without arguments: a JobTimedOut
    that knows its seconds."""

    class Interrupted(JobTimedOut):
        def __init__(self) -> None:
            super().__init__(seconds)

    Interrupted.__name__ = Interrupted.__qualname__ = JobTimedOut.__name__
    return Interrupted


class Watchdog:
    """The per-process thread that raises JobTimedOut in handlers running outside the
    main thread once their deadline passes (started on first use, a daemon).

    Races: raising and leaving both hold the lock, and leaving withdraws an exception
    raised but not yet delivered, so no JobTimedOut lands in the worker's bookkeeping
    after the handler's scope closed.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._watched: dict[int, _Watched] = {}  # thread ident → its running handler
        self._thread: threading.Thread | None = None

    @contextmanager
    def interrupting(self, budget: Budget) -> Iterator[None]:
        watched = _Watched(budget, threading.get_ident())
        try:
            with self._wake:
                self._watched[watched.ident] = watched
                self._start()
                self._wake.notify()
            yield
        finally:
            # JobTimedOut may arrive while leaving: leave again until it has left.
            while True:
                try:
                    self._leave(watched)
                    break
                except JobTimedOut:
                    continue
        if budget.timed_out:
            # The handler caught JobTimedOut and returned anyway: it still timed out.
            raise JobTimedOut(budget.seconds or 0)

    def _leave(self, watched: _Watched) -> None:
        with self._wake:
            if watched.active:
                watched.active = False
                if self._watched.get(watched.ident) is watched:
                    del self._watched[watched.ident]
                raise_in_thread(watched.ident, None)  # withdraw one not yet delivered

    def _start(self) -> None:
        """Start the thread unless it runs in this process (called holding the lock)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="jobdeck-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with self._wake:
            while True:
                now = time.monotonic()
                for watched in list(self._watched.values()):
                    if watched.active and now >= watched.due - _SLACK:
                        watched.budget.timed_out = True
                        watched.due = now + REPEAT_SECONDS  # again, if swallowed
                        raise_in_thread(watched.ident, watched.exception)
                due = min((w.due for w in self._watched.values()), default=None)
                self._wake.wait(None if due is None else max(due - time.monotonic(), 0.001))

    def watching(self) -> int:
        """How many handlers it watches now."""
        with self._wake:
            return len(self._watched)


def carrying(exception: BaseException) -> type[BaseException]:
    """A subclass of `exception`'s class that, raised without arguments (as asynchronous
    exceptions are), carries `exception`'s arguments: its message."""
    base, args = type(exception), exception.args

    class Carried(base):  # type: ignore[valid-type, misc]
        def __init__(self) -> None:
            super().__init__(*args)

    Carried.__name__, Carried.__qualname__ = base.__name__, base.__qualname__
    Carried.__module__ = base.__module__
    return Carried


def raise_in_thread(ident: int, exception: type[BaseException] | None) -> None:
    """Raise `exception` in thread `ident` at its next bytecode (None: withdraw one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exception) if exception else None
    )


watchdog = Watchdog()
