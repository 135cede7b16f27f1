"""Goal 3: pickup latency on an idle cluster, created_at → started_at, one job at a time."""

from __future__ import annotations

import random
import time

from django.conf import settings

from jobs import services
from jobs.models import Job, JobStatus

from .common import Ctx
from .harness import percentile, start_clusters, wait_until
from .jobtypes import NOOP


def _pickup(ctx: Ctx, label: str, **env: str) -> dict[str, float]:
    samples = 30 if ctx.quick else 100
    clusters = start_clusters(1, **env)
    latencies: list[float] = []
    creates: list[float] = []  # the job_create call itself: INSERTs, commit, wake-up
    try:
        for i in range(samples + 3):
            t0 = time.perf_counter()
            job = services.job_create(job_type=NOOP)
            created_ms = (time.perf_counter() - t0) * 1000
            started = wait_until(
                lambda pk=job.pk: (
                    Job.objects.filter(pk=pk, started_at__isnull=False)
                    .values_list("started_at", flat=True)
                    .first()
                ),
                30,
                0.002,
                "the job to start",
            )
            if i >= 3:  # the first few warm up connections and imports
                latencies.append((started - job.created_at).total_seconds() * 1000)
                creates.append(created_ms)
            wait_until(
                lambda pk=job.pk: Job.objects.filter(pk=pk, status=JobStatus.COMPLETED).exists(),
                30,
                0.005,
                "the job to finish",
            )
            time.sleep(random.uniform(0.05, 0.15))  # idle again, at a random poll phase
    finally:
        for c in clusters:
            c.stop()
    return {
        f"{label} pickup p50 ms": percentile(latencies, 50),
        f"{label} pickup p95 ms": percentile(latencies, 95),
        f"{label} of which the job_create call, p50 ms": percentile(creates, 50),
    }


def bench_pickup(ctx: Ctx) -> dict[str, float]:
    """ORM broker at the default poll (settings.Q_CLUSTER["poll"]) and at Q_POLL=0.01."""
    figures = _pickup(ctx, f"ORM poll {settings.Q_CLUSTER['poll']:g} (default)")
    figures.update(_pickup(ctx, "ORM poll 0.01", Q_POLL="0.01"))
    return figures


def bench_pickup_redis(ctx: Ctx) -> dict[str, float]:
    return _pickup(ctx, "Redis")
