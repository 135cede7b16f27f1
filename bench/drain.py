"""Goal 1: drain rate of single-task no-op jobs, against raw django-q2 in the same run."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .bare import BARE_KEY, bench_bare
from .common import (
    Ctx,
    bulk_noop_jobs,
    check_ran_once,
    drain_figures,
    insert_noop_jobs,
    wait_drained,
)
from .cpu import Meter, backend_pids
from .harness import ROOT, Cluster, start_clusters, wait_until


def _meter(clusters: list[Cluster]) -> tuple[Meter, dict[str, list[int]]]:
    """A CPU meter, started now, of the clusters' worker processes, their other
    processes (qcluster, sentinel, pusher, monitor) and the database's backends; and
    those two groups of pids."""
    from jobs.models import WorkerProcess

    pids = [pid for c in clusters for pid in (c.proc.pid, *c.worker_pids())]
    workers = set(WorkerProcess.objects.filter(pid__in=pids).values_list("pid", flat=True))
    groups = {
        "workers": [p for p in pids if p in workers],
        "others": [p for p in pids if p not in workers],
    }
    return Meter(**groups, postgres=backend_pids()).start(), groups


def _cpu_figures(
    metered: tuple[Meter, dict[str, list[int]]], n: int, prefix: str
) -> dict[str, float]:
    """CPU ms per job of each group, and of PostgreSQL's backends by whose they are:
    the workers' (with their heartbeat threads) or the pushers', monitors' and
    sentinels'."""
    meter, groups = metered
    cpu = meter.stop(
        postgres=backend_pids(),
        postgres_workers=backend_pids(groups["workers"]),
        postgres_others=backend_pids(groups["others"]),
    )
    names = {
        "workers": "worker processes",
        "others": "the clusters' other processes",
        "postgres": "PostgreSQL backends",
        "postgres_workers": "… of them the workers' connections",
        "postgres_others": "… of them the other processes' connections",
    }
    return {f"{prefix}CPU ms per job: {label}": cpu[k] * 1000 / n for k, label in names.items()}


def _drain(ctx: Ctx, prefix: str, **env: str) -> dict[str, float]:
    clusters = start_clusters(1, **env)
    try:
        warm = insert_noop_jobs(20)
        wait_drained(warm, 60)
        meter = _meter(clusters)
        ids = insert_noop_jobs(ctx.n, wakeups=2)
        wall = wait_drained(ids, max(120, ctx.n / 20))
        return {**drain_figures(ids, wall, prefix=prefix), **_cpu_figures(meter, ctx.n, prefix)}
    finally:
        for c in clusters:
            c.stop()


def bench_drain(ctx: Ctx) -> dict[str, float]:
    """One cluster, 2 workers: bulk-create N jobs, a few wake-ups, workers drain the table;
    and its ratio to a bare queue (bench.bare) drained just before it, so that load
    from elsewhere on the machine moves both alike."""
    bare = bench_bare(ctx)[BARE_KEY]
    figures = _drain(ctx, "jobdeck ")
    key = "jobdeck drain jobs/s (DB first claim → last finish)"
    figures["jobdeck drain / bare queue just before (per run)"] = figures[key] / bare
    return figures


def bench_drain_batched(ctx: Ctx) -> dict[str, float]:
    """As bench_drain, each worker running jobs in 32 threads (JOBDECK_WORKER_THREADS;
    JOBDECK_BENCH_BATCH_THREADS changes it), so its dispatcher settles and claims them in
    batches (jobs/worker/threads.py): up to 32 jobs per statement and per commit while
    the backlog is deep."""
    threads = os.environ.get("JOBDECK_BENCH_BATCH_THREADS", "32")
    ctx.note(
        f"'batched' figures: the cluster's 2 workers run with JOBDECK_WORKER_THREADS={threads} "
        "(each worker's dispatcher claims as many jobs per statement as threads are free, "
        "at most JOBDECK_CLAIM_BATCH, 32 by default)."
    )
    bare = bench_bare(ctx)[BARE_KEY]
    figures = _drain(ctx, "jobdeck batched ", JOBDECK_WORKER_THREADS=threads)
    key = "jobdeck batched drain jobs/s (DB first claim → last finish)"
    figures["jobdeck batched drain / bare queue just before (per run)"] = figures[key] / bare
    return figures


