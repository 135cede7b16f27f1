"""Goals 4 to 6 on PostgreSQL with 1,000,000 jobs: list/detail/admin reads, logs, cleanup."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import Resolver404, resolve

from jobs import selectors, services
from jobs.models import Job, JobLog, JobStatus, Task
from jobs.worker.context import JobContext

from .common import Ctx, drain_figures, insert_noop_jobs, wait_drained
from .harness import median, start_clusters, timed_ms
from .jobtypes import NOOP

OWNERS = 10
# The paced cleanup's pause between batches of 2,000 jobs (each takes about 90 ms here
# while the cluster drains): cleanup then holds the database about half the time.
CLEANUP_PAUSE = 0.1

JOBS_SQL = """
INSERT INTO jobs_job (job_type, status, config, error, queue, priority, attempts,
    max_attempts, created_at, queued_at, started_at, finished_at, worker, progress_done,
    progress_total, created_by_id)
SELECT %(job_type)s,
       CASE WHEN g %% 20 = 0 THEN 'failed' WHEN g %% 50 = 1 THEN 'cancelled'
            ELSE 'completed' END,
       '{}'::jsonb, '', 'default', 0, 1, 1,
       now() - interval '3 days' + g * interval '1 ms',
       now() - interval '3 days' + g * interval '1 ms',
       now() - interval '3 days' + g * interval '1 ms',
       now() - interval '3 days' + g * interval '1 ms' + interval '5 ms',
       'bench:1', 1, 1,
       (%(owners)s)[1 + g %% %(n_owners)s]
FROM generate_series(1, %(n)s) AS g
"""

TASKS_SQL = """
INSERT INTO jobs_task (job_id, position, name, status, error, attempts, progress_done,
    progress_total, started_at, finished_at)
