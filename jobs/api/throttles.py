"""Rate limits shared by every web process: a sliding window over cache counters.

DRF's own throttles keep each client's request history as one list in the cache,
read and written back whole: with the per-process default cache every gunicorn
worker counted alone (a documented 60/minute let 73 of 300 bad logins through
two workers), and even on a shared cache two workers writing the list back lose
each other's entries. Here each window of `duration` seconds is one counter,
incremented atomically (cache.add, then cache.incr: jobs.cache.DatabaseCache or
Redis), and a request is allowed while

    previous window's count * (share of it still inside the last `duration`) + this one's

stays within the rate: the sliding-window estimate, two cache reads per request,
with no burst at a window boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import throttling

if TYPE_CHECKING:
    # What the mixin is mixed into (its cache, rate, timer and get_cache_key).
    _Throttle = throttling.SimpleRateThrottle
else:
    _Throttle = object


class SharedWindowMixin(_Throttle):
    """For DRF's SimpleRateThrottle subclasses: the counting above."""

    # Set by SimpleRateThrottle.__init__ from the rate (used only when there is one).
    duration: int
    num_requests: int

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        count = self._increment(f"{self.key}:{window}")
        previous = self.cache.get(f"{self.key}:{window - 1}", 0)
        self._window_end = (window + 1) * self.duration
        elapsed = (self.now % self.duration) / self.duration
        return previous * (1 - elapsed) + count <= self.num_requests

    def _increment(self, key: str) -> int:
        # A counter lives two windows: while it is the current one and the previous.
        timeout = 2 * self.duration + 1
        for _ in range(3):
            if self.cache.add(key, 1, timeout):
                return 1
            try:
                return self.cache.incr(key)
            except ValueError:  # expired between add and incr: start it again
                continue
        return self.num_requests + 1  # the cache keeps failing: refuse, do not open up

    def wait(self) -> float | None:
        return max(0.0, self._window_end - self.now)


class AnonRateThrottle(SharedWindowMixin, throttling.AnonRateThrottle):
    """Anonymous requests, per client address (the token endpoint's guard)."""


class UserRateThrottle(SharedWindowMixin, throttling.UserRateThrottle):
    """Authenticated requests, per user."""
