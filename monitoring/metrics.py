"""Prometheus metrics computed from the database at scrape time (docs/monitoring.md).

Every figure is read from the tables every cluster writes, so it is right whatever
the number of clusters and machines; nothing is counted in a process. Each read is
bounded and walks an index (the active jobs' partial indexes, the finished jobs'
(status, finished_at) index over the recent window), so a scrape stays cheap with
millions of jobs: see bench/metrics.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Field,
    Max,
    Q,
)
from django.db.models.functions import Extract
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jobs import queues, selectors
from jobs.dashboard import _percentile
from jobs.models import FINISHED_STATUSES, Job, JobStatus
from scheduler.models import Schedule

ACTIVE_STATUSES = (JobStatus.DRAFT, JobStatus.PENDING, JobStatus.RUNNING)
QUANTILES = (0.5, 0.9, 0.99)
# SQLite has no percentile_cont: the newest durations of the window, at most this many.
SQLITE_SAMPLE = 5000


class Percentiles(Aggregate):
    """PostgreSQL's percentile_cont(ARRAY[QUANTILES]) WITHIN GROUP (ORDER BY …): every
    quantile from one sort of the group (three percentile_cont calls sort it thrice)."""

    function = "percentile_cont"
    template = "%(function)s(%(fractions)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = Field()  # float8[]: psycopg returns a list, nothing to convert

    def __init__(self, expression: Any) -> None:
        fractions = ", ".join(repr(float(q)) for q in QUANTILES)
        super().__init__(expression, fractions=f"ARRAY[{fractions}]::float8[]")


def _seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 3)


class JobdeckCollector(Collector):
    """One scrape: a handful of indexed queries, whatever the table's size."""

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape time; nothing to describe ahead

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = timezone.now()
        window = timedelta(seconds=settings.JOBDECK_METRICS_WINDOW_SECONDS)
        yield from self.jobs(now)
        yield from self.finished(now, window)
        yield from self.durations(now, window)
        yield from self.schedules(now)
        yield from self.clusters(now)
        scrape = GaugeMetricFamily(
            "jobdeck_scrape_duration_seconds", "Time this scrape spent reading the database."
        )
        scrape.add_metric([], time.perf_counter() - started)
        yield scrape

    def jobs(self, now: datetime) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "jobdeck_jobs",
            "Jobs in an active status (draft, pending, running), by queue and job type.",
            labels=["status", "queue", "job_type"],
        )
        rows = (
            Job.objects.filter(status__in=ACTIVE_STATUSES)
            .order_by()
            .values_list("status", "queue", "job_type")
            .annotate(n=Count("pk"))
        )
        running: dict[str, int] = {}
        pending: dict[str, int] = {}
        for status, queue, job_type, n in rows:
            jobs.add_metric([status, queue, job_type], n)
            if status == JobStatus.RUNNING:
                running[queue] = running.get(queue, 0) + n
            elif status == JobStatus.PENDING:
                pending[queue] = pending.get(queue, 0) + n
        yield jobs
        known = sorted(queues.known_queues() | set(running) | set(pending))
        depth = GaugeMetricFamily(
            "jobdeck_queue_pending", "Pending jobs per queue.", labels=["queue"]
        )
        busy = GaugeMetricFamily(
            "jobdeck_queue_running", "Running jobs per queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "jobdeck_queue_oldest_pending_age_seconds",
            "How long the oldest due pending job of each queue has waited (0: none waits).",
            labels=["queue"],
        )
        for queue in known:
            depth.add_metric([queue], pending.get(queue, 0))
            busy.add_metric([queue], running.get(queue, 0))
            age = self.oldest_pending_age(queue, now) if pending.get(queue) else 0.0
            oldest.add_metric([queue], age)
        yield depth
        yield busy
        yield oldest

    def oldest_pending_age(self, queue: str, now: datetime) -> float:
        """Waiting since it was queued, or since it fell due if it was delayed (as
        /api/health/): the oldest by id, through the pending jobs' index."""
        row = (
            Job.objects.filter(status=JobStatus.PENDING, queue=queue)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("id")
            .values_list("queued_at", "run_after", "created_at")
            .first()
        )
        if row is None:
            return 0.0
        queued_at, run_after, created_at = row
        since = max(t for t in (queued_at or created_at, run_after) if t is not None)
        return max(0.0, _seconds(now - since))

    def finished(self, now: datetime, window: timedelta) -> Iterator[Metric]:
        finished = GaugeMetricFamily(
            "jobdeck_jobs_finished",
            f"Jobs that finished in the last {int(window.total_seconds())} s "
            "(JOBDECK_METRICS_WINDOW_SECONDS), by final status and job type.",
            labels=["status", "job_type"],
        )
        # One SELECT per status, in one UNION ALL: `status IN (all three)` is what the
        # partial index job_status_finished_idx is defined by, so PostgreSQL drops it
        # from the index condition and walks the whole index for the finished_at range
        # (130 ms at a million jobs); `status = …` keeps (status, finished_at) a range.
        per_status = [
            Job.objects.filter(status=status, finished_at__gte=now - window)
            .order_by()
            .values_list("status", "job_type")
            .annotate(n=Count("pk"))
            for status in FINISHED_STATUSES
        ]
        rows = per_status[0].union(*per_status[1:], all=True).order_by()
        for status, job_type, n in rows:
            finished.add_metric([status, job_type], n)
        yield finished

    def durations(self, now: datetime, window: timedelta) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "jobdeck_job_duration_seconds",
            "Run time (started → finished) of the completed and failed jobs of the recent "
            "window, quantiles per job type.",
            labels=["job_type", "quantile"],
        )
        finished = Job.objects.filter(
            status__in=(JobStatus.COMPLETED, JobStatus.FAILED),
            finished_at__gte=now - window,
            started_at__isnull=False,
        ).order_by()
        for job_type, values in self.quantiles(finished).items():
            for q, value in zip(QUANTILES, values, strict=True):
                family.add_metric([job_type, str(q)], value)
        yield family

    def quantiles(self, finished: Any) -> dict[str, list[float]]:
        if connection.vendor == "postgresql":
            seconds = Extract(
                ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()),
                "epoch",
            )
            rows = finished.values_list("job_type").annotate(q=Percentiles(seconds))
            return {job_type: [float(v) for v in values] for job_type, values in rows}
        samples: dict[str, list[float]] = {}
        newest = finished.order_by("-finished_at").values_list(
            "job_type", "started_at", "finished_at"
        )[:SQLITE_SAMPLE]
        for job_type, started, ended in newest:
            if started is not None and ended is not None:
                samples.setdefault(job_type, []).append((ended - started).total_seconds())
        return {t: [_percentile(v, q) for q in QUANTILES] for t, v in samples.items()}

    def schedules(self, now: datetime) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "jobdeck_schedule_lag_seconds",
            "How late each enabled schedule's next occurrence is (0: not yet due).",
            labels=["schedule"],
        )
        rows = Schedule.objects.filter(enabled=True, next_run_at__isnull=False).values_list(
            "name", "next_run_at"
        )
        for name, next_run_at in rows:
            if next_run_at is not None:  # excluded by the filter; the column is nullable
                lag.add_metric([name], max(0.0, _seconds(now - next_run_at)))
        yield lag

    def clusters(self, now: datetime) -> Iterator[Metric]:
        """Per cluster: the newest heartbeat of a running job in the queues it serves
        and, for the default cluster, its last run of the periodic tick."""
        next_tick, interval = selectors.tick_next_run()
        last_tick = next_tick - interval if next_tick is not None and next_tick > now else None
        beats = dict(
            Job.objects.filter(status=JobStatus.RUNNING)
            .order_by()
            .values_list("queue")
            .annotate(last=Max("heartbeat_at"))
        )
        alive = GaugeMetricFamily(
            "jobdeck_cluster_up",
            "1 if the cluster was seen within JOBDECK_HEALTH_CLUSTER_SECONDS (the tick it "
            "runs, or a heartbeat of a job it runs), else 0.",
            labels=["cluster"],
        )
        age = GaugeMetricFamily(
            "jobdeck_cluster_heartbeat_age_seconds",
            "Seconds since the cluster was last seen (absent: never seen).",
            labels=["cluster"],
        )
        default = queues.default_cluster()
        names = sorted({default, *settings.JOBDECK_QUEUE_CLUSTERS.values()})
        up = 0
        for name in names:
            served = queues.served_queues(name)
            seen = [beats[q] for q in served if beats.get(q) is not None]
            if name == default and last_tick is not None:
                seen.append(last_tick)
            last = max(seen) if seen else None
            is_up = selectors.cluster_alive(now, None, last)
            up += int(is_up)
            alive.add_metric([name], int(is_up))
            if last is not None:
                age.add_metric([name], max(0.0, _seconds(now - last)))
        yield alive
        yield age
        total = GaugeMetricFamily("jobdeck_clusters_alive", "Clusters seen recently.")
        total.add_metric([], up)
        yield total


registry = CollectorRegistry(auto_describe=False)
registry.register(JobdeckCollector())