SELECT id, 1, job_type, 'succeeded', '', 1, 0, 0, started_at, finished_at
FROM jobs_job WHERE id BETWEEN %(first)s AND %(last)s
"""

LOGS_SQL = """
INSERT INTO jobs_joblog (job_id, created_at, level, message)
SELECT id, finished_at, 20, 'noop' FROM jobs_job WHERE id BETWEEN %(first)s AND %(last)s
"""

LONG_LOG_SQL = """
INSERT INTO jobs_joblog (job_id, created_at, level, message)
SELECT %(job)s, now() - interval '2 days', 20, 'line ' || g FROM generate_series(1, %(n)s) g
"""


def _insert_finished(n: int, owners: list[int]) -> None:
    """n finished jobs, each with one task and one log line, owned in turn by `owners`."""
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM jobs_job")
        start = cur.fetchone()[0]
        cur.execute(JOBS_SQL, {"job_type": NOOP, "owners": owners, "n_owners": len(owners), "n": n})
        cur.execute("SELECT max(id) FROM jobs_job")
        last = cur.fetchone()[0]
        cur.execute(TASKS_SQL, {"first": start + 1, "last": last})
        cur.execute(LOGS_SQL, {"first": start + 1, "last": last})
        cur.execute("ANALYZE")


def _seed(ctx: Ctx, n: int) -> dict[str, Any]:
    """n finished jobs (one task and one log line each) spread over OWNERS users."""
    User = get_user_model()
    owners = [
        User.objects.create_user(f"bench-owner-{i}", password="bench-pass-123")
        for i in range(OWNERS)
    ]
    admin = User.objects.create_superuser("bench-admin", password="bench-pass-123")
    t0 = time.perf_counter()
    _insert_finished(n, [o.pk for o in owners])
    ctx.note(
        f"seeded {n:,} finished jobs (1 task + 1 log line each) with INSERT … SELECT "
        f"generate_series in {time.perf_counter() - t0:.0f} s"
    )
    big = Job.objects.filter(created_by=owners[0]).order_by("pk").first()
    assert big is not None
    Task.objects.bulk_create(
        [Task(job=big, position=p, name=f"step {p}", status="succeeded") for p in range(2, 101)]
    )
    return {"owners": owners, "admin": admin, "big": big}


def _exists(path: str) -> bool:
    try:
        resolve(path.split("?")[0])
    except Resolver404:
        return False
    return True


def _get_ms(client: Client, path: str, repeat: int) -> tuple[float, int, int]:
    """p50 ms of GET path, its status code and its query count."""
    queries = 0

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    # A wrapper, not CaptureQueriesContext: request_started resets queries_log.
    with connection.execute_wrapper(count):
        response = client.get(path)
    times = timed_ms(lambda: client.get(path), repeat)
    return median(times), response.status_code, queries


def _reads(ctx: Ctx, seed: dict[str, Any]) -> dict[str, float]:
    figures: dict[str, float] = {}
    repeat = 10 if ctx.quick else 30
    admin, owner, big = seed["admin"], seed["owners"][0], seed["big"]
    staff = Client()
    staff.force_login(admin)
    mine = Client()
    mine.force_login(owner)
    if _exists("/api/jobs/"):
        checks = [
            ("API list page_size=50 (staff, all jobs)", staff, "/api/jobs/?page_size=50"),
            ("API list page_size=50 status=failed", staff, "/api/jobs/?page_size=50&status=failed"),
            ("API list page_size=50 (owner: own jobs)", mine, "/api/jobs/?page_size=50"),
            (
                "API list page_size=50 created_by=<owner> (staff)",
                staff,
                f"/api/jobs/?page_size=50&created_by={owner.pk}",
            ),
            ("API job detail with 100 tasks", staff, f"/api/jobs/{big.pk}/"),
        ]
        counts = {}
        for label, client, path in checks:
            ms, status, queries = _get_ms(client, path, repeat)
            if status != 200:
                ctx.note(f"{path} answered {status}: not measured")
                continue
            figures[f"{label} p50 ms"] = ms
            figures[f"{label} queries"] = queries
            counts[label] = queries
        _, _, q10 = _get_ms(staff, "/api/jobs/?page_size=10", 1)
        ctx.note(
            f"API list query count: page_size=10 → {q10}, page_size=50 → "
            f"{counts.get('API list page_size=50 (staff, all jobs)')}"
        )
    else:
        ctx.note("/api/jobs/ does not exist yet (API being built): list/detail not measured.")
    if _exists("/admin/jobs/job/"):
        ms, status, queries = _get_ms(staff, "/admin/jobs/job/", repeat)
        if status == 200:
            figures["admin job changelist p50 ms"] = ms
            figures["admin job changelist queries"] = queries
        else:
            ctx.note(f"/admin/jobs/job/ answered {status}: not measured")
    else:
        ctx.note("/admin/jobs/job/ does not exist yet (admin being built): not measured.")
    return figures


def _logs(ctx: Ctx, seed: dict[str, Any], long_n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    append_n = 5_000 if ctx.quick else min(100_000, 100 * ctx.n)
    if append_n < 100_000:
        ctx.note(f"log append measured over {append_n:,} lines (100,000 from --n 1000 up)")
    job = services.job_create(job_type=NOOP)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    # What a handler calls: ctx.log() one line at a time, batched by the job's log
    # buffer (jobs/worker/logbuffer.py) and written by multi-row INSERTs.
    logging_ctx = JobContext(job)
    t0 = time.perf_counter()
    for i in range(append_n):
        logging_ctx.log(f"line {i}")
    logging_ctx.logs.flush()
    figures["log append lines/s (ctx.log in a job, one call per line)"] = append_n / (
        time.perf_counter() - t0
    )
    # One INSERT and commit per line, for comparison (services.job_log, outside a job).
    single_n = min(append_n, 5_000)
    t0 = time.perf_counter()
    for i in range(single_n):
        services.job_log(job_id=job.pk, message=f"line {i}")
    figures["log append lines/s (services.job_log, a commit per line)"] = single_n / (
        time.perf_counter() - t0
    )
    t0 = time.perf_counter()
    JobLog.objects.bulk_create(
        [JobLog(job_id=job.pk, message=f"line {i}") for i in range(append_n)], batch_size=2000
    )
    figures["log append lines/s (bulk_create, batches of 2,000)"] = append_n / (
        time.perf_counter() - t0
    )
    big = seed["big"]
    with connection.cursor() as cur:
        cur.execute(LONG_LOG_SQL, {"job": big.pk, "n": long_n})
        cur.execute("ANALYZE jobs_joblog")
    ids = JobLog.objects.filter(job_id=big.pk).order_by("id").values_list("id", flat=True)
    cursor = ids[long_n // 2]
    repeat = 30 if ctx.quick else 100
    figures[f"log tail=100 on a {long_n:,}-line log p50 ms"] = median(
        timed_ms(lambda: selectors.log_tail(big.pk, 100), repeat)
    )
    figures[f"log after=cursor (1,000 lines) on a {long_n:,}-line log p50 ms"] = median(
        timed_ms(lambda: selectors.log_after(big.pk, cursor), repeat)
    )
    path = f"/api/jobs/{big.pk}/logs/?tail=100"
    if _exists(path):
        client = Client()
        client.force_login(seed["admin"])
        ms, status, _ = _get_ms(client, path, repeat)
        if status == 200:
            figures[f"API logs tail=100 on a {long_n:,}-line log p50 ms"] = ms
    return figures


def _drain_rate(n: int) -> float:
    ids = insert_noop_jobs(n)
    wall = wait_drained(ids, 600)
    return drain_figures(ids, wall)["drain jobs/s (wall clock)"]


def _cleanup(ctx: Ctx, jobs: int, pause: float = 0.0) -> dict[str, float]:
    """Cleanup of the seeded jobs while a cluster drains batches of new jobs; `pause`
    seconds between cleanup batches (JOBDECK_CLEANUP_PAUSE_SECONDS)."""
    batch = 500 if ctx.quick else 2000
    clusters = start_clusters(1)
    try:
        _drain_rate(50)
        normal = [_drain_rate(batch) for _ in range(2)]
        done = threading.Event()
        result: dict[str, Any] = {}

        def clean() -> None:
            t0 = time.perf_counter()
            try:
                result.update(services.job_cleanup(older_than=timedelta(days=1), pause=pause))
            finally:
                result["seconds"] = time.perf_counter() - t0
                connection.close()
                done.set()

        thread = threading.Thread(target=clean)
        thread.start()
        during: list[float] = []
        while not done.is_set():
            during.append(_drain_rate(batch))
        thread.join()
    finally:
        for c in clusters:
            c.stop()
    paced = f", pause {pause:g} s" if pause else ""
    ctx.note(
        f"cleanup{paced} deleted {result.get('jobs')} jobs, {result.get('tasks')} tasks, "
        f"{result.get('logs')} log lines; {len(during)} drain batches of {batch} ran meanwhile"
    )
    rate_normal, rate_during = median(normal), median(during)
    return {
        f"cleanup of {jobs:,} finished jobs + tasks + logs{paced} (s)": result["seconds"],
        f"drain jobs/s, normal (wall, batches){paced}": rate_normal,
        f"drain jobs/s, during cleanup (wall, batches){paced}": rate_during,
        f"drain during cleanup / normal (%){paced}": 100 * rate_during / rate_normal,
    }


def bench_bigdata(ctx: Ctx) -> dict[str, float]:
    if connection.vendor != "postgresql":
        ctx.note("big-data benchmarks run on PostgreSQL only")
        return {}
    jobs = 20_000 if ctx.quick else 1_000_000
    seed = _seed(ctx, jobs)
    figures = ctx.partial  # kept by the runner if a later step fails
    figures.update(_reads(ctx, seed))
    figures.update(_logs(ctx, seed, jobs))
    figures.update(_cleanup(ctx, jobs))
    # Again, paced: the trade between cleanup time and the workers' share of the machine.
    _insert_finished(jobs, [o.pk for o in seed["owners"]])
    figures.update(_cleanup(ctx, jobs, pause=CLEANUP_PAUSE))
    return figures
