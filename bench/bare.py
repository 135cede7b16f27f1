"""The bare-queue limit: the fastest a database drains a queue of no-op jobs.

A minimal table of its own (id, status, and a partial index on the pending rows, as
Jobdeck's job table has), in a scratch database next to the group's, drained by 2 OS
processes (as many as the clusters' workers). Each loop claims one row and completes
it, each statement its own transaction:

    UPDATE q SET status = 'running' WHERE id = (SELECT id FROM q WHERE status = 'pending'
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id;   COMMIT
    UPDATE q SET status = 'done' WHERE id = %s;                        COMMIT

No ORM, no broker, no logs, no tasks: every drain figure is printed with its ratio to
this one, measured in the same run (bench/__main__.py). On SQLite (no SKIP LOCKED) each
statement is a BEGIN IMMEDIATE transaction; WAL mode and synchronous=NORMAL, as
Jobdeck's.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sqlite3
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cpu import cpu_seconds

if TYPE_CHECKING:  # the spawned processes import this module without Django
    from .common import Ctx

PROCESSES = 2
BARE_KEY = "bare queue jobs/s (2 processes, first claim → last finish)"

PG_CLAIM = (
    "UPDATE q SET status = 'running' WHERE id = (SELECT id FROM q WHERE status = 'pending' "
    "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
)
PG_DONE = "UPDATE q SET status = 'done' WHERE id = %s"
SQLITE_CLAIM = (
    "UPDATE q SET status = 'running' WHERE id = (SELECT id FROM q WHERE status = 'pending' "
    "ORDER BY id LIMIT 1) RETURNING id"
)
SQLITE_DONE = "UPDATE q SET status = 'done' WHERE id = ?"


def _pg_worker(dsn: str, barrier: Barrier, out: Any) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:  # autocommit: a commit per statement
        backend = conn.info.backend_pid
        barrier.wait()
        cpu0, backend0 = time.process_time(), cpu_seconds(backend)
        first = last = 0.0
        done = 0
        while True:
            row = conn.execute(PG_CLAIM).fetchone()
            if row is None:
                break
            first = first or time.time()
            conn.execute(PG_DONE, (row[0],))
            last = time.time()
            done += 1
        cpu = (time.process_time() - cpu0, cpu_seconds(backend) - backend0)
    out.put((first, last, done, *cpu))


def _sqlite_worker(path: str, barrier: Barrier, out: Any) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA synchronous = NORMAL")  # as Jobdeck's connections (config/settings.py)
    barrier.wait()
    cpu0 = time.process_time()
    first = last = 0.0
    done = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(SQLITE_CLAIM).fetchone()
        conn.execute("COMMIT")
        if row is None:
            break
        first = first or time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(SQLITE_DONE, (row[0],))
        conn.execute("COMMIT")
        last = time.time()
        done += 1
    conn.close()
    out.put((first, last, done, time.process_time() - cpu0, 0.0))


def _run(worker: Any, target: str, n: int) -> dict[str, float]:
    """PROCESSES processes drain the n-row table at `target`: rows per second, and the
    CPU milliseconds per row of those processes and of their PostgreSQL backends."""
    mp = multiprocessing.get_context("spawn")  # fresh processes, no Django, no inherited socket
    barrier = mp.Barrier(PROCESSES)
    out = mp.Queue()
    procs = [mp.Process(target=worker, args=(target, barrier, out)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    results: list[tuple[float, float, int, float, float]] = []
    deadline = time.monotonic() + max(120, n / 20)
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for proc in procs:
                    proc.kill()
                raise RuntimeError(f"the bare queue did not drain (exit codes {dead})") from None
    for proc in procs:
        proc.join(30)
        if proc.exitcode != 0:
            raise RuntimeError(f"a bare-queue process exited with {proc.exitcode}")
    total = sum(r[2] for r in results)
    if total != n:
        raise AssertionError(f"the bare queue completed {total} of {n} rows")
    first = min(r[0] for r in results if r[0])
    last = max(r[1] for r in results)
    figures = {
        BARE_KEY: n / (last - first),
        "bare queue: CPU ms per row, its 2 processes": sum(r[3] for r in results) * 1000 / n,
    }
    if worker is _pg_worker:
        backends = sum(r[4] for r in results) * 1000 / n
        figures["bare queue: CPU ms per row, PostgreSQL backends"] = backends
    return figures


def _pg_bare(ctx: Ctx) -> dict[str, float]:
    import psycopg
    from django.db import connection

    s = connection.settings_dict
    params = {
        "host": s.get("HOST") or "127.0.0.1",
        "port": s.get("PORT") or 5432,
        "user": s.get("USER") or "postgres",
        "password": s.get("PASSWORD") or None,
    }
    name = f"{s['NAME']}_bare"[:63]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = psycopg.conninfo.make_conninfo(dbname=name, **params)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE q (id bigserial PRIMARY KEY, status text NOT NULL)")
            conn.execute("CREATE INDEX q_pending ON q (id) WHERE status = 'pending'")
            conn.execute(
                "INSERT INTO q (status) SELECT 'pending' FROM generate_series(1, %s)", (ctx.n,)
            )
            conn.execute("VACUUM ANALYZE q")
        return _run(_pg_worker, dsn, ctx.n)
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlite_bare(ctx: Ctx) -> dict[str, float]:
    from django.db import connection

    path = Path(f"{connection.settings_dict['NAME']}-bare")
    paths = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    for p in paths:
        p.unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, status TEXT NOT NULL)")
        conn.execute("CREATE INDEX q_pending ON q (id) WHERE status = 'pending'")
        conn.executemany("INSERT INTO q (status) VALUES (?)", [("pending",)] * ctx.n)
        conn.close()
        return _run(_sqlite_worker, os.fspath(path), ctx.n)
    finally:
        for p in paths:
            p.unlink(missing_ok=True)


def bench_bare(ctx: Ctx) -> dict[str, float]:
    """The bare-queue limit on this group's database server, N rows, 2 processes."""
    from django.db import connection

    ctx.note(
        "bare queue: a table (id, status) with a partial index on pending rows, in a scratch "
        "database; 2 processes, each loop one claim (UPDATE … SKIP LOCKED on PostgreSQL) and "
        "one completion UPDATE, a commit each; 'x bare' = a figure / this one, same run."
    )
    return _pg_bare(ctx) if connection.vendor == "postgresql" else _sqlite_bare(ctx)
