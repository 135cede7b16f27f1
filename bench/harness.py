"""Real qcluster processes, environment, polling and statistics for the benchmarks.

The qcluster process wrapper and the polling helper are the test suite's own
(tests/support/cluster.py); the environment here is the benchmark's.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.cluster import ROOT, Cluster, wait_until  # noqa: F401 (re-exported)


def cluster_env(**overrides: str) -> dict[str, str]:
    """This process's environment (DATABASE_URL, broker, …) plus benchmark settings."""
    env = dict(os.environ)
    env.update({"Q_WORKERS": "2", "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
    env.update(overrides)
    return env


def start_clusters(count: int = 1, **overrides: str) -> list[Cluster]:
    clusters = [Cluster(cluster_env(**overrides), name=f"c{i + 1}") for i in range(count)]
    try:
        for cluster in clusters:
            cluster.wait_ready()
    except BaseException:
        for cluster in clusters:
            cluster.stop()
        raise
    return clusters


def rss_kb(pid: int) -> int:
    """Resident set size of `pid` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def timed_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    """Run `fn` `repeat` times after one warm-up call; wall times in milliseconds."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
