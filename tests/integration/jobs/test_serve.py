"""`manage.py serve` (what `./jobdeck start` runs): web server and cluster side by side,
a busy port refused in one line, and a Ctrl-C that stops everything in bounded time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from jobs import services
from jobs.management.commands.serve import alive, descendants
from jobs.models import Job, JobStatus, TaskStatus
from tests.support.cluster import ROOT, cluster_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


def test_serve_runs_the_web_server_and_a_cluster_and_sigint_stops_both():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=cluster_env(DEBUG="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/admin/login/"), 60, 0.2, "the web")
        wait_until(lambda: any(" running." in line for line in lines), 60, 0.2, "the cluster")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        reader.join(10)
        output = "".join(lines)
        assert "has stopped" in output and "stopped." in output
        assert not answers(f"http://127.0.0.1:{port}/admin/login/")
    finally:
        if proc.poll() is None:
            proc.kill()


# --- ./jobdeck start: a busy port, and Ctrl-C during a long job ---------------------------


def sessions_alive(session_ids: set[int]) -> list[str]:
    """Processes (other than zombies) in any of these sessions, as "pid command"."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, session.
        if int(fields[3]) in session_ids and fields[0] not in ("Z", "X"):
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            found.append(f"{stat.parent.name} {cmdline}")
    return found


def start_jobdeck(port: int, tmp_path: Path, **env: str) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        ["./jobdeck", "start"],
        cwd=ROOT,
        env=cluster_env(JOBDECK_PORT=str(port), MEDIA_ROOT=str(tmp_path / "media"), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, lines


def test_jobdeck_start_on_a_busy_port_exits_non_zero_with_one_line_naming_jobdeck_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, lines = start_jobdeck(port, tmp_path)
        assert proc.wait(120) == 1
    time.sleep(0.2)  # the reader thread's last lines
    output = "".join(lines)
    errors = [line for line in lines if "rror" in line]
    assert errors == [
        f"CommandError: port {port} on 127.0.0.1 is already in use; set JOBDECK_PORT to a "
        f"free port, e.g. JOBDECK_PORT={port + 1} ./jobdeck start\n"
    ], output
    assert "Starting development server" not in output and "Q Cluster" not in output


def test_jobdeck_start_serves_and_ctrl_c_stops_everything_within_15_s_during_a_long_job(tmp_path):
    job = services.job_create(
        job_type="demo.steps", config={"steps": 300, "delay": 1}, max_attempts=2
    )
    port = free_port()
    proc, lines = start_jobdeck(port, tmp_path)
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), 120, 0.2, "the landing page")
        wait_until(
            lambda: job.tasks.filter(status=TaskStatus.SUCCEEDED).exists(), 60, 0.2, "a task"
        )
        children = descendants(proc.pid)
        sessions = {pid for pid in children if os.getsid(pid) == pid}
        assert len(sessions) == 2  # runserver and qcluster, each in a session of its own
        assert len(children) >= 6  # … and qcluster's sentinel, monitor, pusher, 2 workers

        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(0.2)
    output = "".join(lines)

    assert elapsed <= 15, (elapsed, output)
    assert f"waiting up to 10 s for job #{job.pk} (demo.steps, task " in output
    assert f"job #{job.pk} (demo.steps, task " in output
    assert (
        "was interrupted: re-queued (attempt 1 of 2 used); the next start runs it again "
        "from its first unfinished task" in output
    )
    assert output.rstrip().endswith("stopped.")
    assert not [pid for pid in children if alive(pid)]
    assert sessions_alive(sessions) == []
    assert not answers(f"http://127.0.0.1:{port}/")

    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker) == (JobStatus.PENDING, 1, "")
    assert "was killed when its cluster shut down" in job.error
    statuses = list(job.tasks.order_by("position").values_list("status", flat=True))
    done = statuses.count(TaskStatus.SUCCEEDED)
    assert done >= 1 and statuses[:done] == [TaskStatus.SUCCEEDED] * done
    assert TaskStatus.RUNNING not in statuses  # the interrupted task re-runs on the next start


def test_ctrl_c_lets_a_job_that_ends_within_the_grace_period_finish_and_says_it_waits():
    job = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 4})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=cluster_env(DEBUG="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        wait_until(
            lambda: Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, 60, 0.1, "the job"
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(0.2)
    output = "".join(lines)
    assert f"waiting up to 10 s for job #{job.pk} (demo.steps, task 1 of 1) to finish" in output
    assert "killing" not in output and "interrupted" not in output
    assert "has stopped" in output
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
