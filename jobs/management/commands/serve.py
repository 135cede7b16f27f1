"""`manage.py serve`: the web server and a django-q2 cluster side by side (`./jobdeck start`).

Starting: a host:port already in use is refused before anything starts (one line naming
JOBDECK_PORT, exit 1). Each child runs in its own session, so the terminal's Ctrl-C
reaches only this supervisor.

Stopping (Ctrl-C, SIGTERM, or the terminal closing) is over within `--grace` + 5 seconds
(15 s by default), even while a long job runs:

1. The web server gets SIGTERM and stops at once.
2. The cluster gets exactly one SIGTERM: django-q2's graceful stop, in which each worker
   finishes the message it is running (a second signal would stall it). The jobs its
   workers are running are named, and it has `--grace` seconds.
3. If it is still running then, the whole cluster is killed: qcluster and every
   process under it (sentinel, monitor, pusher, workers), found through /proc before
   the kill and killed with its process group, so none is left behind, orphaned.
4. The jobs those workers were running are recovered at once by the usual worker-loss
   rules (`jobs.services.sweep_stale_jobs(workers=…)`, the sweep's rules without waiting
   for the heartbeat to go stale): re-queued while attempts remain, so the next start
   runs them again from their first unfinished task; otherwise failed, and `jobs retry`
   resumes them from that task. Each is reported.

A second Ctrl-C skips the rest of the grace period.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from jobs import services
from jobs.cli import positive_int, quiet_info_logging
from jobs.models import Job, JobStatus, TaskStatus

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# After the grace period: time for killed processes to go and for the recovery writes.
KILL_WAIT = 5.0


def split_addr(addr: str) -> tuple[str, int]:
    """ "127.0.0.1:8000", "[::1]:8000", "0.0.0.0:80" or "8000" → (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", addr
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"{port!r} is not a port number; set JOBDECK_PORT to one (e.g. 8000)")
    return host.strip("[]") or "127.0.0.1", int(port)


