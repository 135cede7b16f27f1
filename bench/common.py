"""Helpers that run inside a configured Django process: make no-op jobs, wait for them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from jobs import broker, services
from jobs.models import Job, JobLog, JobStatus, Task

from .harness import wait_until
from .jobtypes import NOOP


@dataclass
class Ctx:
    """What one benchmark run knows: sizes, mode, and where to put notes."""

    n: int
    quick: bool
    group: str
    notes: list[str] = field(default_factory=list)
    # Figures a long benchmark has measured so far, kept if a later step fails.
    partial: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def insert_noop_jobs(
    n: int,
    *,
    wakeups: int = 2,
    batch: int = 5000,
    job_type: str = NOOP,
    config: dict[str, Any] | None = None,
) -> list[int]:
    """Bulk-create `n` pending no-op jobs (or of `job_type` with `config`: jobs + tasks,
    one transaction), then send `wakeups` broker messages after commit; returns the job
    ids in order.

    The bench's own path (not services.job_bulk_create) so the number of wake-ups
    is the benchmark's choice, e.g. one per worker of every cluster.
    """
    template, names = services.job_build(job_type=job_type, config=config)
    now = timezone.now()
    with transaction.atomic():
        jobs = Job.objects.bulk_create(
            [
                Job(
                    job_type=template.job_type,
                    status=JobStatus.PENDING,
                    config=template.config,
                    max_attempts=template.max_attempts,
                    created_at=now,
                    queued_at=now,
                    progress_total=len(names),
                )
                for _ in range(n)
            ],
            batch_size=batch,
        )
        Task.objects.bulk_create(
            [Task(job_id=job.pk, position=1, name=names[0]) for job in jobs], batch_size=batch
        )
        for _ in range(wakeups):
            transaction.on_commit(lambda: broker.enqueue_wakeup(None))
    return [job.pk for job in jobs]


def bulk_noop_jobs(n: int, batch: int = 10_000) -> list[int]:
    """`n` no-op jobs made by services.job_bulk_create, in calls of at most `batch` jobs
    (BULK_MAX_JOBS), with the wake-ups it sends; the job ids in order."""
    ids: list[int] = []
    while len(ids) < n:
        size = min(batch, n - len(ids))
        ids.extend(services.job_bulk_create(specs=[{"job_type": NOOP}] * size))
    return ids


def active_in(first: int, last: int) -> bool:
    """Any of jobs first..last still pending or running (True while the database is away:
    the shared benchmark machine's PostgreSQL is sometimes restarted by other suites)."""
    try:
        return Job.objects.filter(
            pk__gte=first, pk__lte=last, status__in=[JobStatus.PENDING, JobStatus.RUNNING]
        ).exists()
    except (OperationalError, InterfaceError):
        connection.close()
        return True


def wait_drained(ids: list[int], timeout: float, interval: float = 0.02) -> float:
    """Block until every job in `ids` finished; the wall seconds it took."""
    t0 = time.perf_counter()
    first, last = ids[0], ids[-1]
    wait_until(lambda: not active_in(first, last), timeout, interval, f"{len(ids)} jobs to drain")
    return time.perf_counter() - t0


def check_ran_once(ids: list[int]) -> dict[str, Any]:
    """Every job completed after exactly one attempt, its task too, with one log line."""
    first, last = ids[0], ids[-1]
    jobs = Job.objects.filter(pk__gte=first, pk__lte=last)
    agg = jobs.aggregate(
        n=Count("pk"),
        completed=Count("pk", filter=Q(status=JobStatus.COMPLETED, attempts=1)),
        first_start=Min("started_at"),
        last_finish=Max("finished_at"),
        workers=Count("worker", distinct=True),
    )
    # When each worker started its first job: how long the last one waited for work.
    firsts = [
        row["first"] for row in jobs.values("worker").annotate(first=Min("started_at")).order_by()
    ]
    tasks_once = Task.objects.filter(job_id__gte=first, job_id__lte=last, attempts=1).count()
    logs = JobLog.objects.filter(job_id__gte=first, job_id__lte=last).count()
    span = (agg["last_finish"] - agg["first_start"]).total_seconds()
    return {
        "n": agg["n"],
        "ran_once": agg["completed"] == agg["n"] == tasks_once == logs == len(ids),
        "db_seconds": span,
        "workers": agg["workers"],
        "last_worker_joined_after": (max(firsts) - agg["first_start"]).total_seconds(),
    }


def drain_figures(ids: list[int], wall: float, prefix: str = "") -> dict[str, float]:
    check = check_ran_once(ids)
    if not check["ran_once"]:
        raise AssertionError(f"not every job ran exactly once: {check}")
    n = len(ids)
    return {
        f"{prefix}drain jobs/s (DB first claim → last finish)": n / check["db_seconds"],
        f"{prefix}drain jobs/s (wall clock)": n / wall,
    }
