"""Goal 2: creation rate, bulk through the service and one by one through job_create."""

from __future__ import annotations

import time

from django.db import transaction

from jobs import services
from jobs.models import Job

from .common import Ctx, insert_noop_jobs
from .jobtypes import NOOP


def _discard(ids: list[int]) -> None:
    """Delete the created (never run: no cluster is up) jobs and their wake-ups."""
    from django_q.models import OrmQ

    with transaction.atomic():
        services._delete_jobs(ids)
        OrmQ.objects.all().delete()


def bench_create(ctx: Ctx) -> dict[str, float]:
    figures: dict[str, float] = {}
    bulk_n = min(ctx.n, 10_000)
    bulk = getattr(services, "job_bulk_create", None)
    t0 = time.perf_counter()
    if bulk is not None:
        ids = bulk(specs=[{"job_type": NOOP, "config": {}} for _ in range(bulk_n)])
        label = "bulk create jobs/s (services.job_bulk_create)"
    else:
        ctx.note(
            "services.job_bulk_create does not exist yet: bulk creation is measured on "
            "the bench's own bulk_create path (job_build once, bulk_create jobs + tasks)."
        )
        ids = insert_noop_jobs(bulk_n)
        label = "bulk create jobs/s (bench bulk_create path)"
    figures[label] = bulk_n / (time.perf_counter() - t0)
    _discard(ids)

    one_n = min(ctx.n, 2_000)
    ids = []
    t0 = time.perf_counter()
    for _ in range(one_n):
        ids.append(services.job_create(job_type=NOOP).pk)
    figures["one-by-one job_create jobs/s (incl. wake-up message)"] = one_n / (
        time.perf_counter() - t0
    )
    _discard(ids)
    assert not Job.objects.filter(pk__in=ids).exists()
    return figures
