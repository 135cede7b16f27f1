"""`manage.py serve`: the web server and a django-q2 cluster side by side.

Ctrl-C (or SIGTERM) stops both cleanly: each child runs in its own session so the
terminal's SIGINT reaches only this supervisor, which then sends exactly one
SIGTERM to each (a second signal stalls qcluster's graceful shutdown).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the web server and a django-q2 cluster together; Ctrl-C stops both."
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port to serve on")

    def handle(self, *args, addr: str, **options) -> None:
        manage = [sys.executable, "manage.py"]
        children = {
            "web server": subprocess.Popen(
                [*manage, "runserver", addr, "--noreload"], start_new_session=True
            ),
            "cluster": subprocess.Popen([*manage, "qcluster"], start_new_session=True),
        }
        stopping = False

        def stop(signum=None, frame=None) -> None:
            nonlocal stopping
            if stopping:
                return
            stopping = True
            self.stderr.write("stopping the web server and the cluster…")
            for proc in children.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    self.stderr.write(f"the {name} exited ({proc.returncode}); stopping the other")
                    stop()
                    break
            time.sleep(0.2)
        deadline = time.monotonic() + 60
        for proc in children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.stderr.write("stopped.")
