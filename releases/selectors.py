"""Reads about releases: default versions, apply history and why a job is waiting."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from jobs.models import Job, JobStatus

from .models import Release, ReleaseVersion

APPLY = "release.apply"
# How many of a release's latest finished jobs the start estimate looks at.
DURATION_SAMPLE = 50


def default_version(release: Release) -> ReleaseVersion | None:
    """The version a job acts on when none is named: the current one, else the latest."""
    if release.current_version_id is not None:
        return ReleaseVersion.objects.filter(pk=release.current_version_id).first()
    return ReleaseVersion.objects.filter(release=release).order_by("-number").first()


def release_jobs(release: Release) -> QuerySet[Job]:
    """The release's history: every job on it, newest first."""
    return Job.objects.filter(release=release).select_related("created_by").order_by("-id")


def last_applier(release: Release) -> Job | None:
    """The completed apply job that last made the current version current."""
    if release.current_version_id is None:
        return None
    number = (
        ReleaseVersion.objects.filter(pk=release.current_version_id)
        .values_list("number", flat=True)
        .first()
    )
    return (
        Job.objects.filter(
            release=release, job_type=APPLY, status=JobStatus.COMPLETED, result__version=number
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def current_applier(release: Release) -> Job | None:
    """The apply whose state is current, resolved through rollbacks.

    A rollback job restores the state an earlier apply made, so history continues
    from that apply: rolling back again goes one step further back.
    """
    job = last_applier(release)
    seen: set[int] = set()
    while job is not None and (job.config or {}).get("restores") and job.pk not in seen:
        seen.add(job.pk)
        restored = Job.objects.filter(pk=job.config["restores"], release=release).first()
        if restored is None:  # cleaned up: the rollback itself is the best record left
            break
        job = restored
    return job


# --- why a pending job is waiting ----------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def median_durations(release_ids: Iterable[int]) -> dict[int, timedelta]:
    """Median run time of each release's latest finished jobs (one query)."""
    ids = set(release_ids)
    if not ids:
        return {}
    rows = (
        Job.objects.filter(
            release_id__in=ids,
            status__in=(JobStatus.COMPLETED, JobStatus.FAILED),
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .annotate(
            rank=Window(RowNumber(), partition_by=F("release_id"), order_by=F("finished_at").desc())
        )
        .filter(rank__lte=DURATION_SAMPLE)
        .values_list("release_id", "started_at", "finished_at")
    )
    samples: dict[int, list[float]] = {}
    for release_id, started, finished in rows:
        samples.setdefault(release_id, []).append((finished - started).total_seconds())
    return {rid: timedelta(seconds=statistics.median(s)) for rid, s in samples.items()}


def waiting_reasons(jobs: Iterable[Job], now: datetime | None = None) -> dict[int, str]:
    """`{job id: reason}` for the pending jobs among `jobs` that wait behind others
    on their release; two queries whatever the number of jobs.
    """
    pending = [j for j in jobs if j.status == JobStatus.PENDING and j.release_id is not None]
    if not pending:
        return {}
    now = now or timezone.now()
    release_ids = {j.release_id for j in pending}
    active = list(
        Job.objects.filter(
            release_id__in=release_ids, status__in=(JobStatus.PENDING, JobStatus.RUNNING)
        )
        .select_related("release")
        .only("pk", "status", "release_id", "started_at", "release__slug", "release__name")
        .order_by("pk")
    )
    medians = median_durations(release_ids)
    reasons: dict[int, str] = {}
    for job in pending:
        queue = [a for a in active if a.release_id == job.release_id]
        running = [a for a in queue if a.status == JobStatus.RUNNING]
        older = [a for a in queue if a.status == JobStatus.PENDING and a.pk < job.pk]
        if not running and not older:
            continue  # first in line: it starts as soon as a worker is free
        head = running[0] if running else older[0]
        ahead = older if running else older[1:]
        release = head.release
        reason = (
            f"waiting, {_ordinal(len(ahead) + 1)} behind job #{head.pk} "
            f"on release {release.name or release.slug}"
        )
        median = medians.get(job.release_id)
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
    """Why a pending job has not started: "waiting, 2nd behind job #123 on release X;
    estimated start 14:05 UTC" — or None when it is not blocked by its release."""
    return waiting_reasons([job], now).get(job.pk)
