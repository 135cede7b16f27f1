"""Goals 4 to 6 on PostgreSQL: list/detail/admin reads, logs, cleanup, at 1,000,000 jobs
(`big`) and at 10,000,000 (`big10m`, issue 21).

The seed is a function of the job id: job g is created at `anchor + g ms` (plus a
two-hour gap after the `clean` oldest, the ones cleanup deletes), so a kept database
(`--reuse-db`) is topped up chunk by chunk to the same rows on the next run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils import timezone

from jobs import selectors, services
from jobs.models import Job, JobLog, JobStatus, Task
from jobs.worker.context import JobContext

from .common import Ctx, drain_figures, insert_noop_jobs, wait_drained
from .harness import median, start_clusters, timed_ms
from .jobtypes import NOOP

OWNERS = 10
# Jobs are seeded this many at a time, each chunk (jobs, tasks, log lines) in one
# transaction: a chunk is there whole or not at all.
CHUNK = 1_000_000
# The paced cleanup's pause between batches of 2,000 jobs (each takes about 90 ms here
# while the cluster drains): cleanup then holds the database about half the time.
CLEANUP_PAUSE = 0.1
SEEDED = ("jobs_job", "jobs_task", "jobs_joblog")

# Job g: created at anchor + g ms, two hours later still past the `clean` oldest.
JOBS_SQL = """
INSERT INTO jobs_job (id, job_type, status, config, error, queue, priority, attempts,
    max_attempts, created_at, queued_at, started_at, finished_at, worker, attempted_by,
    progress_done, progress_total, lock_limit, created_by_id)
SELECT g, %(job_type)s,
       CASE WHEN g %% 20 = 0 THEN 'failed' WHEN g %% 50 = 1 THEN 'cancelled'
            ELSE 'completed' END,
       '{}'::jsonb, '', 'default', 0, 1, 1, t, t, t, t + interval '5 ms', 'bench:1',
       jsonb_build_array(jsonb_build_array('bench:1', t)), 1, 1, 1,
       (%(owners)s)[1 + g %% %(n_owners)s]
FROM (
    SELECT g, %(anchor)s::timestamptz + g * interval '1 ms'
              + CASE WHEN g > %(clean)s THEN interval '2 hours' ELSE interval '0' END AS t
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
) AS s
"""

TASKS_SQL = """
INSERT INTO jobs_task (job_id, position, name, status, error, attempts, progress_done,
    progress_total, started_at, finished_at)
SELECT id, 1, job_type, 'succeeded', '', 1, 0, 0, started_at, finished_at
FROM jobs_job WHERE id BETWEEN %(first)s AND %(last)s
"""

LOGS_SQL = """
INSERT INTO jobs_joblog (job_id, created_at, level, message)
SELECT id, finished_at, 20, 'noop' FROM jobs_job WHERE id BETWEEN %(first)s AND %(last)s
"""

LONG_LOG_SQL = """
INSERT INTO jobs_joblog (job_id, created_at, level, message)
SELECT %(job)s, %(at)s::timestamptz, 20, 'line ' || g FROM generate_series(1, %(n)s) g
"""

# What the seed is, kept in the bench database itself (a kept database is reused only
# for the same seed).
SEED_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_seed (
    jobs bigint NOT NULL, clean bigint NOT NULL, anchor timestamptz NOT NULL)
"""

# The indexes a bulk load drops and builds again: every index of the seeded tables
# that no constraint owns (primary keys, unique and foreign keys stay), as created by
# the migrations, definition for definition.
INDEXES_SQL = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename = ANY(%(tables)s)
  AND NOT EXISTS (
      SELECT 1 FROM pg_constraint c
      WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)
