"""Start real `manage.py qcluster` processes against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """A DATABASE_URL naming the database this test process is using right now."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


class Cluster:
    """One qcluster process; its output is kept for failure messages."""

    def __init__(self, env: dict[str, str], name: str):
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
        return "\n".join(self.lines[-200:])

    def wait_ready(self, timeout: float = 60) -> Cluster:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(" running." in line for line in self.lines):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"qcluster {self.name} exited:\n{self.output}")
            time.sleep(0.1)
        raise TimeoutError(f"qcluster {self.name} not ready after {timeout}s:\n{self.output}")

    def worker_pids(self) -> list[int]:
        """Pids of all processes of this cluster (children of the qcluster process)."""
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

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def __enter__(self) -> Cluster:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def cluster_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "SECRET_KEY": env.get("SECRET_KEY", "test-only-secret-key"),
            "JOBDECK_HEARTBEAT_SECONDS": "0.5",
            "JOBDECK_LOG_FLUSH_SECONDS": "0.2",
            "JOBDECK_STALE_SECONDS": "3",
            "JOBDECK_DRAIN_SECONDS": "10",
            "JOBDECK_RETRY_BACKOFF_SECONDS": "0.2",
            "Q_WORKERS": "2",
            "Q_TIMEOUT": "60",
            "Q_RETRY": "90",
            "Q_POLL": "0.05",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30,
    interval: float = 0.1,
    message: str = "condition",
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
