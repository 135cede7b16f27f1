"""Small factories for jobs in given states (rows only; no runner involved)."""

from __future__ import annotations

from django.utils import timezone

from jobs import services
from jobs.models import Job, JobStatus


def make_job(status: str = JobStatus.PENDING, steps: int = 2, **fields) -> Job:
    """A demo.steps job forced into `status` (as if the runner had moved it there)."""
    user = fields.pop("user", None)
    job = services.job_create(
        job_type="demo.steps",
        config={"steps": steps, "delay": 0},
        user=user,
        draft=status == JobStatus.DRAFT,
        **fields,
    )
    now = timezone.now()
    updates: dict = {"status": status}
    if status in (JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        updates.update(started_at=now, attempts=1, heartbeat_at=now)
    if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        updates.update(finished_at=now, heartbeat_at=None)
    Job.objects.filter(pk=job.pk).update(**updates)
    job.refresh_from_db()
    return job
