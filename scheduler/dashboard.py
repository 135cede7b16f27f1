"""What the scheduler adds to the admin dashboard (jobs.extensions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobs.models import JobStatus

from .models import Schedule


def failing_schedules(user: Any, now: datetime, limit: int = 10) -> dict[str, Any] | None:
    """The panel of schedules whose last job failed."""
    schedules = list(
        Schedule.objects.filter(last_job__status=JobStatus.FAILED)
        .select_related("last_job")
        .only("pk", "name", "job_type", "enabled", "last_run_at", "last_job__status")
        .order_by("-last_run_at")[:limit]
    )
    return {"template": "admin/scheduler/dashboard_failing.html", "schedules": schedules}


def schedules_widget(user: Any, now: datetime, limit: int = 8) -> dict[str, Any] | None:
    """The panel of coming schedules: next run, last status, Run now (one query)."""
    schedules = list(
        Schedule.objects.filter(enabled=True)
        .select_related("last_job")
        .only(
            "pk",
            "name",
            "job_type",
            "enabled",
            "dry_run",
            "timezone",
            "next_run_at",
            "last_run_at",
            "last_job__status",
        )
        .order_by("next_run_at")[:limit]
    )
    may_run = bool(user.has_perm("scheduler.change_schedule"))
    return {
        "template": "admin/scheduler/dashboard_schedules.html",
        "schedules": schedules,
        "may_run": may_run,
        "now": now,
        "disabled": Schedule.objects.filter(enabled=False).count(),
    }
