"""Real qcluster processes, environment, polling and statistics for the benchmarks.

A trimmed copy of tests/support/cluster.py, so the suite does not depend on the
test tree and names its own settings.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Cluster:
    """One `manage.py qcluster` process; its output is kept for error messages."""

    def __init__(self, env: dict[str, str], name: str = "c1") -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def wait_ready(self, timeout: float = 60) -> Cluster:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(" running." in line for line in self.lines):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"qcluster {self.name} exited:\n{self.output}")
            time.sleep(0.05)
        raise TimeoutError(f"qcluster {self.name} not ready after {timeout}s:\n{self.output}")

    def pids(self) -> list[int]:
        """Pids of every process of this cluster below the qcluster process."""
        pids: list[int] = []
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for child in map(int, children):
                    pids.append(child)
                    todo.append(child)
        return pids

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> Cluster:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.02, what: str = "it"
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


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
