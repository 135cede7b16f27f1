"""Fixtures and hooks of the fault-injection suite (the side-effect table, clusters,
measurements), registered by the conftest of tests/unit/jobs/reliability and of
tests/integration/jobs/reliability."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Job, JobStatus
from tests.support import reliability_jobtypes  # noqa: F401  (registers the test job types)
from tests.support.cluster import Cluster, wait_until
from tests.support.reliability_jobtypes import SIDE_EFFECT_TABLE

JOBTYPE_MODULES = "tests.support.reliability_jobtypes"
# The cluster harness's stale threshold (tests/support/cluster.py) unless a test overrides it.
STALE_SECONDS = 3.0
# django-q2's guard calls its scheduler every 30 s of guard loop (hard-coded).
SCHEDULER_CYCLE = 30.0
RESULTS = Path(__file__).resolve().parents[2] / "var" / "reliability" / "measurements.jsonl"


def pytest_collection_modifyitems(config, items) -> None:
    """`disruptive` tests (restarting the shared PostgreSQL) run only when asked to."""
    if os.environ.get("JOBDECK_DISRUPTIVE_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="disruptive: set JOBDECK_DISRUPTIVE_TESTS=1 to run")
    for item in items:
        if "disruptive" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def side_effects(transactional_db) -> Callable[[], dict[int, list[int]]]:
    """Create (or empty) the side-effect table; return a reader: job id → attempts recorded."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {SIDE_EFFECT_TABLE} ("
            "job_id bigint NOT NULL, attempt integer NOT NULL, pid integer NOT NULL, "
            f"CONSTRAINT {SIDE_EFFECT_TABLE}_once UNIQUE (job_id))"
        )
        cursor.execute(f"DELETE FROM {SIDE_EFFECT_TABLE}")

    def read() -> dict[int, list[int]]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT job_id, attempt FROM {SIDE_EFFECT_TABLE}")
            rows = cursor.fetchall()
        effects: dict[int, list[int]] = {}
        for job_id, attempt in rows:
            effects.setdefault(job_id, []).append(attempt)
        return effects

    return read


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the output of the clusters it started."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for cluster in getattr(item, "reliability_clusters", []):
            report.sections.append((f"qcluster {cluster.name}", cluster.output))


@pytest.fixture
def start_cluster(make_cluster, side_effects, request) -> Callable[..., Cluster]:
    """make_cluster with the test job types loaded in the qcluster processes."""
    request.node.reliability_clusters = started = []

    def start(wait: bool = True, **env: str) -> Cluster:
        env.setdefault("JOBDECK_JOBTYPE_MODULES", JOBTYPE_MODULES)
        cluster = make_cluster(wait=wait, **env)
        started.append(cluster)
        return cluster

    return start


@pytest.fixture
def measure(request) -> Callable[[str, float], None]:
    """Record a measured figure (printed, and appended to var/reliability/measurements.jsonl)."""

    def record(name: str, value: float) -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "test": request.node.name,
            "name": name,
            "value": round(value, 3),
            "db": connection.vendor,
            "at": timezone.now().isoformat(),
        }
        with RESULTS.open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        print(f"[measure] {request.node.name}: {name} = {value:.3f}")

    return record


def status_of(job_id: int) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def worker_pid(job_id: int) -> int:
    return int(Job.objects.values_list("worker", flat=True).get(pk=job_id).rsplit(":", 1)[1])


def sweep_due_once_stale(job_id: int, stale: float = STALE_SECONDS) -> None:
    """Make the next django-q2 scheduler pass run jobdeck.tick, once the job's heartbeat is stale.

    In production the tick runs every minute; here its next run is brought forward
    (after the staleness threshold has passed, so the sweep it triggers finds the job).
    """
    from django_q.models import Schedule

    def is_stale() -> bool:
        beat = Job.objects.values_list("heartbeat_at", flat=True).get(pk=job_id)
        return beat is None or timezone.now() - beat > timedelta(seconds=stale + 0.2)

    wait_until(is_stale, stale + 10, 0.1, f"job {job_id}'s heartbeat to go stale")
    Schedule.objects.filter(name="jobdeck.tick").update(next_run=timezone.now())


def wait_for_status(
    job_id: int, predicate: Callable[[str], bool], timeout: float, what: str
) -> float:
    """Poll until the job's status satisfies `predicate`; return the seconds waited."""
    started = time.monotonic()
    wait_until(lambda: predicate(status_of(job_id)), timeout, 0.1, what)
    return time.monotonic() - started


def final(status: str) -> bool:
    return status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
