"""Statistics of finished jobs per job type, queue or schedule, over 24 h, 7 d or 30 d.

Runs (jobs that finished in the window), completed / failed / cancelled, the failure
rate (failed / (completed + failed): a cancel is nobody's failure) and duration
percentiles (started → finished, linear interpolation as PostgreSQL's percentile_cont).
One aggregate query per figure set, served by the (status, finished_at) index: on
PostgreSQL `percentile_cont(…) WITHIN GROUP`, on SQLite the same aggregate written in
Python (registered on each connection by jobs.apps). The jobs counted are those the
user may see (jobs.permissions), so an owner sees figures of their own jobs.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Field, Q
from django.utils import timezone

from .models import FINISHED_STATUSES, Job, JobStatus
from .permissions import MANAGE_ALL_JOBS, VIEW_ALL_JOBS

WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
# The dimension's name in URLs → the Job column grouped by.
DIMENSIONS: dict[str, str] = {"job-types": "job_type", "queues": "queue", "schedules": "schedule"}
PERCENTILES = (0.5, 0.9, 0.95, 0.99)
SQLITE_AGGREGATE = "jobdeck_percentiles"

DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


class DurationPercentiles(Aggregate):
    """The PERCENTILES of a duration, as a list of seconds (None without rows)."""

    function = "percentile_cont"
    name = "DurationPercentiles"
    # A list (PostgreSQL) or JSON text (SQLite), read by percentiles_of(): a plain Field
    # has no converter that would try to make it a number.
    output_field = Field()
    allow_filter = False

    def as_postgresql(self, compiler, connection, **extra_context):
        fractions = ", ".join(str(p) for p in PERCENTILES)
        return self.as_sql(
            compiler,
            connection,
            template=f"percentile_cont(ARRAY[{fractions}]) WITHIN GROUP "
            "(ORDER BY EXTRACT(EPOCH FROM %(expressions)s))",
            **extra_context,
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        # django_timestamp_diff gives microseconds; the aggregate answers JSON seconds.
        return self.as_sql(
            compiler, connection, template=f"{SQLITE_AGGREGATE}(%(expressions)s)", **extra_context
        )


def interpolated(values: list[float], fraction: float) -> float:
    """percentile_cont: linear interpolation between the two nearest ranks."""
    position = fraction * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)


class SQLitePercentiles:
    """SQLite's aggregate `jobdeck_percentiles(microseconds)` → JSON list of seconds."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: Any) -> None:
        if value is not None:
            self.values.append(float(value) / 1_000_000)

    def finalize(self) -> str | None:
        if not self.values:
            return None
        self.values.sort()
        return json.dumps([interpolated(self.values, p) for p in PERCENTILES])


def register_sqlite_aggregate(sender: Any, connection: Any, **kwargs: Any) -> None:
    """connection_created receiver: give each new SQLite connection the aggregate."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate(SQLITE_AGGREGATE, 1, SQLitePercentiles)


def percentiles_of(value: Any) -> dict[str, float | None]:
    if isinstance(value, str):
        value = json.loads(value)
    if not value:
        return {f"p{round(p * 100)}": None for p in PERCENTILES}
    return {
        f"p{round(p * 100)}": round(float(v), 3) for p, v in zip(PERCENTILES, value, strict=True)
    }


def job_stats(*, user: Any, by: str, window: str, now: datetime | None = None) -> dict[str, Any]:
    """Figures of the jobs `user` may see that finished in `window`, per `by`
    (a DIMENSIONS key), busiest first. Two queries (one for schedule names)."""
    column = DIMENSIONS[by]
    now = now or timezone.now()
    since = now - WINDOWS[window]
    key = f"{column}_id" if column == "schedule" else column
    rows = (
        Job.objects.visible_to(user)
        .filter(status__in=FINISHED_STATUSES, finished_at__gte=since, finished_at__lte=now)
        .exclude(**{f"{key}__isnull": True})
        .values(key)
        .annotate(
            runs=Count("id"),
            completed=Count("id", filter=Q(status=JobStatus.COMPLETED)),
            failed=Count("id", filter=Q(status=JobStatus.FAILED)),
            cancelled=Count("id", filter=Q(status=JobStatus.CANCELLED)),
            durations=DurationPercentiles(DURATION),
        )
        .order_by("-runs", key)
    )
    results = []
    for row in rows:
        decided = row["completed"] + row["failed"]
        results.append(
            {
                "key": row[key],
                "label": str(row[key]),
                "runs": row["runs"],
                "completed": row["completed"],
                "failed": row["failed"],
                "cancelled": row["cancelled"],
                "failure_rate": round(row["failed"] / decided, 4) if decided else None,
                "duration_seconds": percentiles_of(row["durations"]),
            }
        )
    if column == "schedule" and results:
        schedules = Job._meta.get_field("schedule").related_model._default_manager
        names = dict(schedules.filter(pk__in=[r["key"] for r in results]).values_list("pk", "name"))
        for result in results:
            result["label"] = names.get(result["key"], f"#{result['key']}")
    return {
        "by": by,
        "window": window,
        "since": since,
        "until": now,
        "results": results,
    }


def cached_job_stats(*, user: Any, by: str, window: str) -> dict[str, Any]:
    """job_stats, kept JOBDECK_STATS_CACHE_SECONDS (60) in the shared cache: a window of
    a million jobs takes a second or two to sort for its percentiles (docs/benchmarks.md),
    and the figures of a 24-hour window barely move in a minute. Keyed by what the user
    may see: everything, or their own jobs."""
    seconds = settings.JOBDECK_STATS_CACHE_SECONDS
    if seconds <= 0:
        return job_stats(user=user, by=by, window=window)
    sees_all = user.has_perm(VIEW_ALL_JOBS) or user.has_perm(MANAGE_ALL_JOBS)
    key = f"jobdeck:stats:{by}:{window}:{'all' if sees_all else user.pk}"
    data = cache.get(key)
    if data is None:
        data = job_stats(user=user, by=by, window=window)
        cache.set(key, data, seconds)
    return data