ORDER BY i.indexname
"""


@dataclass
class Seed:
    """The seeded database: `jobs` finished jobs, the `clean` oldest before the cutoff."""

    owners: list[Any]
    admin: Any
    big: Job
    jobs: int
    clean: int
    anchor: datetime

    @property
    def cutoff(self) -> datetime:
        """Halfway through the gap between the `clean` oldest jobs and the rest."""
        return self.anchor + timedelta(milliseconds=self.clean, hours=1)


def _users() -> tuple[list[Any], Any]:
    User = get_user_model()
    owners = []
    for i in range(OWNERS):
        owner, created = User.objects.get_or_create(username=f"bench-owner-{i}")
        if created:
            owner.set_password("bench-pass-123")
            owner.save(update_fields=["password"])
        owners.append(owner)
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin", password="bench-pass-123"
    )
    return owners, admin


def _seed_state(cur: Any, jobs: int, clean: int) -> tuple[datetime, bool]:
    """The seed's anchor (a new one for an empty or different database); whether the
    database held this seed already."""
    cur.execute(SEED_TABLE_SQL)
    cur.execute("SELECT jobs, clean, anchor FROM bench_seed")
    row = cur.fetchone()
    if row and (row[0], row[1]) == (jobs, clean):
        return row[2], True
    if row:  # another seed: start over
        cur.execute("TRUNCATE jobs_job CASCADE")
        cur.execute("DELETE FROM bench_seed")
    anchor = timezone.now() - timedelta(days=1, hours=1, milliseconds=clean)
    cur.execute(
        "INSERT INTO bench_seed (jobs, clean, anchor) VALUES (%s, %s, %s)", [jobs, clean, anchor]
    )
    return anchor, False


def _fill(jobs: int, clean: int, anchor: datetime, owners: list[int], chunk: int) -> int:
    """Seed every chunk of job ids 1..jobs that is not whole (one task and one log line
    per job); returns the number of jobs inserted."""
    inserted = 0
    with connection.cursor() as cur:
        for first in range(1, jobs + 1, chunk):
            last = min(first + chunk - 1, jobs)
            cur.execute("SELECT count(*) FROM jobs_job WHERE id BETWEEN %s AND %s", [first, last])
            have = cur.fetchone()[0]
            if have == last - first + 1:
                continue
            with transaction.atomic():
                if have:  # a chunk cleaned in part: seed it again whole
                    cur.execute("DELETE FROM jobs_job WHERE id BETWEEN %s AND %s", [first, last])
                params = {
                    "job_type": NOOP,
                    "owners": owners,
                    "n_owners": len(owners),
                    "anchor": anchor,
                    "clean": clean,
                    "first": first,
                    "last": last,
                }
                cur.execute(JOBS_SQL, params)
                cur.execute(TASKS_SQL, params)
                cur.execute(LOGS_SQL, params)
            inserted += last - first + 1
        # The ids were given: the next job the application creates comes after them.
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('jobs_job', 'id'), "
            "greatest((SELECT max(id) FROM jobs_job), %s))",
            [jobs],
        )
    return inserted


def _big_job(seed_jobs: int, long_n: int, anchor: datetime) -> tuple[Job, int]:
    """The job in the middle (owner 0's, kept by cleanup at 10,000,000): 100 tasks and a
    `long_n`-line log. Returns it and the number of rows it needed."""
    big = Job.objects.get(pk=seed_jobs // 2)
    added = 0
    have = set(big.tasks.values_list("position", flat=True))
    missing = [p for p in range(2, 101) if p not in have]
    Task.objects.bulk_create(
        [Task(job=big, position=p, name=f"step {p}", status="succeeded") for p in missing]
    )
    added += len(missing)
    lines = JobLog.objects.filter(job_id=big.pk).count()
    if lines != long_n + 1:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("DELETE FROM jobs_joblog WHERE job_id = %s AND message <> 'noop'", [big.pk])
            cur.execute(LONG_LOG_SQL, {"job": big.pk, "n": long_n, "at": anchor})
        added += long_n
    return big, added


def _seed(ctx: Ctx, jobs: int, *, clean: int | None = None, chunk: int = CHUNK) -> Seed:
    """`jobs` finished jobs (one task and one log line each) over OWNERS users, the
    `clean` oldest (default: all) older than the cleanup's cutoff; one job with 100
    tasks and a `jobs`-line log. What a kept database already holds is reused: only
    missing chunks are seeded again, and an earlier run's own jobs are deleted.

    Into an empty database the rows go without the indexes that no constraint owns
    and without foreign-key triggers (`session_replication_role = replica`, as
    pg_restore --disable-triggers: the rows are consistent by construction); the
    indexes are then built from their own definitions. VACUUM ANALYZE after any change.
    """
    clean = jobs if clean is None else clean
    owners, admin = _users()
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        anchor, same_seed = _seed_state(cur, jobs, clean)
        cur.execute("DELETE FROM jobs_job WHERE id > %s", [jobs])  # an earlier run's jobs
        leftovers = cur.rowcount
        cur.execute("SELECT NOT EXISTS (SELECT 1 FROM jobs_job)")
        empty = cur.fetchone()[0]
        indexes: list[tuple[str, str]] = []
        bulk = False
        if empty:
            cur.execute(INDEXES_SQL, {"tables": list(SEEDED)})
            indexes = cur.fetchall()
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            try:
                cur.execute("SET session_replication_role = replica")
                bulk = True
            except DatabaseError:  # not a superuser: the foreign keys are checked row by row
                ctx.note("seed: foreign-key checks kept (session_replication_role refused)")
    try:
        inserted = _fill(jobs, clean, anchor, [o.pk for o in owners], chunk)
        big, extra = _big_job(jobs, jobs, anchor)
    finally:
        with connection.cursor() as cur:
            if bulk:
                cur.execute("RESET session_replication_role")
            if indexes:
                cur.execute("SET maintenance_work_mem = '512MB'")
                for _, definition in indexes:
                    cur.execute(definition)
                cur.execute("RESET maintenance_work_mem")
    loaded = time.perf_counter() - t0
    if inserted or extra or leftovers:
        with connection.cursor() as cur:
            cur.execute(f"VACUUM (ANALYZE) {', '.join(SEEDED)}")
    settled = time.perf_counter() - t0
    if same_seed and not inserted:
        how = "reused as it was"
    elif same_seed:
        how = f"reused, {inserted:,} jobs seeded again"
    else:
        how = "seeded"
    ctx.note(
        f"{jobs:,} finished jobs (1 task + 1 log line each, the {clean:,} oldest past the "
        f"cleanup's cutoff) {how}: INSERT … SELECT generate_series in chunks of "
        f"{chunk:,}{', indexes built after' if indexes else ''}, {loaded:.0f} s; "
        f"with VACUUM ANALYZE {settled:.0f} s; {leftovers:,} jobs of an earlier run deleted"
    )
    return Seed(owners=owners, admin=admin, big=big, jobs=jobs, clean=clean, anchor=anchor)


def _exists(path: str) -> bool:
    try:
        resolve(path.split("?")[0])
    except Resolver404:
        return False
    return True


def _get_ms(client: Client, path: str, repeat: int) -> tuple[float, int, int]:
    """p50 ms of GET path, its status code and its query count."""
    queries = 0

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    # A wrapper, not CaptureQueriesContext: request_started resets queries_log.
    with connection.execute_wrapper(count):
        response = client.get(path)
    times = timed_ms(lambda: client.get(path), repeat)
    return median(times), response.status_code, queries


def _reads(ctx: Ctx, seed: Seed) -> dict[str, float]:
    figures: dict[str, float] = {}
    repeat = 10 if ctx.quick else 30
    admin, owner, big = seed.admin, seed.owners[0], seed.big
    staff = Client()
    staff.force_login(admin)
    mine = Client()
    mine.force_login(owner)
    if _exists("/api/jobs/"):
        checks = [
            ("API list page_size=50 (staff, all jobs)", staff, "/api/jobs/?page_size=50"),
            ("API list page_size=50 status=failed", staff, "/api/jobs/?page_size=50&status=failed"),
            ("API list page_size=50 (owner: own jobs)", mine, "/api/jobs/?page_size=50"),
            (
                "API list page_size=50 created_by=<owner> (staff)",
                staff,
                f"/api/jobs/?page_size=50&created_by={owner.pk}",
            ),
            ("API job detail with 100 tasks", staff, f"/api/jobs/{big.pk}/"),
        ]
        counts = {}
        for label, client, path in checks:
            ms, status, queries = _get_ms(client, path, repeat)
            if status != 200:
                ctx.note(f"{path} answered {status}: not measured")
                continue
            figures[f"{label} p50 ms"] = ms
            figures[f"{label} queries"] = queries
            counts[label] = queries
        _, _, q10 = _get_ms(staff, "/api/jobs/?page_size=10", 1)
        ctx.note(
            f"API list query count: page_size=10 → {q10}, page_size=50 → "
            f"{counts.get('API list page_size=50 (staff, all jobs)')}"
        )
    else:
        ctx.note("/api/jobs/ does not exist yet (API being built): list/detail not measured.")
    if _exists("/admin/jobs/job/"):
        ms, status, queries = _get_ms(staff, "/admin/jobs/job/", repeat)
        if status == 200:
            figures["admin job changelist p50 ms"] = ms
            figures["admin job changelist queries"] = queries
        else:
            ctx.note(f"/admin/jobs/job/ answered {status}: not measured")
    else:
        ctx.note("/admin/jobs/job/ does not exist yet (admin being built): not measured.")
    return figures


def _tail_reads(ctx: Ctx, seed: Seed, long_n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    big = seed.big
    ids = JobLog.objects.filter(job_id=big.pk).order_by("id").values_list("id", flat=True)
    cursor = ids[long_n // 2]
    repeat = 30 if ctx.quick else 100
    figures[f"log tail=100 on a {long_n:,}-line log p50 ms"] = median(
        timed_ms(lambda: selectors.log_tail(big.pk, 100), repeat)
    )
    figures[f"log after=cursor (1,000 lines) on a {long_n:,}-line log p50 ms"] = median(
        timed_ms(lambda: selectors.log_after(big.pk, cursor), repeat)
    )
    path = f"/api/jobs/{big.pk}/logs/?tail=100"
    if _exists(path):
        client = Client()
        client.force_login(seed.admin)
        ms, status, _ = _get_ms(client, path, repeat)
        if status == 200:
            figures[f"API logs tail=100 on a {long_n:,}-line log p50 ms"] = ms
    return figures


def _logs(ctx: Ctx, seed: Seed, long_n: int) -> dict[str, float]:
    # The long log's tail first, while its lines are the newest of the table (as the
    # 1,000,000-job figures always were), then again after the appends below.
    figures = _tail_reads(ctx, seed, long_n)
    append_n = 5_000 if ctx.quick else min(100_000, 100 * ctx.n)
    if append_n < 100_000:
        ctx.note(f"log append measured over {append_n:,} lines (100,000 from --n 1000 up)")
    job = services.job_create(job_type=NOOP)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    # What a handler calls: ctx.log() one line at a time, batched by the job's log
    # buffer (jobs/worker/logbuffer.py) and written by multi-row INSERTs.
    logging_ctx = JobContext(job)
    t0 = time.perf_counter()
    for i in range(append_n):
        logging_ctx.log(f"line {i}")
    logging_ctx.logs.flush()
    figures["log append lines/s (ctx.log in a job, one call per line)"] = append_n / (
        time.perf_counter() - t0
    )
    # One INSERT and commit per line, for comparison (services.job_log, outside a job).
    single_n = min(append_n, 5_000)
    t0 = time.perf_counter()
    for i in range(single_n):
        services.job_log(job_id=job.pk, message=f"line {i}")
    figures["log append lines/s (services.job_log, a commit per line)"] = single_n / (
        time.perf_counter() - t0
    )
    t0 = time.perf_counter()
    JobLog.objects.bulk_create(
        [JobLog(job_id=job.pk, message=f"line {i}") for i in range(append_n)], batch_size=2000
    )
    figures["log append lines/s (bulk_create, batches of 2,000)"] = append_n / (
        time.perf_counter() - t0
    )
    newer = 2 * append_n + single_n
    big = seed.big
    figures[
        f"log tail=100 on a {long_n:,}-line log, {newer:,} newer lines of another job p50 ms"
    ] = median(timed_ms(lambda: selectors.log_tail(big.pk, 100), 30 if ctx.quick else 100))
    return figures


def _drain_rate(n: int) -> float:
    ids = insert_noop_jobs(n)
    wall = wait_drained(ids, 600)
    return drain_figures(ids, wall)["drain jobs/s (wall clock)"]


def _cleanup(ctx: Ctx, seed: Seed, pause: float = 0.0) -> dict[str, float]:
    """Cleanup of the seed's `clean` oldest jobs while a cluster drains batches of new
    jobs; `pause` seconds between cleanup batches (JOBDECK_CLEANUP_PAUSE_SECONDS)."""
    jobs = seed.clean
    batch = 500 if ctx.quick else 2000
    clusters = start_clusters(1)
    try:
        _drain_rate(50)
        normal = [_drain_rate(batch) for _ in range(2)]
        done = threading.Event()
        result: dict[str, Any] = {}

        def clean() -> None:
            t0 = time.perf_counter()
            try:
                older_than = timezone.now() - seed.cutoff
                result.update(services.job_cleanup(older_than=older_than, pause=pause))
            finally:
                result["seconds"] = time.perf_counter() - t0
                connection.close()
                done.set()

        thread = threading.Thread(target=clean)
        thread.start()
        during: list[float] = []
        while not done.is_set():
            during.append(_drain_rate(batch))
        thread.join()
    finally:
        for c in clusters:
            c.stop()
    paced = f", pause {pause:g} s" if pause else ""
    ctx.note(
        f"cleanup{paced} deleted {result.get('jobs')} jobs, {result.get('tasks')} tasks, "
        f"{result.get('logs')} log lines; {len(during)} drain batches of {batch} ran meanwhile"
    )
    rate_normal, rate_during = median(normal), median(during)
    return {
        f"cleanup of {jobs:,} finished jobs + tasks + logs{paced} (s)": result["seconds"],
        f"drain jobs/s, normal (wall, batches){paced}": rate_normal,
        f"drain jobs/s, during cleanup (wall, batches){paced}": rate_during,
        f"drain during cleanup / normal (%){paced}": 100 * rate_during / rate_normal,
    }


def bench_bigdata(ctx: Ctx) -> dict[str, float]:
    """1,000,000 jobs (`big`): reads, logs, cleanup of all of them, then paced."""
    if connection.vendor != "postgresql":
        ctx.note("big-data benchmarks run on PostgreSQL only")
        return {}
    jobs = 20_000 if ctx.quick else 1_000_000
    seed = _seed(ctx, jobs)
    figures = ctx.partial  # kept by the runner if a later step fails
    figures.update(_reads(ctx, seed))
    figures.update(_logs(ctx, seed, jobs))
    figures.update(_cleanup(ctx, seed))
    # Again, paced: the trade between cleanup time and the workers' share of the machine.
    # Into the tables as the first cleanup left them (dead rows and all, only ANALYZEd).
    _fill(jobs, seed.clean, seed.anchor, [o.pk for o in seed.owners], CHUNK)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    figures.update(_cleanup(ctx, seed, pause=CLEANUP_PAUSE))
    return figures


def bench_bigdata_10m(ctx: Ctx) -> dict[str, float]:
    """10,000,000 jobs (`big10m`, issue 21): the same reads and logs, cleanup of the
    1,000,000 oldest. Seeded once with `--reuse-db`: the next run tops it up."""
    if connection.vendor != "postgresql":
        ctx.note("big-data benchmarks run on PostgreSQL only")
        return {}
    jobs, clean, chunk = (200_000, 20_000, 50_000) if ctx.quick else (10_000_000, 1_000_000, CHUNK)
    seed = _seed(ctx, jobs, clean=clean, chunk=chunk)
    figures = ctx.partial
    figures.update(_reads(ctx, seed))
    figures.update(_logs(ctx, seed, jobs))
    figures.update(_cleanup(ctx, seed))
    return figures
