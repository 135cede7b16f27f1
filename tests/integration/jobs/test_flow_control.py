"""Flow control across real clusters: two qcluster processes of two workers each, on
the test database (SQLite or PostgreSQL), racing for the same jobs."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection

from jobs import flow_changes, registry, services
from jobs.models import FlowScope, Job, JobStatus
from tests.support import flow_jobtypes
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ENV = {"JOBDECK_JOBTYPE_MODULES": "tests.support.flow_jobtypes", "JOBDECK_FLOW_TEST_TYPES": "1"}


@pytest.fixture
def clusters(make_cluster):
    """Two clusters of two workers each (cluster_env's Q_WORKERS)."""
    return [make_cluster(**ENV), make_cluster(**ENV)]


@pytest.fixture
def keyed_type():
    registry.register(flow_jobtypes.Keyed)
    yield
    registry.unregister(flow_jobtypes.Keyed.name)


def demo(n: int, delay: float = 0.0, **fields) -> list[int]:
    return [
        services.job_create(job_type="demo.steps", config={"steps": 1, "delay": delay}, **fields).pk
        for _ in range(n)
    ]


def all_done(ids: list[int], timeout: float, clusters) -> None:
    wait_until(
        lambda: Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == len(ids),
        timeout,
        0.2,
        f"{len(ids)} jobs to complete ({[c.output[-2000:] for c in clusters]})",
    )


def started(ids: list[int]) -> int:
    return Job.objects.filter(pk__in=ids).exclude(started_at=None).count()


def most_at_once(ids: list[int]) -> int:
    """The most jobs whose [started_at, finished_at) spans overlap at one instant."""
    edges = []
    for start, end in Job.objects.filter(pk__in=ids).values_list("started_at", "finished_at"):
        edges += [(start, 1), (end, -1)]
    at_once = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start
        at_once += step
        peak = max(peak, at_once)
    return peak


def test_a_paused_queue_starts_nothing_until_resumed(clusters):
    flow_changes.pause(scope=FlowScope.QUEUE, name="default")
    ids = demo(6)
    time.sleep(3)  # many polls of four workers, each woken by its job's message
    assert started(ids) == 0
    flow_changes.resume(scope=FlowScope.QUEUE, name="default")
    all_done(ids, 30, clusters)


def test_a_paused_type_starts_nothing_until_resumed_and_other_types_run(clusters):
    flow_changes.pause(scope=FlowScope.TYPE, name="demo.steps")
    ids = demo(6)
    other = services.job_create(job_type="maintenance.cleanup", config={"dry_run": True}).pk
    all_done([other], 30, clusters)
    time.sleep(2)
    assert started(ids) == 0
    flow_changes.resume(scope=FlowScope.TYPE, name="demo.steps")
    all_done(ids, 30, clusters)


@pytest.mark.parametrize(
    ("scope", "name", "limit"),
    [(FlowScope.TYPE, "demo.steps", 1), (FlowScope.QUEUE, "default", 2)],
)
def test_a_concurrency_limit_is_never_exceeded_over_40_jobs(clusters, scope, name, limit):
    flow_changes.update(scope=scope, name=name, changes={"concurrency_limit": limit})
    ids = demo(40, delay=0.15)
    all_done(ids, 120, clusters)
    peak = most_at_once(ids)
    assert peak <= limit
    if limit > 1:  # four workers raced for the slots: the limit, not luck, kept them out
        assert peak == limit


def test_a_key_limit_of_2_is_never_exceeded_per_key_over_40_jobs(clusters, keyed_type):
    ids = [
        services.job_create(job_type="flow.keyed", config={"account": 1 + i % 2, "delay": 0.15}).pk
        for i in range(40)
    ]
    all_done(ids, 120, clusters)
    for account in (1, 2):
        mine = list(
            Job.objects.filter(pk__in=ids, lock=f"account:{account}").values_list("pk", flat=True)
        )
        assert len(mine) == 20
        assert most_at_once(mine) <= 2
    assert most_at_once(ids) >= 3  # the two accounts' jobs ran beside each other


def test_a_rate_limit_of_3_per_10_seconds_is_held(clusters):
    flow_changes.update(
        scope=FlowScope.TYPE,
        name="demo.steps",
        changes={"rate_limit": 3, "rate_period_seconds": 10},
    )
    ids = demo(7)
    all_done(ids, 60, clusters)
    starts = sorted(Job.objects.filter(pk__in=ids).values_list("started_at", flat=True))
    window = timedelta(seconds=10)
    for i, start in enumerate(starts):
        assert sum(1 for s in starts[i:] if s - start < window) <= 3, starts
    # …and the waiting jobs started as the window allowed, not a minute later (the tick).
    assert starts[-1] - starts[0] < timedelta(seconds=30), starts


def test_20_concurrent_creates_with_one_unique_key_make_one_job(clusters):
    flow_changes.pause(scope=FlowScope.QUEUE, name="default")  # it stays pending meanwhile
    barrier = threading.Barrier(20)
    made: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            job = services.job_create(
                job_type="demo.steps", config={"steps": 1, "delay": 0}, unique_key="nightly"
            )
            made.append((job.pk, job.existing))
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len({pk for pk, _ in made}) == 1
    assert sorted(existing for _, existing in made) == [False] + [True] * 19
    assert Job.objects.filter(unique_key="nightly").count() == 1
    flow_changes.resume(scope=FlowScope.QUEUE, name="default")
    all_done([made[0][0]], 30, clusters)
