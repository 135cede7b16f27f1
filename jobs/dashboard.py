"""Figures for the admin dashboard: every read is bounded and walks an index.

Each function takes the jobs the viewer may see (`Job.objects.visible_to(user)`),
so a staff user without `view_all_jobs` sees figures about their own jobs only.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Min,
    Q,
    QuerySet,
)
from django.db.models.functions import Extract, TruncDay, TruncHour
from django.db.models.functions.datetime import TruncBase
from django.utils import timezone

from . import extensions, selectors
from .models import Job, JobStatus

SLOW_TYPES_WINDOW = timedelta(days=7)
# SQLite has no percentile_cont: at most this many recent durations are read.
SLOW_TYPES_SAMPLE = 5000


def counts_by_status(jobs: QuerySet[Job]) -> list[dict[str, Any]]:
    """One row per status (zero included), in lifecycle order."""
    counts = dict(jobs.order_by().values_list("status").annotate(n=Count("pk")))
    return [{"status": s.value, "label": s.label, "count": counts.get(s, 0)} for s in JobStatus]


def throughput(
    jobs: QuerySet[Job], *, unit: str, periods: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Completed and failed jobs per hour (`unit="hour"`) or day, oldest first.

    Reads only finished jobs of the window through the (status, finished_at) index.
    """
    now = now or timezone.now()
    trunc: type[TruncBase]
    if unit == "hour":
        step, trunc = timedelta(hours=1), TruncHour
        end = now.replace(minute=0, second=0, microsecond=0)
    else:
        step, trunc = timedelta(days=1), TruncDay
        end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - step * (periods - 1)
    rows = (
        jobs.filter(status__in=[JobStatus.COMPLETED, JobStatus.FAILED], finished_at__gte=start)
        .order_by()
        .annotate(bucket=trunc("finished_at"))
        .values("bucket", "status")
        .annotate(n=Count("pk"))
    )
    table: dict[datetime, dict[str, int]] = {}
    for row in rows:
        table.setdefault(row["bucket"], {})[row["status"]] = row["n"]
    series = []
    for i in range(periods):
        bucket = start + step * i
        cell = table.get(bucket, {})
        series.append(
            {
                "start": bucket,
                "completed": cell.get(JobStatus.COMPLETED, 0),
                "failed": cell.get(JobStatus.FAILED, 0),
            }
        )
    return series


def running_jobs(jobs: QuerySet[Job], limit: int = 10) -> list[Job]:
    return list(
        jobs.filter(status=JobStatus.RUNNING)
        .select_related("created_by")
        .only(
            "pk",
            "job_type",
            "status",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "worker",
            "progress_done",
            "progress_total",
            "created_by__username",
        )
        .order_by("started_at")[:limit]
    )


