"""Reads about releases: default versions and apply history (why a job waits behind
another of its release: jobs.selectors.waiting_reasons, by the release's lock key)."""

from __future__ import annotations

from django.db.models import QuerySet

from jobs.models import Job, JobStatus

from .models import Release, ReleaseVersion

APPLY = "release.apply"


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


def rollback_target(release: Release) -> int | None:
    """The version a rollback would apply now (the one current before the current
    one, through earlier rollbacks), or None when there is none; release_rollback
    reads the same."""
    applier = current_applier(release)
    if applier is None:
        return None
    target = (applier.result or {}).get("previous_version")
    return int(target) if target is not None else None
