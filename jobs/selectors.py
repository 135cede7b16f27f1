"""Reads of jobs and logs that several front doors share."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Job, JobLog


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