def slowest_types(
    jobs: QuerySet[Job], *, limit: int = 8, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Median and p95 duration (seconds) per job type over jobs finished in 7 days."""
    now = now or timezone.now()
    finished = jobs.filter(
        status__in=[JobStatus.COMPLETED, JobStatus.FAILED],
        finished_at__gte=now - SLOW_TYPES_WINDOW,
        started_at__isnull=False,
    ).order_by()
    if connections[finished.db].vendor == "postgresql":
        return _slowest_types_postgres(finished, limit)
    samples: dict[str, list[float]] = {}
    for job_type, started, ended in finished.order_by("-finished_at").values_list(
        "job_type", "started_at", "finished_at"
    )[:SLOW_TYPES_SAMPLE]:
        if started is None or ended is None:
            continue  # excluded by the filter; the columns are nullable
        samples.setdefault(job_type, []).append((ended - started).total_seconds())
    rows: list[dict[str, Any]] = [
        {
            "job_type": job_type,
            "count": len(values),
            "median": statistics.median(values),
            "p95": _percentile(values, 0.95),
        }
        for job_type, values in samples.items()
    ]
    rows.sort(key=lambda r: r["p95"], reverse=True)
    return rows[:limit]


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


def _slowest_types_postgres(finished: QuerySet[Job], limit: int) -> list[dict[str, Any]]:
    seconds = Extract(
        ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()),
        "epoch",
    )
    rows = (
        finished.values("job_type")
        .annotate(
            count=Count("pk"),
            median=PercentileCont(seconds, 0.5),
            p95=PercentileCont(seconds, 0.95),
        )
        .order_by("-p95")[:limit]
    )
    return [{**row, "median": float(row["median"]), "p95": float(row["p95"])} for row in rows]


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (as percentile_cont)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def queue(jobs: QuerySet[Job], now: datetime | None = None) -> dict[str, Any]:
    """Pending jobs, how many are delayed, and the age of the oldest one."""
    now = now or timezone.now()
    pending = jobs.filter(status=JobStatus.PENDING).order_by()
    figures = pending.aggregate(
        depth=Count("pk"),
        delayed=Count("pk", filter=Q(run_after__gt=now)),
        oldest=Min("queued_at"),
    )
    oldest = figures["oldest"]
    figures["oldest_age"] = (now - oldest).total_seconds() if oldest else None
    return figures


def cluster_health(now: datetime | None = None) -> dict[str, Any]:
    """What the database knows about workers (django-q2's Stat is per-process).

    Workers seen = distinct workers of running jobs; the last heartbeat of any
    running job; the last run of django-q2's "jobdeck.tick" schedule (its next_run
    minus its interval) or how overdue it is; the broker's queue depth.
    """
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.JOBDECK_STALE_SECONDS)
    running = Job.objects.filter(status=JobStatus.RUNNING).order_by()
    figures = running.aggregate(
        last_heartbeat=Max("heartbeat_at"),
        workers=Count("worker", distinct=True),
        stale=Count("pk", filter=Q(heartbeat_at__lt=now - stale_after)),
    )
    figures["heartbeat_age"] = (
        (now - figures["last_heartbeat"]).total_seconds() if figures["last_heartbeat"] else None
    )
    from django_q.models import OrmQ

    next_tick, interval = selectors.tick_next_run()
    # A cluster that runs the schedule moves next_run into the future; the run before
    # was one interval earlier. A next_run left in the past means no cluster ran it.
    figures["last_tick"] = next_tick - interval if next_tick and next_tick > now else None
    figures["tick_age"] = (
        (now - figures["last_tick"]).total_seconds() if figures["last_tick"] else None
    )
    figures["tick_overdue"] = (
        (now - next_tick).total_seconds() if next_tick and next_tick <= now else None
    )
    figures["scheduler_alive"] = selectors.cluster_alive(now, next_tick)
    figures["broker_depth"] = OrmQ.objects.count() if settings.Q_CLUSTER.get("orm") else None
    return figures


def figures(user, now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, for `user`."""
    now = now or timezone.now()
    jobs = Job.objects.visible_to(user)
    hourly = throughput(jobs, unit="hour", periods=24, now=now)
    daily = throughput(jobs, unit="day", periods=30, now=now)
    return {
        "now": now,
        "counts": counts_by_status(jobs),
        "hourly": hourly,
        "daily": daily,
        "hourly_chart": bar_chart(hourly, label_format="%H:00"),
        "daily_chart": bar_chart(daily, label_format="%d %b"),
        "running": running_jobs(jobs),
        "slowest": slowest_types(jobs, now=now),
        "queue": queue(jobs, now=now),
        "panels": extensions.dashboard_panels(user, now),
        "health": cluster_health(now=now),
    }


def bar_chart(
    series: list[dict[str, Any]], *, label_format: str, width: int = 720, height: int = 160
) -> dict[str, Any]:
    """Geometry of a grouped bar chart (completed vs failed) for a server-side SVG."""
    top = max([max(p["completed"], p["failed"]) for p in series] + [1])
    pad_left, pad_bottom, pad_top = 36, 20, 8
    plot_h = height - pad_bottom - pad_top
    slot = (width - pad_left) / max(len(series), 1)
    bar_w = max(1.0, slot / 2 - 1)
    bars = []
    for i, point in enumerate(series):
        x = pad_left + i * slot
        for j, key in enumerate(("completed", "failed")):
            h = plot_h * point[key] / top
            bars.append(
                {
                    "x": round(x + j * bar_w, 1),
                    "y": round(pad_top + plot_h - h, 1),
                    "w": round(bar_w, 1),
                    "h": round(h, 1),
                    "kind": key,
                    "title": f"{point['start'].strftime(label_format)}: {point[key]} {key}",
                }
            )
    every = max(1, len(series) // 8)
    labels = [
        {"x": round(pad_left + i * slot + slot / 2, 1), "text": p["start"].strftime(label_format)}
        for i, p in enumerate(series)
        if i % every == 0
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "label_y": height - 5,
        "top": top,
        "top_y": pad_top + 8,
        "axis_y": pad_top + plot_h,
        "axis_x": pad_left,
        "totals": {
            "completed": sum(p["completed"] for p in series),
            "failed": sum(p["failed"] for p in series),
        },
    }
