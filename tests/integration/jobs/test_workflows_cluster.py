"""Workflows across real clusters: two qcluster processes of two workers each, on the
test database (SQLite or PostgreSQL): a diamond in order, a failure and its retry, a
join that runs anyway, refusals, and the races where two workers or a worker and a
person decide a child's fate at the same moment."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import broker, registry, services, workflows
from jobs.models import Job, JobDependency, JobStatus
from tests.support import workflow_jobtypes
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

S = JobStatus
ENV = {
    "JOBDECK_JOBTYPE_MODULES": "tests.support.workflow_jobtypes",
    "JOBDECK_WORKFLOW_TEST_TYPES": "1",
}


@pytest.fixture
def clusters(make_cluster):
    registry.register(workflow_jobtypes.At)
    yield [make_cluster(**ENV), make_cluster(**ENV)]
    registry.unregister(workflow_jobtypes.At.name)


def step(after=(), delay=0.0, fail=False, **extra):
    config = {"steps": 1, "delay": delay, **({"fail_at": 1, "fail_attempts": 1} if fail else {})}
    return {"job_type": "demo.steps", "config": config, "after": list(after), **extra}


def at(when: float, after=(), fail_attempts=0):
    config = {"at": when, "fail_attempts": fail_attempts}
    return {"job_type": "workflow.at", "config": config, "after": list(after)}


def statuses(ids: dict[str, int]) -> dict[str, str]:
    found = dict(Job.objects.filter(pk__in=ids.values()).values_list("pk", "status"))
    return {node: found[pk] for node, pk in ids.items()}


def settle(ids: dict[str, int], expected: dict[str, str], clusters, timeout=30.0) -> None:
    wait_until(
        lambda: statuses(ids) == expected,
        timeout,
        0.2,
        f"{expected}, have {statuses(ids)} ({[c.output[-1500:] for c in clusters]})",
    )


def jobs_of(ids: dict[str, int]) -> dict[str, Job]:
    return {node: Job.objects.get(pk=pk) for node, pk in ids.items()}


def test_a_diamond_runs_in_order(clusters):
    _, ids = workflows.workflow_create(
        spec={
            "jobs": {
                "a": step(delay=0.2),
                "b": step(["a"]),
                "c": step(["a"]),
                "d": step(["b", "c"]),
            }
        }
    )
    settle(ids, dict.fromkeys(ids, S.COMPLETED), clusters)
    j = jobs_of(ids)
    assert j["a"].finished_at <= min(j["b"].started_at, j["c"].started_at)
    assert max(j["b"].finished_at, j["c"].finished_at) <= j["d"].started_at
    assert {job.attempts for job in j.values()} == {1}


def test_a_failing_branch_cancels_the_join_and_its_retry_runs_it_then_the_join(clusters):
    _, ids = workflows.workflow_create(
        spec={
            "jobs": {
                "a": step(),
                "b": step(["a"], fail=True),
                "c": step(["a"]),
                "d": step(["b", "c"]),
            }
        }
    )
    settle(ids, {"a": S.COMPLETED, "b": S.FAILED, "c": S.COMPLETED, "d": S.CANCELLED}, clusters)
    assert Job.objects.get(pk=ids["d"]).error == f"parent #{ids['b']} failed"
    services.job_retry(job=Job.objects.get(pk=ids["b"]))  # attempt 2 succeeds
    settle(ids, dict.fromkeys(ids, S.COMPLETED), clusters)
    j = jobs_of(ids)
    assert j["b"].finished_at <= j["d"].started_at
    assert (j["b"].attempts, j["d"].attempts) == (2, 1)


def test_a_join_that_runs_anyway_runs_after_a_failure(clusters):
    _, ids = workflows.workflow_create(
        spec={
            "jobs": {
                "a": step(fail=True),
                "report": {**step(["a"]), "on_parent_failure": "run"},
                "after_a": step(["a"]),
            }
        }
    )
    settle(ids, {"a": S.FAILED, "report": S.COMPLETED, "after_a": S.CANCELLED}, clusters)


def test_cycles_and_foreign_parents_are_refused(clusters, user, other_user):
    client = APIClient()
    client.force_authenticate(user)
    cycle = {"jobs": {"a": step(["b"]), "b": step(["a"])}}
    assert client.post("/api/workflows/", cycle, format="json").status_code == 400
    theirs = services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, user=other_user
    )
    body = {"job_type": "demo.steps", "config": {"steps": 1, "delay": 0}, "depends_on": [theirs.pk]}
    response = client.post("/api/jobs/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"depends_on": [f"There is no job #{theirs.pk} that you may see."]}
    assert Job.objects.count() == 1


ROUNDS = 12


def test_the_last_two_parents_finishing_at_once_release_the_child_exactly_once(clusters):
    """Twelve diamonds whose b and c finish at the same instant on four workers: each
    d is released once (its count reaches 0 once, never below) and runs once."""
    when = time.time() + 3
    created = [
        workflows.workflow_create(
            spec={
                "jobs": {
                    "a": step(),
                    "b": at(when, ["a"]),
                    "c": at(when, ["a"]),
                    "d": step(["b", "c"]),
                }
            }
        )[1]
        for _ in range(ROUNDS)
    ]
    for ids in created:
        settle(ids, dict.fromkeys(ids, S.COMPLETED), clusters, timeout=60)
    finishes = []
    for ids in created:
        j = jobs_of(ids)
        assert (j["d"].attempts, len(j["d"].attempted_by), j["d"].waiting_on) == (1, 1, 0)
        assert max(j["b"].finished_at, j["c"].finished_at) <= j["d"].started_at
        finishes.append(abs((j["b"].finished_at - j["c"].finished_at).total_seconds()))
    assert set(JobDependency.objects.values_list("settled", flat=True)) == {True}
    # The parents did finish together: the race was run, not avoided.
    assert min(finishes) < 0.05, finishes


def test_retrying_a_parent_while_another_fails_leaves_the_child_consistently_cancelled(clusters):
    """d waits for b and c; b failed (so d is cancelled in its name); at one instant b is
    retried by a person and c fails on a worker. Whichever wins, d ends cancelled in
    c's name (never pending under a failed parent), and retrying c then runs d once."""
    later = timezone.now() + timedelta(hours=1)  # c waits until the b's have failed
    created = [
        workflows.workflow_create(
            spec={
                "jobs": {
                    "b": step(fail=True),
                    "c": {**at(0, fail_attempts=1), "run_after": later},
                    "d": step(["b", "c"]),
                }
            }
        )[1]
        for _ in range(ROUNDS)
    ]
    for ids in created:
        wait_until(lambda ids=ids: statuses(ids)["b"] == S.FAILED, 30, 0.1, "b to fail")
        assert Job.objects.get(pk=ids["d"]).cancelled_by_parent_id == ids["b"]
    when = time.time() + 2
    c_ids = [ids["c"] for ids in created]
    due = datetime.fromtimestamp(when - 0.5, tz=UTC)
    Job.objects.filter(pk__in=c_ids).update(config={"at": when, "fail_attempts": 1}, run_after=due)
    broker.wake_workers(4)  # each waits in its drain for the c's to fall due

    def retry_b_at_the_instant() -> None:
        time.sleep(max(0.0, when - time.time()))
        for ids in created:
            services.job_retry(job=Job.objects.get(pk=ids["b"]))
        close_old_connections()

    person = threading.Thread(target=retry_b_at_the_instant)
    person.start()
    person.join()
    for ids in created:
        settle(ids, {"b": S.COMPLETED, "c": S.FAILED, "d": S.CANCELLED}, clusters, timeout=60)
        d = Job.objects.get(pk=ids["d"])
        assert (d.cancelled_by_parent_id, d.error) == (ids["c"], f"parent #{ids['c']} failed")
        assert d.attempts == 0 and d.waiting_on == 1
    for ids in created:
        services.job_retry(job=Job.objects.get(pk=ids["c"]))
    for ids in created:
        settle(ids, dict.fromkeys(ids, S.COMPLETED), clusters, timeout=60)
        assert Job.objects.get(pk=ids["d"]).attempts == 1
