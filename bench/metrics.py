"""A /metrics scrape on PostgreSQL with 1,000,000 jobs (the goal: ≤ 50 ms).

The table holds what a busy installation keeps: a million finished jobs of the last
days, a backlog of pending jobs over three queues and several types, a few running
ones, the jobs that finished in the metrics window (JOBDECK_METRICS_WINDOW_SECONDS,
with varied durations, so the quantiles have work to do) and some schedules.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection
from django.test import Client

from .common import Ctx
from .harness import median, percentile, timed_ms

TYPES = ["bench.noop", "demo.steps", "maintenance.cleanup", "release.apply", "tasks.call"]
QUEUES = ["default", "reports", "mail"]

FINISHED_SQL = """
INSERT INTO jobs_job (job_type, status, config, error, queue, priority, attempts,
    max_attempts, created_at, queued_at, started_at, finished_at, worker, progress_done,
    progress_total, attempted_by)
SELECT (%(types)s::text[])[1 + g %% %(n_types)s],
       CASE WHEN g %% 20 = 0 THEN 'failed' WHEN g %% 50 = 1 THEN 'cancelled'
            ELSE 'completed' END,
       '{}'::jsonb, '', (%(queues)s::text[])[1 + g %% %(n_queues)s], 0, 1, 1,
       now() - %(age)s::interval + g * %(step)s::interval,
       now() - %(age)s::interval + g * %(step)s::interval,
       now() - %(age)s::interval + g * %(step)s::interval,
       now() - %(age)s::interval + g * %(step)s::interval + (g %% 997) * interval '3 ms',
       'bench:1', 1, 1, '[]'::jsonb
FROM generate_series(1, %(n)s) AS g
"""

ACTIVE_SQL = """
INSERT INTO jobs_job (job_type, status, config, error, queue, priority, attempts,
    max_attempts, created_at, queued_at, started_at, heartbeat_at, worker, progress_done,
    progress_total, attempted_by)
SELECT (%(types)s::text[])[1 + g %% %(n_types)s], %(status)s, '{}'::jsonb, '',
       (%(queues)s::text[])[1 + g %% %(n_queues)s], g %% 3, 0, 1,
       now() - g * interval '10 ms', now() - g * interval '10 ms',
       CASE WHEN %(status)s = 'running' THEN now() - interval '1 s' END,
       CASE WHEN %(status)s = 'running' THEN now() - (g %% 5) * interval '1 s' END,
       CASE WHEN %(status)s = 'running' THEN 'bench:' || g ELSE '' END, 0, 1, '[]'::jsonb
FROM generate_series(1, %(n)s) AS g
"""

SCHEDULES_SQL = """
INSERT INTO scheduler_schedule (name, job_type, config, kind, interval_minutes, weekdays,
    cron, timezone, enabled, next_run_at, misfire_policy, overlap_policy, dry_run,
    created_at, updated_at)
SELECT 'bench schedule ' || g, 'bench.noop', '{}'::jsonb, 'interval', 5, '[]'::jsonb, '',
       'UTC', true, now() + (g - 10) * interval '1 s', 'skip', 'skip', false, now(), now()
FROM generate_series(1, %(n)s) AS g
"""


def _seed(ctx: Ctx, total: int) -> dict[str, int]:
    pending, running, recent, schedules = (200, 10, 500, 5) if ctx.quick else (2_000, 50, 5_000, 20)
    old = total - pending - running - recent
    common = {
        "types": TYPES,
        "n_types": len(TYPES),
        "queues": QUEUES,
        "n_queues": len(QUEUES),
    }
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        # The old history: spread over the three days before the metrics window.
        cur.execute(
            FINISHED_SQL,
            {**common, "n": old, "age": "3 days", "step": f"{250_000 // max(1, old // 1000)} us"},
        )
        # The window's own: the last four minutes.
        cur.execute(
            FINISHED_SQL,
            {**common, "n": recent, "age": "4 minutes", "step": f"{240_000_000 // recent} us"},
        )
        for status, n in (("pending", pending), ("running", running)):
            cur.execute(ACTIVE_SQL, {**common, "status": status, "n": n})
        cur.execute(SCHEDULES_SQL, {"n": schedules})
        cur.execute("ANALYZE")
        cur.execute("SELECT count(*) FROM jobs_job")
        count = cur.fetchone()[0]
    ctx.note(
        f"seeded {count:,} jobs ({old:,} finished over 3 days, {recent:,} in the last 4 min, "
        f"{pending:,} pending and {running} running over {len(QUEUES)} queues and "
        f"{len(TYPES)} types) and {schedules} schedules in {time.perf_counter() - t0:.0f} s"
    )
    return {"jobs": count, "pending": pending}


def _scrape_ms(client: Client, repeat: int) -> tuple[list[float], int, int, int]:
    """Wall times of GET /metrics, its status, size and query count."""
    queries = 0

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get("/metrics")
    times = timed_ms(lambda: client.get("/metrics"), repeat)
    return times, response.status_code, len(response.content), queries


def bench_metrics(ctx: Ctx) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        ctx.note("the /metrics benchmark runs on PostgreSQL only")
        return {}
    total = 20_000 if ctx.quick else 1_000_000
    seeded = _seed(ctx, total)
    client = Client(REMOTE_ADDR="127.0.0.1")
    repeat = 10 if ctx.quick else 100
    figures: dict[str, Any] = {}
    pending = seeded["pending"]
    # Then a backlog ten times larger: jobdeck_jobs groups every active row.
    for extra in (0, 9 * pending):
        if extra:
            with connection.cursor() as cur:
                cur.execute(
                    ACTIVE_SQL,
                    {
                        "types": TYPES,
                        "n_types": len(TYPES),
                        "queues": QUEUES,
                        "n_queues": len(QUEUES),
                        "status": "pending",
                        "n": extra,
                    },
                )
                cur.execute("ANALYZE jobs_job")
        times, status, size, queries = _scrape_ms(client, repeat)
        if status != 200:
            ctx.note(f"/metrics answered {status}: not measured")
            return figures
        label = f"{seeded['jobs'] + extra:,} jobs, {pending + extra:,} pending"
        ctx.note(f"/metrics ({label}): {size:,} bytes, {queries} queries per scrape")
        figures[f"/metrics scrape at {label} p50 ms"] = median(times)
        figures[f"/metrics scrape at {label} p95 ms"] = percentile(times, 95)
        figures[f"/metrics scrape at {label} queries"] = queries
    return figures
