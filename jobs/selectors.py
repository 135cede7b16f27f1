"""Reads of jobs and logs that several front doors share."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Max, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from . import extensions, flow
from .models import Job, JobLog, JobStatus


def log_tail(job_id: int, n: int) -> list[JobLog]:
    """The last `n` lines, oldest first; reads only those rows (index on job, id)."""
    if n <= 0:
        return []
    rows = list(JobLog.objects.filter(job_id=job_id).order_by("-id")[:n])
    rows.reverse()
    return rows


def log_after(job_id: int, cursor: int, limit: int = 1000) -> list[JobLog]:
    """Lines with id > `cursor`, oldest first, at most `limit`."""
    return list(JobLog.objects.filter(job_id=job_id, id__gt=cursor).order_by("id")[:limit])


def current_task_name(job: Job) -> str | None:
    task = job.tasks.filter(status="running").order_by("position").first()
    return task.name if task else None


def visible_jobs(user) -> QuerySet[Job]:
    return Job.objects.visible_to(user)


# --- why a pending job is waiting ----------------------------------------------------

# How many of a lock key's latest finished jobs the start estimate looks at.
DURATION_SAMPLE = 50


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def median_durations(lock_keys: Iterable[str]) -> dict[str, timedelta]:
    """Median run time of the latest finished jobs of each lock key (one query)."""
    keys = set(lock_keys)
    if not keys:
        return {}
    rows = (
        Job.objects.filter(
            lock__in=keys,
            status__in=(JobStatus.COMPLETED, JobStatus.FAILED),
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .annotate(
            rank=Window(RowNumber(), partition_by=F("lock"), order_by=F("finished_at").desc())
        )
        .filter(rank__lte=DURATION_SAMPLE)
        .values_list("lock", "started_at", "finished_at")
    )
    samples: dict[str, list[float]] = {}
    for key, started, finished in rows:
        if key is None or started is None or finished is None:
            continue  # excluded by the filter; the columns are nullable
        samples.setdefault(key, []).append((finished - started).total_seconds())
    return {key: timedelta(seconds=statistics.median(s)) for key, s in samples.items()}


def waiting_reasons(jobs: Iterable[Job], now: datetime | None = None) -> dict[int, str]:
    """`{job id: reason}` for the pending jobs among `jobs` that something holds: a
    run_after still ahead, a flow rule ("queue reports is paused", "job type x is at
    its concurrency limit (2/2 running: #7, #9)", "… at its rate limit (3 per 10 s);
    next start at 14:05:10 UTC"), or the jobs ahead of it on its lock key ("waiting,
    2nd behind job #123 on release Shop; estimated start 14:05 UTC"). A few queries
    whatever the number of jobs.
    """
    pending = [j for j in jobs if j.status == JobStatus.PENDING]
    if not pending:
        return {}
    now = now or timezone.now()
    reasons: dict[int, str] = {}
    if flow.governed():
        shut = flow.closed({j.queue for j in pending}, now)
        keys = flow.full_keys({j.lock for j in pending if j.lock}, now)
        for job in pending:
            reason = (
                shut.queues.get(job.queue)
                or shut.types.get(job.job_type)
                or keys.get(job.lock or "")
            )
            if reason:
                reasons[job.pk] = reason
    for job in pending:
        if job.pk not in reasons and job.run_after is not None and job.run_after > now:
            reasons[job.pk] = f"delayed until {job.run_after:%Y-%m-%d %H:%M:%S} UTC"
    keyed = [(j, j.lock) for j in pending if j.lock is not None and j.pk not in reasons]
    if keyed:
        reasons.update(_lock_reasons(keyed, now))
    return reasons


def _lock_reasons(pending: list[tuple[Job, str]], now: datetime) -> dict[int, str]:
    keys = {lock for _, lock in pending}
    active = list(
        Job.objects.filter(lock__in=keys, status__in=(JobStatus.PENDING, JobStatus.RUNNING))
        .select_related(*extensions.lock_label_relations())
        .order_by("pk")
    )
    medians = median_durations(keys)
    reasons: dict[int, str] = {}
    for job, lock in pending:
        line = [a for a in active if a.lock == lock]
        running = [a for a in line if a.status == JobStatus.RUNNING]
        older = [a for a in line if a.status == JobStatus.PENDING and a.pk < job.pk]
        if not older and len(running) < job.lock_limit:
            continue  # first in line: it starts as soon as a worker is free
        head = running[0] if running else older[0]
        ahead = older if running else older[1:]
        reason = (
            f"waiting, {_ordinal(len(ahead) + 1)} behind job #{head.pk} "
            f"on {extensions.lock_label(head)}"
        )
        median = medians.get(lock)
        if median is not None:
            if running and head.started_at is not None:
                head_end = max(now, head.started_at + median)
            else:
                head_end = now + median
            start = head_end + median * len(ahead)
            reason += f"; estimated start {start:%H:%M} UTC"
        reasons[job.pk] = reason
    return reasons


def waiting_reason(job: Job, now: datetime | None = None) -> str | None:
    """Why a pending job has not started, or None when nothing holds it."""
    return waiting_reasons([job], now).get(job.pk)


# --- is a cluster alive? ---------------------------------------------------------------


def tick_next_run() -> tuple[datetime | None, timedelta]:
    """When django-q2's "jobdeck.tick" schedule runs next, and its interval."""
    from django_q.models import Schedule

    tick = Schedule.objects.filter(name="jobdeck.tick").values("next_run", "minutes").first()
    interval = timedelta(minutes=(tick or {}).get("minutes") or 1)
    return (tick["next_run"] if tick else None), interval


def last_heartbeat() -> datetime | None:
    """The latest heartbeat of any running job."""
    return Job.objects.filter(status=JobStatus.RUNNING).aggregate(last=Max("heartbeat_at"))["last"]


def cluster_alive(
    now: datetime, next_tick: datetime | None, heartbeat: datetime | None = None
) -> bool:
    """The one definition of "a cluster is running": within JOBDECK_HEALTH_CLUSTER_SECONDS
    a cluster moved the tick's next run (a cluster's scheduler runs it when due, so a
    next run that far in the past means none did), or a running job heartbeated."""
    window = timedelta(seconds=settings.JOBDECK_HEALTH_CLUSTER_SECONDS)
    return bool(
        (next_tick is not None and next_tick >= now - window)
        or (heartbeat is not None and heartbeat >= now - window)
    )
