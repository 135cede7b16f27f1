"""Reads of schedules: lists, history, previews of coming occurrences."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Case, CharField, Exists, OuterRef, QuerySet, Value, When
from django.utils import timezone

from jobs.models import ACTIVE_STATUSES, Job, JobStatus

from . import timing
from .models import Schedule

PREVIEW_MAX = 100


def last_workflow_status() -> Case:
    """The status of a schedule's last workflow (jobs.workflows.aggregate, from its
    jobs), null without one: three EXISTS on job_workflow_id_idx, not a count."""
    jobs = Job.objects.filter(workflow_id=OuterRef("last_workflow_id"))
    return Case(
        When(last_workflow__isnull=True, then=Value(None)),
        When(Exists(jobs.filter(status__in=ACTIVE_STATUSES)), then=Value("running")),
        When(Exists(jobs.filter(status=JobStatus.FAILED)), then=Value(JobStatus.FAILED)),
        When(Exists(jobs.exclude(status=JobStatus.COMPLETED)), then=Value(JobStatus.CANCELLED)),
        default=Value(JobStatus.COMPLETED),
        output_field=CharField(null=True),
    )


def schedule_list() -> QuerySet[Schedule]:
    """Schedules with what list views show (last job's status, last workflow's status,
    owner) in one query."""
    return (
        Schedule.objects.select_related("last_job", "created_by")
        .defer("last_job__config", "last_job__result", "last_job__analysis", "last_job__error")
        .annotate(last_workflow_status=last_workflow_status())
    )


def schedule_history(*, schedule: Schedule, user=None) -> QuerySet[Job]:
    """The jobs the schedule created (fired or run now; a workflow's too), newest first.

    With `user`, only the jobs that user may see (the jobs API's visibility rules).
    """
    jobs = Job.objects.filter(schedule=schedule).select_related("created_by").order_by("-id")
    if user is not None:
        jobs = jobs.visible_to(user)
    return jobs


def schedule_preview(
    *, schedule: Schedule, n: int = 10, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The next `n` occurrences from now (or from a due next_run_at), local and UTC.

    Occurrences in a DST gap or repeated hour carry `dst` ("gap" | "repeated") and
    a sentence saying what the schedule does there.
    """
    now = now or timezone.now()
    n = max(1, min(int(n), PREVIEW_MAX))
    spec = timing.Spec.of(schedule)
    tz = spec.tz
    rows = []
    due = getattr(schedule, "next_run_at", None)
    if schedule.pk is not None and schedule.enabled and due is not None and due <= now:
        # Due but not fired yet (the scheduler fires it within a minute): it comes first.
        local = due.astimezone(tz)
        rows.append(
            {
                "local": local.isoformat(),
                "utc": due.isoformat().replace("+00:00", "Z"),
                "local_display": f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}",
                "dst": None,
                "note": "due now: fires at the scheduler's next pass",
                "due": True,
            }
        )
    for firing in timing.occurrences(spec, now, n - len(rows)):
        local = firing.at.astimezone(tz)
        rows.append(
            {
                "local": local.isoformat(),
                "utc": firing.at.isoformat().replace("+00:00", "Z"),
                "local_display": f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}",
                "dst": firing.dst or None,
                "note": timing.dst_detail(firing, spec),
            }
        )
    return rows


def schedule_description(schedule: Schedule) -> str:
    return timing.describe(timing.Spec.of(schedule))
