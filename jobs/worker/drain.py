"""The django-q2 entry points: run jobs (the drain), analyse drafts, the periodic tick.

A broker message is a wake-up. The worker runs the job it names if that job is
still runnable, then keeps claiming runnable jobs straight from the Job table
(priority then FIFO) until none is left or its time budget is spent; a redelivered
message for a job already claimed is a no-op. Each completed job's bookkeeping
commits with the next claim (engine.complete_and_claim): one transaction per job.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Count
from django.utils import timezone

from .. import broker, engine, flow, queues, services
from ..models import Job, JobStatus
from .execution import Finished, complete, execute_deferred, outlasting_outage
from .heartbeat import worker_name


def claim(
    *, worker: str, job_id: int | None = None, finished: Finished | None = None
) -> engine.Claim | None:
    """Claim a runnable job of this cluster's queues with engine.claim; with `finished`
    (the worker's previous job, its last task done), that job's completion commits in
    the same transaction (engine.complete_and_claim)."""
    served = queues.served_queues()
    if finished is None:
        return engine.claim(worker=worker, queues=served, job_id=job_id)
    with finished.ctx.logs.writing() as lines:
        return engine.complete_and_claim(finished.completion(), lines, worker=worker, queues=served)


def run_job(job_id: int | None = None) -> dict[str, int]:
    """Broker entry point: run `job_id` if still runnable, then drain runnable jobs.

    Each completed job's bookkeeping commits with the next claim (one transaction per
    job); the last one alone, before the worker returns. With more than one thread per
    worker (JOBDECK_WORKER_THREADS, JOBDECK_QUEUE_THREADS) the drain runs in threads
    (jobs.worker.threads): a dispatcher claiming for them in batches.
    """
    worker = worker_name()
    deadline = time.monotonic() + settings.JOBDECK_DRAIN_SECONDS
    limits = queues.worker_threads()
    if max(limits.values(), default=1) > 1:
        from .threads import Pool

        ran = Pool(worker, deadline, limits).run(job_id)
    else:
        ran = drain(worker, deadline, job_id)
    # Work left that this worker did not take (budget spent): wake another worker
    # of this cluster.
    if time.monotonic() >= deadline:
        left = Job.objects.runnable().values_list("queue", flat=True).first()
        if left is not None:
            broker.enqueue_wakeup(None, left)
            return {"ran": ran}
    if flow.governed():
        _wake_at_next_opening()
    return {"ran": ran}


def drain(worker: str, deadline: float, job_id: int | None = None) -> int:
    """The drain loop: run `job_id` if still runnable, then claim and run jobs until none
    is left or `deadline` (time.monotonic()) passes; return how many it ran."""
    ran = 0
    finished: Finished | None = None
    claimed: engine.Claim | None = None
    # Wakes idle workers of this cluster's queues while a backlog waits, on every
    # machine (broker.DrainFanOut): at once when woken for any job (a bulk creation's
    # or the tick's wake-up), later when woken for one job.
    fan_out = broker.DrainFanOut(
        queues.served_queues(), interval=settings.JOBDECK_FANOUT_SECONDS, at_once=job_id is None
    )
    if job_id is not None:
        claimed = claim(worker=worker, job_id=job_id)
    try:
        while True:
            if claimed is not None:
                outcome = execute_deferred(claimed)
                finished = outcome if isinstance(outcome, Finished) else None
                ran += 1
                fan_out()
            if time.monotonic() >= deadline:
                break
            settling, finished = finished, None
            claimed = _claim_settling(worker, settling)
            if claimed is None and not wait_for_due_job(deadline):
                break
    finally:
        if finished is not None:
            outlasting_outage(complete, finished)
    return ran


def _wake_at_next_opening() -> None:
    """Jobs wait for a rate window that opens after this drain: leave a wake-up that
    becomes visible then (the ORM broker; with another, the periodic tick wakes them)."""
    served = queues.served_queues()
    opening = flow.next_opening(served)
    if opening is not None:
        for queue in served:
            broker.wake_at(queue, opening)


def _claim_settling(worker: str, finished: Finished | None) -> engine.Claim | None:
    """claim(finished=…), and if the database drops meanwhile, the finished job's
    completion written alone, outlasting the outage."""
    try:
        return claim(worker=worker, finished=finished)
    except (OperationalError, InterfaceError):
        if finished is None or connection.in_atomic_block:
            raise
        connection.close()
        outlasting_outage(complete, finished)
        raise


def wait_for_due_job(deadline: float) -> bool:
    """If a delayed job falls due, or a full rate window opens (jobs.flow), before
    `deadline`, sleep until then (a second at most) and say so."""
    served = queues.served_queues()
    next_due = (
        Job.objects.filter(
            status=JobStatus.PENDING,
            queue__in=served,
            run_after__gt=timezone.now(),
        )
        .order_by("run_after")
        .values_list("run_after", flat=True)
        .first()
    )
    if flow.governed():
        opening = flow.next_opening(served)
        if opening is not None and (next_due is None or opening < next_due):
            next_due = opening
    if next_due is None:
        return False
    wait = (next_due - timezone.now()).total_seconds()
    if time.monotonic() + wait >= deadline:
        return False
    time.sleep(max(0.0, min(wait, 1.0)))
    return True


def analyze_job(job_id: int) -> dict:
    """Broker entry point: analyse a draft."""
    return services.job_analyze(job_id=job_id)


def tick() -> dict[str, Any]:
    """Periodic maintenance (a django-q2 schedule): recover stale jobs, wake workers for
    delayed jobs that fell due."""
    swept = services.sweep_stale_jobs()
    woken = 0
    # Runnable jobs per queue, each queue's clusters woken (the tick runs on one cluster):
    # the idle workers of all of them, less the wake-ups still waiting (broker.wakeups_for).
    due = (
        Job.objects.runnable(queues=sorted(queues.known_queues()))
        .values("queue")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in due:
        woken += broker.wake_for_backlog(row["queue"], row["n"])
    return {**swept, "woken": woken}
