"""Reads of jobs and logs that several front doors share."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Max, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from . import extensions, flow
from .models import WORKER_PRUNE_AFTER, Job, JobDependency, JobLog, JobStatus, WorkerProcess


def _log_lines(job_id: int, level: int | None, search: str | None) -> QuerySet[JobLog]:
    lines = JobLog.objects.filter(job_id=job_id)
    if level:
        lines = lines.filter(level__gte=level)
    if search:
        # Within one job's lines only (the (job, id) index bounds the scan).
        lines = lines.filter(message__icontains=search)
    return lines


def log_tail(
    job_id: int, n: int, *, level: int | None = None, search: str | None = None
) -> list[JobLog]:
    """The last `n` lines (at `level` or above, containing `search`), oldest first;
    reads only those rows (index on job, id)."""
    if n <= 0:
        return []
    # Their ids first, in a subquery of its own: an index-only scan of (job, id). Asked
    # for whole rows, the planner walks the primary key backwards whenever the job holds
    # a large share of the table, through every newer line of the other jobs (150 ms at
    # 10,000,000 jobs, docs/benchmarks.md "Issue 21").
    newest = _log_lines(job_id, level, search).order_by("-id").values("id")[:n]
    return list(JobLog.objects.filter(id__in=newest).order_by("id"))


def log_after(
    job_id: int,
    cursor: int,
    limit: int = 1000,
    *,
    level: int | None = None,
    search: str | None = None,
) -> list[JobLog]:
    """Lines with id > `cursor`, oldest first, at most `limit`."""
    return list(_log_lines(job_id, level, search).filter(id__gt=cursor).order_by("id")[:limit])


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
    reasons: dict[int, str] = parent_reasons([j for j in pending if j.waiting_on])
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


def parent_reasons(waiting: Sequence[Job]) -> dict[int, str]:
    """`{job id: "waiting for parents #12 (running), #13 (pending)"}` for jobs that wait
    for parents (waiting_on > 0): one query."""
    if not waiting:
        return {}
    edges = (
        JobDependency.objects.filter(child_id__in=[j.pk for j in waiting], settled=False)
        .order_by("child_id", "parent_id")
        .values_list("child_id", "parent_id", "parent__status")
    )
    parents: dict[int, list[str]] = {}
    for child, parent, status in edges:
        parents.setdefault(child, []).append(f"#{parent} ({status})")
    return {
        child: f"waiting for parent{'s' if len(names) > 1 else ''} {', '.join(names)}"
        for child, names in parents.items()
    }


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
        older = [
            a for a in line if a.status == JobStatus.PENDING and not a.waiting_on and a.pk < job.pk
        ]
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


# --- clusters and their workers (the workers page) ----------------------------------------


def worker_overview(user, now: datetime | None = None) -> list[dict]:
    """Each cluster (host, cluster name, pid) with its workers, busy or idle.

    Three queries whatever the number of workers: the worker rows seen in the last
    hour, the running jobs (bounded by the number of workers), and which of those
    `user` may see (others' jobs show as "a job", without a link). A running job
    whose worker never announced itself (an older cluster) is listed under its host.
    """
    now = now or timezone.now()
    alive_after = now - timedelta(seconds=settings.JOBDECK_STALE_SECONDS)
    rows = list(WorkerProcess.objects.filter(seen_at__gte=now - WORKER_PRUNE_AFTER))
    running: list[dict[str, Any]] = [
        dict(row)
        for row in Job.objects.filter(status=JobStatus.RUNNING)
        .order_by("pk")
        .values(
            "pk",
            "job_type",
            "worker",
            "started_at",
            "heartbeat_at",
            "progress_done",
            "progress_total",
        )
    ]
    visible = set(
        Job.objects.visible_to(user)
        .filter(pk__in=[j["pk"] for j in running])
        .values_list("pk", flat=True)
    )
    jobs_of: dict[str, list[dict]] = {}
    for job in running:
        job["visible"] = job["pk"] in visible
        jobs_of.setdefault(str(job["worker"]), []).append(job)
    clusters: dict[tuple, dict] = {}
    for row in rows:
        key = (row.host, row.cluster, row.cluster_pid)
        cluster = clusters.setdefault(
            key,
            {
                "host": row.host,
                "name": row.cluster,
                "pid": row.cluster_pid,
                "queues": row.queues,
                "started_at": row.cluster_started_at,
                "workers": [],
            },
        )
        cluster["started_at"] = min(cluster["started_at"], row.cluster_started_at)
        alive = row.seen_at >= alive_after
        cluster["workers"].append(
            {
                "name": row.name,
                "pid": row.pid,
                "started_at": row.started_at,
                "seen_at": row.seen_at,
                "rss_bytes": row.rss_bytes,
                "alive": alive,
                "jobs": jobs_of.pop(row.name, []) if alive else [],
            }
        )
    for worker_name_, jobs in sorted(jobs_of.items()):
        host = worker_name_.rsplit(":", 1)[0] if worker_name_ else "unknown"
        cluster = clusters.setdefault(
            (host, "", None),
            {
                "host": host,
                "name": "",
                "pid": None,
                "queues": [],
                "started_at": None,
                "workers": [],
            },
        )
        pid = worker_name_.rsplit(":", 1)[-1]
        cluster["workers"].append(
            {
                "name": worker_name_,
                "pid": int(pid) if pid.isdigit() else None,
                "started_at": None,
                "seen_at": max(
                    (j["heartbeat_at"] for j in jobs if j["heartbeat_at"]), default=None
                ),
                "rss_bytes": None,
                "alive": True,
                "unregistered": True,
                "jobs": jobs,
            }
        )
    out = []
    for cluster in clusters.values():
        workers = cluster["workers"]
        live = [w for w in workers if w["alive"]]
        cluster["busy"] = sum(1 for w in live if w["jobs"])
        cluster["idle"] = len(live) - cluster["busy"]
        cluster["gone"] = len(workers) - len(live)
        cluster["alive"] = bool(live)
        seen = [w["seen_at"] for w in workers if w["seen_at"] is not None]
        cluster["last_heartbeat"] = max(seen) if seen else None
        cluster["rss_bytes"] = sum(w["rss_bytes"] or 0 for w in live) or None
        cluster["uptime"] = (now - cluster["started_at"]) if cluster["started_at"] else None
        out.append(cluster)
    out.sort(key=lambda c: (not c["alive"], c["host"], c["name"], c["pid"] or 0))
    return out


# --- a job's tasks, a page at a time (the job page) ----------------------------------------

TASKS_PER_PAGE = 20


def task_page(job: Job, page: int | None = None, per_page: int = TASKS_PER_PAGE) -> dict:
    """One page of a job's tasks and the count per status: three small reads on the
    (job, position) index, however many tasks the job has. With `page` None, the page
    of the first task not yet succeeded (the one running or next), so a watched job's
    page follows its progress."""
    from django.db.models import Count

    from .models import Task, TaskStatus

    tasks = Task.objects.filter(job_id=job.pk)
    counts = dict(tasks.order_by().values_list("status").annotate(n=Count("pk")))
    total = sum(counts.values())
    pages = max(1, -(-total // per_page))
    if page is None:
        current = (
            tasks.exclude(status=TaskStatus.SUCCEEDED)
            .order_by("position")
            .values_list("position", flat=True)
            .first()
        )
        page = 1 if current is None else (current - 1) // per_page + 1
    page = min(max(1, page), pages)
    rows = list(
        tasks.filter(position__gt=(page - 1) * per_page, position__lte=page * per_page)
        .order_by("position")
        .defer("result")
    )
    return {
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "total": total,
        "counts": {s.value: counts.get(s.value, 0) for s in TaskStatus if counts.get(s.value)},
        "rows": rows,
    }
