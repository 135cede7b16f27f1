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
"""

from __future__ import annotations

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
        self._warned = False

    @property
    def deadline(self) -> float | None:
        return None if self.seconds is None else self.start + self.seconds

    def left(self) -> float | None:
        """Seconds left (≤ 0 once spent); None without a timeout."""
        deadline = self.deadline
        return None if deadline is None else deadline - time.monotonic()

    def warn_once(self, job_id: int) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "job #%s has a timeout of %s s but runs outside the main thread: it cannot "
                "be interrupted, only stopped at its next task boundary",
                job_id,
                self.seconds,
            )


class _Scope:
    """The timer's state while one handler runs."""

    active = False  # the handler is running: a signal may interrupt it
    outer_fired = False  # django-q2's own deadline came first (its handler ran)


@contextmanager
def interrupting(budget: Budget, job_id: int | None = None) -> Iterator[None]:
    """Run the block (a handler) with `budget`'s time left: past it, JobTimedOut is raised
    in the block and `budget.timed_out` is set. A budget already spent raises at once (a
    task boundary). Outside the main thread (no signals there) the block is not
    interrupted: a warning is logged and the next task boundary stops the job."""
    left = budget.left()
    if left is None:
        yield
        return
    if left <= _SLACK:
        budget.timed_out = True
        raise JobTimedOut(budget.seconds or 0)
    if threading.current_thread() is not threading.main_thread():
        budget.warn_once(job_id or 0)
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