def check_free(host: str, port: int) -> None:
    """One readable line, naming JOBDECK_PORT / JOBDECK_HOST, if runserver could not bind."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CommandError(
            f"cannot serve on {host!r} ({exc.strerror}); check JOBDECK_HOST"
        ) from None
    family, kind, proto, _name, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As runserver binds: SO_REUSEADDR, so a port in TIME_WAIT counts as free, while
        # one another process listens on does not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use; set JOBDECK_PORT to a free "
                    f"port, e.g. JOBDECK_PORT={port + 1} ./jobdeck start"
                ) from None
            raise CommandError(
                f"cannot serve on {host}:{port} ({exc.strerror}); check JOBDECK_HOST"
            ) from None


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (Linux); empty elsewhere."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its new parent, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


class Command(BaseCommand):
    help = (
        "Run the web server and a django-q2 cluster together; Ctrl-C stops both within "
        "--grace + 5 seconds, killing a cluster still busy after --grace."
    )
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port to serve on")
        parser.add_argument(
            "--grace",
            type=positive_int,
            default=10,
            metavar="SECONDS",
            help="how long a stopping cluster may finish its running jobs (default 10)",
        )

    def handle(self, *args: Any, addr: str, grace: int, **options: Any) -> None:
        host, port = split_addr(addr)
        check_free(host, port)
        self.grace = grace
        self.signals = 0
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.on_signal)
        shown = f"[{host}]" if ":" in host else host
        self.say(
            f"web server on http://{shown}:{port}/ (admin /admin/, API /api/) and a django-q2 "
            f"cluster; Ctrl-C stops both within {grace + KILL_WAIT:.0f} s"
        )
        manage = [sys.executable, "manage.py"]
        self.web = subprocess.Popen(
            [*manage, "runserver", f"{shown}:{port}", "--noreload"], start_new_session=True
        )
        self.cluster = subprocess.Popen([*manage, "qcluster"], start_new_session=True)
        failed = self.supervise()
        self.stop()
        if failed:
            raise CommandError(failed)
        self.say("stopped.")

    def say(self, message: str) -> None:
        """To stderr; never fails (after SIGHUP the terminal may be gone, the stop is not)."""
        with contextlib.suppress(OSError, ValueError):
            self.stderr.write(message)

    def on_signal(self, signum: int, frame: object) -> None:
        self.signals += 1
        if self.signals == 2:
            self.say("second signal: stopping the cluster at once")

    def supervise(self) -> str | None:
        """Wait for a stop signal or a child's exit; a child's exit is the failure returned."""
        while not self.signals:
            for name, proc in (("web server", self.web), ("cluster", self.cluster)):
                if proc.poll() is not None:
                    return f"the {name} exited with status {proc.returncode}"
            time.sleep(0.2)
        return None

    # --- stopping ----------------------------------------------------------------

    def stop(self) -> None:
        self.say("stopping the web server and the cluster…")
        tree = descendants(self.cluster.pid) | {self.cluster.pid}
        for proc in (self.web, self.cluster):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        try:
            running = self.describe(self.running_jobs(tree))
        except DatabaseError:  # the stop goes on without the database
            running = "the jobs its workers are running"
        if running:
            self.say(
                f"waiting up to {self.grace} s for {running} to finish; then the cluster is "
                "killed and the job is recovered (re-queued while attempts remain, else failed)"
            )
        deadline = time.monotonic() + self.grace
        while self.cluster.poll() is None and time.monotonic() < deadline and self.signals < 2:
            tree |= descendants(self.cluster.pid)  # workers recycled meanwhile
            time.sleep(0.1)
        if self.cluster.poll() is None:
            tree |= descendants(self.cluster.pid)
            self.kill(tree)
            self.recover(tree)
        self.end(self.web)
        leftover = sorted(pid for pid in tree if alive(pid))
        if leftover:  # should not happen: said, rather than left silently
            self.say(f"processes still running: {', '.join(map(str, leftover))}")

    def kill(self, tree: set[int]) -> None:
        """SIGKILL the cluster's process group and every process found under it."""
        self.say(f"the cluster is still busy after {self.grace} s: killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.cluster.pid, signal.SIGKILL)  # its own session and group
        for pid in tree:  # any that left the group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.cluster.wait()
        deadline = time.monotonic() + KILL_WAIT - 1
        while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.05)

    def end(self, proc: subprocess.Popen) -> None:
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    @staticmethod
    def worker_names(tree: set[int]) -> list[str]:
        host = socket.gethostname()  # as jobs.runner.worker_name() names a worker
        return [f"{host}:{pid}" for pid in tree]

    def running_jobs(self, tree: set[int]) -> list[Job]:
        jobs = Job.objects.filter(status=JobStatus.RUNNING, worker__in=self.worker_names(tree))
        return list(jobs.order_by("pk"))

    @staticmethod
    def describe(jobs: list[Job]) -> str:
        parts = []
        for job in jobs:
            current = job.tasks.filter(status=TaskStatus.RUNNING).values_list("position", flat=True)
            at = f", task {current[0]} of {job.progress_total}" if current else ""
            parts.append(f"job #{job.pk} ({job.job_type}{at})")
        return ", ".join(parts)

    def recover(self, tree: set[int]) -> None:
        """The killed workers' jobs, by the usual worker-loss rules, now; each one said."""
        try:
            interrupted = self.running_jobs(tree)
            described = {job.pk: self.describe([job]) for job in interrupted}
            if not described:
                return
            with quiet_info_logging(verbosity=1):  # the re-queue's "Enqueued" line
                services.sweep_stale_jobs(workers=self.worker_names(tree))
            recovered = list(Job.objects.filter(pk__in=described).order_by("pk"))
        except DatabaseError as exc:
            self.say(
                f"could not recover the interrupted jobs now ({exc}); the sweep recovers "
                "them on the next start, once their heartbeat is stale"
            )
            return
        for job in recovered:
            if job.status == JobStatus.PENDING:
                outcome = (
                    f"re-queued (attempt {job.attempts} of {job.max_attempts} used); the next "
                    "start runs it again from its first unfinished task"
                )
            elif job.status == JobStatus.FAILED:
                outcome = (
                    f"failed (no attempts left); `./jobdeck manage jobs retry {job.pk}` "
                    "resumes it from its first unfinished task"
                )
            else:
                outcome = job.status
            self.say(f"{described[job.pk]} was interrupted: {outcome}")
