"""CPU seconds per process during a drain (Linux /proc): where the time per job goes.

Other load on the machine stretches wall-clock rates, not the CPU our own processes
spend, so these figures say what bounds a drain even on a busy machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def backend_pids(clients: Iterable[int] | None = None) -> list[int]:
    """PostgreSQL backends of this database other than this process's own; with
    `clients`, only those whose client is one of these local processes (matched by
    the TCP port of the client's socket)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pid, client_port FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        rows = cur.fetchall()
    if clients is None:
        return [pid for pid, _ in rows]
    ports = client_ports(clients)
    return [pid for pid, port in rows if port in ports]


def client_ports(pids: Iterable[int]) -> set[int]:
    """Local TCP ports of the sockets processes `pids` hold open."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Meter:
    """CPU used by groups of processes between start() and stop(); a process that
    appears after start() (a new backend) counts from zero."""

    def __init__(self, **groups: Iterable[int]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.before: dict[int, float] = {}

    def start(self) -> Meter:
        self.before = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        return self

    def stop(self, **late: Iterable[int]) -> dict[str, float]:
        """CPU seconds per group; `late` adds pids found only now (e.g. backends)."""
        for name, pids in late.items():
            self.groups[name] = sorted({*self.groups.get(name, []), *pids})
        return {
            name: sum(max(0.0, cpu_seconds(pid) - self.before.get(pid, 0.0)) for pid in pids)
            for name, pids in self.groups.items()
        }
