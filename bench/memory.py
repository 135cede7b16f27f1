"""Goal 7: worker RSS over 20,000 jobs (recycling off, so growth is visible)."""

from __future__ import annotations

from jobs.models import Job

from .common import Ctx, drain_figures, insert_noop_jobs, wait_drained
from .harness import rss_kb, start_clusters


def _worker_pids(ids: list[int]) -> list[int]:
    workers = Job.objects.filter(pk__in=ids).values_list("worker", flat=True).distinct()
    return sorted({int(w.rsplit(":", 1)[1]) for w in workers if w})


def bench_memory(ctx: Ctx) -> dict[str, float]:
    total = 2_000 if ctx.quick else 20_000
    chunk = max(500, total // 4)
    ctx.note(
        f"memory: Q_RECYCLE and Q_MAX_RSS_KB disabled so the growth is measured, not hidden; "
        f"RSS of the worker processes after a 1,000-job warm-up and after {total:,} more jobs."
    )
    clusters = start_clusters(1, Q_RECYCLE="1000000", Q_MAX_RSS_KB="0")
    try:
        warm = insert_noop_jobs(1000)
        wait_drained(warm, 300)
        pids = _worker_pids(warm)
        before = {pid: rss_kb(pid) for pid in pids}
        done = 0
        last: list[int] = []
        while done < total:
            ids = insert_noop_jobs(chunk)
            wait_drained(ids, 600)
            last = ids
            done += chunk
        drain_figures(last, 1.0)  # checks they all ran once
        after = {pid: rss_kb(pid) for pid in pids}
    finally:
        for c in clusters:
            c.stop()
    growth = [100 * (after[p] - before[p]) / before[p] for p in pids if before[p] and after[p]]
    return {
        "worker RSS before (MiB, max of workers)": max(before.values()) / 1024,
        "worker RSS after (MiB, max of workers)": max(after.values()) / 1024,
        f"worker RSS growth over {total:,} jobs (%, worst worker)": max(growth),
    }