def bench_drain_nosync(ctx: Ctx) -> dict[str, float]:
    """As bench_drain, the cluster's PostgreSQL sessions with synchronous_commit=off."""
    ctx.note(
        "'synchronous_commit=off' figures: the cluster runs with "
        "PGOPTIONS='-c synchronous_commit=off' (docs/operations.md explains the trade-off)."
    )
    return _drain(ctx, "jobdeck synchronous_commit=off ", PGOPTIONS="-c synchronous_commit=off")


class _Collect:
    """A stand-in broker for async_task: keeps the signed packages for one bulk INSERT."""

    def __init__(self, list_key: str) -> None:
        self.list_key = list_key
        self.packs: list[str] = []

    def enqueue(self, pack: str) -> None:
        self.packs.append(pack)


def _q2_enqueue(n: int) -> str:
    """N raw django-q2 no-op messages (save=False, as Jobdeck sends) in one INSERT."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ
    from django_q.tasks import async_task

    key = get_broker().list_key
    collect = _Collect(key)
    for _ in range(n):
        async_task("bench.jobtypes.noop", broker=collect, save=False)
    lock = timezone.now() - timedelta(seconds=1)
    with transaction.atomic():
        OrmQ.objects.bulk_create(
            [OrmQ(key=key, payload=p, lock=lock) for p in collect.packs], batch_size=2000
        )
    return key


def bench_drain_q2(ctx: Ctx) -> dict[str, float]:
    """Raw django-q2, ORM broker, same database and settings: one message per no-op."""
    from django_q.models import OrmQ

    ctx.note(
        "raw django-q2 messages are sent with save=False (as Jobdeck sends its wake-ups); "
        "a message is done when the monitor has acknowledged (deleted) it."
    )
    clusters = start_clusters(1)
    try:
        key = _q2_enqueue(20)
        wait_until(lambda: not OrmQ.objects.filter(key=key).exists(), 60, 0.02, "warm-up")
        key = _q2_enqueue(ctx.n)
        t0 = time.perf_counter()
        wait_until(
            lambda: not OrmQ.objects.filter(key=key).exists(),
            max(120, ctx.n / 10),
            0.02,
            "the django-q2 queue to empty",
        )
        return {"raw django-q2 drain tasks/s (wall clock)": ctx.n / (time.perf_counter() - t0)}
    finally:
        for c in clusters:
            c.stop()


def _bulk_created_drain(ctx: Ctx, clusters: int) -> dict[str, float]:
    """`clusters` clusters of 2 workers drain N jobs made by services.job_bulk_create
    (its own wake-ups, whatever rule it follows): rates, workers used, and how long the
    last of them waited for its first job."""
    started = start_clusters(clusters)
    try:
        warm = bulk_noop_jobs(20)
        wait_drained(warm, 60)
        meter = _meter(started)
        sent = _orm_messages_sent()
        ids = bulk_noop_jobs(ctx.n)
        wall = wait_drained(ids, max(120, ctx.n / 20))
        label = f"{clusters} cluster{'s' * (clusters > 1)}"
        figures = drain_figures(ids, wall, prefix=f"{label} ")
        figures.update(_cpu_figures(meter, ctx.n, f"{label} "))
        if sent is not None:
            messages = (_orm_messages_sent() or 0) - sent
            figures[f"{label}: broker messages sent meanwhile (wake-ups, schedules)"] = messages
        check = check_ran_once(ids)
        figures[f"{label}: worker processes that ran jobs"] = check["workers"]
        figures[f"{label}: seconds until the last of them ran its first job"] = check[
            "last_worker_joined_after"
        ]
        return figures
    finally:
        for c in started:
            c.stop()


def _orm_messages_sent() -> int | None:
    """Messages ever written to the ORM broker's table (its id sequence; PostgreSQL
    only): the difference counts every wake-up, even those acknowledged since."""
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql" or "orm" not in settings.Q_CLUSTER:
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT pg_sequence_last_value('django_q_ormq_id_seq'::regclass)")
        return int(cur.fetchone()[0] or 0)


def bench_scaleout(ctx: Ctx) -> dict[str, float]:
    """One cluster, then two (2 workers each) on one database, each draining N
    bulk-created jobs: the workers that ran jobs, and the two-cluster drain's ratio to
    the one-cluster drain of the same run. Every job must run exactly once."""
    ctx.note(
        "scaleout: N jobs made by services.job_bulk_create (the wake-ups it sends), "
        "drained by 1 cluster, then by 2 clusters of 2 workers on the same database."
    )
    one = _bulk_created_drain(ctx, 1)
    two = _bulk_created_drain(ctx, 2)
    key = "drain jobs/s (DB first claim → last finish)"
    return {
        **one,
        **two,
        "2 clusters: every job ran exactly once (1 = yes)": 1.0,
        "2 clusters / 1 cluster drain (DB first claim → last finish)": two[f"2 clusters {key}"]
        / one[f"1 cluster {key}"],
    }


def bench_drain_celery(ctx: Ctx) -> dict[str, float]:
    """Celery + Redis, 2 prefork worker processes: N no-op tasks queued, then drained."""
    python = os.environ.get("JOBDECK_BENCH_CELERY_PYTHON", "")
    if not os.access(python, os.X_OK):
        ctx.note(
            "Celery is not installed: its figure is skipped (`./jobdeck bench --with-celery` "
            "installs it in a virtualenv of its own)."
        )
        return {}
    import redis

    queue = f"jobdeck-bench-celery-{os.getpid()}"
    env = {**os.environ, "JOBDECK_BENCH_CELERY_QUEUE": queue}
    client = redis.Redis.from_url(env["REDIS_URL"])
    key, warm = f"{queue}:done", f"{queue}:warm"
    keys = [key, f"{key}:1", f"{key}:{ctx.n}", warm, f"{warm}:1", f"{warm}:20", queue]
    keys.append(f"_kombu.binding.{queue}")
    app_dir = ROOT / "bench"

    def enqueue(name: str, n: int) -> None:
        cmd = [python, "celery_app.py", "enqueue", name, str(n)]
        subprocess.run(cmd, cwd=app_dir, env=env, check=True, capture_output=True)

    client.delete(*keys)
    enqueue(warm, 20)
    enqueue(key, ctx.n)  # queued before the worker starts: it drains a full queue
    with tempfile.TemporaryFile() as log:
        worker = subprocess.Popen(
            [python, "-m", "celery", "-A", "celery_app", "worker", "-c", "2", "-P", "prefork",
             "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-l", "WARNING"],
            cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

        def drained() -> bool:
            if worker.poll() is not None:
                log.seek(0)
                tail = log.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"the Celery worker exited ({worker.returncode}): {tail}")
            return client.exists(f"{key}:{ctx.n}") == 1  # set after the last INCR

        try:
            wait_until(drained, max(120, ctx.n / 20), 0.02, "Celery to drain its queue")
            first, last = (float(client.get(f"{key}:{i}")) for i in (1, ctx.n))
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            client.delete(*keys)
    ctx.note(
        "Celery: 2 prefork workers, Redis broker, default prefetch and acks, results "
        "ignored; N tasks queued before the worker starts, rate = N / (first → last task)."
    )
    return {"Celery + Redis drain tasks/s (first task → last task)": ctx.n / (last - first)}
