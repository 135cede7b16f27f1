"""Flow control at 1,000,000 pending jobs on PostgreSQL: a paused queue and a type at
its concurrency limit hold almost all of them; the claim must still cost what it costs
on an empty table, not walk past the held jobs (docs/benchmarks.md)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from django.db import connection, transaction

from jobs import engine, flow, flow_changes
from jobs.engine.queries import sql
from jobs.models import FlowScope, Job, JobStatus

from .common import Ctx
from .jobtypes import NOOP

PAUSED_QUEUE = "reports"
RUNNABLE = 10  # the jobs a claim may take, behind all the held ones

# Held jobs first (older, so they lead the claim order), then the runnable ones.
SEED_SQL = """
INSERT INTO jobs_job (job_type, status, config, error, queue, priority, attempts,
    max_attempts, created_at, queued_at, worker, attempted_by, progress_done,
    progress_total, lock_limit)
SELECT CASE WHEN g <= %(paused)s THEN 'demo.steps' ELSE %(limited_type)s END,
       'pending', '{"steps": 1, "delay": 0}'::jsonb, '',
       CASE WHEN g <= %(paused)s THEN %(paused_queue)s ELSE 'default' END,
       0, 0, 1, now(), now(), '', '[]'::jsonb, 0, 1, 1
FROM generate_series(1, %(n)s) AS g
"""
RUNNABLE_SQL = """
INSERT INTO jobs_job (job_type, status, config, error, queue, priority, attempts,
    max_attempts, created_at, queued_at, worker, attempted_by, progress_done,
    progress_total, lock_limit)
SELECT 'demo.steps', 'pending', '{"steps": 1, "delay": 0}'::jsonb, '', 'default', 0, 0, 1,
       now(), now(), '', '[]'::jsonb, 0, 1, 1
FROM generate_series(1, %(n)s)
"""
# The claim of a system that checks each rule row by row: the same ordered walk of the
# claim index as claim_next, skipping held jobs one at a time.
FILTERED_CLAIM = """
SELECT j.id FROM jobs_job j
WHERE j.status = 'pending'
  AND j.queue = ANY(%(open_queues)s)
  AND j.job_type <> ALL(%(full_types)s)
  AND (j.run_after IS NULL OR j.run_after <= statement_timestamp())
ORDER BY j.priority DESC, j.id
LIMIT 1
FOR UPDATE OF j SKIP LOCKED
"""


def _seed(ctx: Ctx, n: int) -> None:
    paused = int(n * 0.6)
    with connection.cursor() as cursor:
        cursor.execute(
            SEED_SQL,
            {
                "n": n - RUNNABLE,
                "paused": paused,
                "paused_queue": PAUSED_QUEUE,
                "limited_type": NOOP,
            },
        )
        cursor.execute(RUNNABLE_SQL, {"n": RUNNABLE})
        # Two of the limited type run, holding both its slots.
        cursor.execute(
            "UPDATE jobs_job SET status = 'running', attempts = 1, started_at = now(), "
            "heartbeat_at = now(), type_slot = s.slot FROM (SELECT id, row_number() OVER "
            "(ORDER BY id) - 1 AS slot FROM jobs_job WHERE job_type = %s AND status = "
            "'pending' ORDER BY id LIMIT 2) s WHERE jobs_job.id = s.id",
            [NOOP],
        )
        cursor.execute("ANALYZE jobs_job")
    flow_changes.pause(scope=FlowScope.QUEUE, name=PAUSED_QUEUE)
    flow_changes.update(scope=FlowScope.TYPE, name=NOOP, changes={"concurrency_limit": 2})
    ctx.note(
        f"flow_claim: {n:,} pending jobs: {paused:,} in paused queue {PAUSED_QUEUE!r}, "
        f"{n - paused - RUNNABLE:,} of {NOOP} at its concurrency limit (2 running), "
        f"{RUNNABLE} runnable behind them all"
    )


class _Rollback(Exception):
    pass


def _timed_claims(claim: Any, runs: int) -> float:
    """Median ms of `claim()` in a transaction rolled back after it (the table stays)."""
    times = []
    for _ in range(runs):
        try:
            with transaction.atomic():
                start = time.perf_counter()
                claimed = claim()
                times.append((time.perf_counter() - start) * 1000)
                assert claimed, "the claim found none of the runnable jobs"
                raise _Rollback
        except _Rollback:
            pass
    return statistics.median(times)


def _explain(statement: str, params: dict[str, Any]) -> list[str]:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, params)
            lines = [row[0] for row in cursor.fetchall()]
            raise _Rollback
    except _Rollback:
        pass
    return lines


def _buffers(plan: list[str]) -> int:
    """Shared buffers hit + read by the plan's top node."""
    for line in plan:
        if "Buffers:" in line:
            total = 0
            for part in line.split("Buffers:")[1].replace(",", " ").split():
                if "=" in part and part.split("=")[0] in ("hit", "read"):
                    total += int(part.split("=")[1])
            return total
    return 0


def bench_flow_claim(ctx: Ctx) -> dict[str, float]:
    if connection.vendor != "postgresql":
        ctx.note("flow_claim runs on PostgreSQL only")
        return {}
    n = 50_000 if ctx.quick else 1_000_000
    _seed(ctx, n)
    assert flow.governed()
    queues = ["default", PAUSED_QUEUE]
    runs = 5 if ctx.quick else 21

    governed = _timed_claims(lambda: engine.claim(worker="bench:1", queues=queues), runs)

    def filtered() -> Any:
        with connection.cursor() as cursor:
            cursor.execute(FILTERED_CLAIM, {"open_queues": ["default"], "full_types": [NOOP]})
            return cursor.fetchone()

    scan = _timed_claims(filtered, max(3, runs // 4))

    snap = flow.snapshot(queues)
    params = {
        "worker": "bench:1",
        "job_id": None,
        "lane_queues": [lane.queue for lane in snap.lanes],
        "lane_types": [lane.job_type for lane in snap.lanes],
        "lane_type_limits": [lane.type_limit for lane in snap.lanes],
        "lane_queue_limits": [lane.queue_limit for lane in snap.lanes],
        "blocked_keys": [],
    }
    statement = sql("claim_governed").split(";", 1)[1].strip()
    plan = _explain(statement, params)
    scan_plan = _explain(FILTERED_CLAIM, {"open_queues": ["default"], "full_types": [NOOP]})
    ctx.note("EXPLAIN (ANALYZE, BUFFERS) claim_governed:\n" + "\n".join(plan))
    ctx.note("EXPLAIN (ANALYZE, BUFFERS) a row-by-row filtered claim:\n" + "\n".join(scan_plan))
    pending = Job.objects.filter(status=JobStatus.PENDING).count()
    return {
        "flow pending jobs": pending,
        "flow lanes per claim": len(snap.lanes),
        "governed claim ms": round(governed, 2),
        "governed claim buffers": _buffers(plan),
        "filtered-scan claim ms": round(scan, 1),
        "filtered-scan claim buffers": _buffers(scan_plan),
    }
