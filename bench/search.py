"""Search and statistics on PostgreSQL with 1,000,000 jobs (issue 20).

`GET /api/jobs/?config.<key>=…`, `?tag=…` and `?log_contains=…` against the plain
list, each with a value that matches many jobs, few, and none (a rare or absent value
is what makes an index matter: without one the newest-first page walks the whole
table), as a superuser and as an owner; then `/api/stats/…` over each window. p50 of
in-process requests through Django's test client, and their query counts.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from .bigdata import _get_ms
from .common import Ctx
from .harness import median, timed_ms
from .jobtypes import NOOP

OWNERS = 10
# Finished no-op jobs over the last 3 days: config {"account_id": g % 1000, "region":
# eu|us}, every 10th tagged nightly, every 100,000th tagged rare; one log line each,
# every 100,000th saying "disk full".
JOBS_SQL = """
INSERT INTO jobs_job (job_type, status, config, error, queue, priority, attempts,
    max_attempts, created_at, queued_at, started_at, finished_at, worker, progress_done,
    progress_total, created_by_id, tags, attempted_by)
SELECT %(job_type)s,
       CASE WHEN g %% 20 = 0 THEN 'failed' ELSE 'completed' END,
       jsonb_build_object('account_id', g %% 1000,
                          'region', CASE WHEN g %% 2 = 0 THEN 'eu' ELSE 'us' END),
       '', CASE WHEN g %% 4 = 0 THEN 'reports' ELSE 'default' END, 0, 1, 1,
       now() - interval '3 days' + g * interval '200 ms',
       now() - interval '3 days' + g * interval '200 ms',
       now() - interval '3 days' + g * interval '200 ms',
       now() - interval '3 days' + g * interval '200 ms' + (g %% 997) * interval '1 ms',
       'bench:1', 1, 1,
       (%(owners)s)[1 + g %% %(n_owners)s],
       CASE WHEN g %% 100000 = 0 THEN '["nightly", "rare"]'::jsonb
            WHEN g %% 10 = 0 THEN '["nightly"]'::jsonb ELSE '[]'::jsonb END,
       '[]'::jsonb
FROM generate_series(1, %(n)s) AS g
"""
TAGS_SQL = """
INSERT INTO jobs_jobtag (job_id, tag)
SELECT id, t FROM jobs_job, jsonb_array_elements_text(tags) AS t WHERE tags <> '[]'::jsonb
"""
LOGS_SQL = """
INSERT INTO jobs_joblog (job_id, created_at, level, message)
SELECT id, finished_at, 20,
       CASE WHEN id %% 100000 = 7 THEN 'ERROR: disk full on /var' ELSE 'noop step ' || id END
FROM jobs_job
"""


def _seed(ctx: Ctx, n: int) -> dict[str, Any]:
    User = get_user_model()
    owners = [
        User.objects.create_user(f"search-owner-{i}", password="bench-pass-123")
        for i in range(OWNERS)
    ]
    admin = User.objects.create_superuser("search-admin", password="bench-pass-123")
    steps = []
    with connection.cursor() as cur:
        for label, sql, params in (
            (
                "jobs (with the config GIN index)",
                JOBS_SQL,
                {"job_type": NOOP, "owners": [o.pk for o in owners], "n_owners": OWNERS, "n": n},
            ),
            ("tags", TAGS_SQL, {}),
            ("log lines (with the trigram index)", LOGS_SQL, {}),
        ):
            t0 = time.perf_counter()
            cur.execute(sql, params)
            steps.append(f"{label} {time.perf_counter() - t0:.0f} s")
        cur.execute("ANALYZE")
    ctx.note(f"seeded {n:,} finished jobs, their tags and log lines: {', '.join(steps)}")
    return {"admin": admin, "owner": owners[0]}


def bench_search(ctx: Ctx) -> dict[str, float]:
    if connection.vendor != "postgresql":
        ctx.note("search benchmarks run on PostgreSQL only")
        return {}
    n = 20_000 if ctx.quick else 1_000_000
    seed = _seed(ctx, n)
    repeat = 10 if ctx.quick else 30
    staff = Client()
    staff.force_login(seed["admin"])
    mine = Client()
    mine.force_login(seed["owner"])
    base = "/api/jobs/?page_size=50"
    checks = [
        ("list (no search)", staff, base),
        ("config.account_id=42 (0.1 % match)", staff, f"{base}&config.account_id=42"),
        ("config.account_id=4242 (none)", staff, f"{base}&config.account_id=4242"),
        ('config.region="eu" (50 % match)', staff, f'{base}&config.region="eu"'),
        ("config.account_id=42 as an owner", mine, f"{base}&config.account_id=42"),
        ("tag=nightly (10 %)", staff, f"{base}&tag=nightly"),
        ("tag=rare (10 jobs)", staff, f"{base}&tag=rare"),
        ("tag=absent (none)", staff, f"{base}&tag=absent"),
        ("tag=nightly as an owner", mine, f"{base}&tag=nightly"),
        ("log_contains=disk full (10 jobs)", staff, f"{base}&log_contains=disk%20full"),
        ("log_contains=noop step (all)", staff, f"{base}&log_contains=noop%20step"),
        ("log_contains=zebra (none)", staff, f"{base}&log_contains=zebra"),
        ("log_contains=disk full as an owner", mine, f"{base}&log_contains=disk%20full"),
        ("admin search account_id:42", staff, "/admin/jobs/job/?q=account_id%3A42"),
        ("admin search tag:rare", staff, "/admin/jobs/job/?q=tag%3Arare"),
    ]
    for window in ("24h", "7d", "30d"):
        checks.append(
            (f"stats job-types window={window}", staff, f"/api/stats/job-types/?window={window}")
        )
    checks.append(("stats queues window=7d", staff, "/api/stats/queues/?window=7d"))
    figures = ctx.partial
    for label, client, path in checks:
        ms, status, queries = _get_ms(client, path, 5 if label.startswith("stats") else repeat)
        if status != 200:
            ctx.note(f"{path} answered {status}: not measured")
            continue
        figures[f"{label} p50 ms"] = ms
        figures[f"{label} queries"] = queries
    figures["stats job-types 30d, computed in-process p50 ms"] = median(
        timed_ms(lambda: _stats(seed["admin"]), 5)
    )
    return figures


def _stats(user: Any) -> None:
    from jobs import stats

    stats.job_stats(user=user, by="job-types", window="30d")
