"""`manage.py serve` (what `./jobdeck start` runs): web server and cluster side by side."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

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
