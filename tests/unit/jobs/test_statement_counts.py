"""How many statements and commits a job costs: the reason for the hand-written SQL
(jobs/engine/sql/), pinned so that a change adding one fails loudly."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import connection

from jobs import engine, runner, services
from jobs.models import Job, JobStatus

# Real transactions: what commits is what a worker or a web request commits.
pytestmark = pytest.mark.django_db(transaction=True)

DEMO = {"job_type": "demo.steps", "config": {"steps": 1, "delay": 0}}


@pytest.fixture(autouse=True)
def notification_rules_read_once(settings):
    """A finishing job asks notifications for the enabled rules, which a process reads
    once per JOBDECK_NOTIFY_RULES_CACHE_SECONDS: not again in the middle of a count."""
    from notifications import services as notifications

    settings.JOBDECK_NOTIFY_RULES_CACHE_SECONDS = 3600
    notifications.rules_changed()
    notifications.job_rules()  # read now, before anything is counted
    yield
    notifications.rules_changed()


PG = connection.vendor == "postgresql"


class Count:
    """Statements sent, and commits: explicit ones plus statements run in autocommit
    (each its own transaction)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def __call__(self, execute, sql, params, many, context):
        self.statements.append(sql)
        if connection.get_autocommit() and not sql.lstrip().upper().startswith("BEGIN"):
            self.commits += 1
        return execute(sql, params, many, context)


@contextmanager
def counting():
    count = Count()
    commit = connection.commit

    def counted_commit() -> None:
        count.commits += 1
        commit()

    connection.commit = counted_commit  # the atomic blocks' commits
    try:
        with connection.execute_wrapper(count):
            yield count
    finally:
        del connection.commit


def test_creating_a_job_costs_two_statements_on_postgresql_and_four_on_sqlite():
    services.job_create(**DEMO)  # warm caches (statements, registry)
    with counting() as count:
        services.job_create(**DEMO)
    # PostgreSQL: the job with its tasks (one statement), its wake-up (a transactional
    # outbox row); SQLite: BEGIN IMMEDIATE, the job, its tasks, the wake-up. One commit.
    assert (len(count.statements), count.commits) == ((2, 1) if PG else (4, 1))


def test_each_job_a_worker_drains_costs_one_statement_on_postgresql(settings):
    settings.JOBDECK_DRAIN_SECONDS = 60
    services.job_bulk_create(specs=[DEMO] * 3)
    runner.run_job()  # warm: first claims, the statements parsed

    def drain(n: int) -> Count:
        services.job_bulk_create(specs=[DEMO] * n)
        with counting() as count:
            assert runner.run_job() == {"ran": n}
        return count

    five, fifteen = drain(5), drain(15)
    per_job = (len(fifteen.statements) - len(five.statements)) / 10
    commits_per_job = (fifteen.commits - five.commits) / 10
    # PostgreSQL: a finished job's completion (its log lines, its last task, the job)
    # and the next claim (with its first task's start and the task list) are one round
    # trip and one commit (the children it releases ride in that round trip: see
    # release_children). SQLite (no data-modifying CTEs): BEGIN IMMEDIATE, the log lines,
    # the last task, the job, the children it releases, the claim, its first task and the
    # task list: eight statements and one commit.
    assert (per_job, commits_per_job) == ((1, 1) if PG else (8, 1))
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 23


def test_a_batch_of_finished_and_claimed_jobs_costs_one_statement_on_postgresql():
    # A threaded worker's round (engine.settle_and_claim): the jobs its threads finished
    # and as many new ones as threads are free.
    services.job_bulk_create(specs=[DEMO] * 12)
    engine.settle_and_claim([], worker="count:1", queues=["default"], limit=2)  # warm
    claims = engine.settle_and_claim([], worker="count:1", queues=["default"], limit=5)
    done = [
        (
            engine.Completion(c.job.pk, c.job.attempts, c.tasks[-1].pk, None, None, 1),
            [(c.tasks[-1].pk, c.job.started_at, 20, "done")],
        )
        for c in claims
    ]
    with counting() as count:
        again = engine.settle_and_claim(done, worker="count:1", queues=["default"], limit=5)
    assert len(again) == 5
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 5
    # PostgreSQL: complete_batch, release_children_batch and claim_next (LIMIT 5) in one round trip
    # and one commit, for 5 jobs settled and 5 claimed. SQLite: BEGIN IMMEDIATE, then
    # per job settled its log lines, task, job and children (4 each, 20), per job claimed
    # its claim, first task and task list (3 each, 15): one commit.
    assert (len(count.statements), count.commits) == ((1, 1) if PG else (36, 1))


def test_a_job_of_three_tasks_costs_a_statement_per_task_boundary_on_postgresql():
    job = services.job_create(job_type="demo.steps", config={"steps": 3, "delay": 0})
    with counting() as count:
        claim = runner.claim(worker="w:1", job_id=job.pk)
        assert runner.execute(claim) == JobStatus.COMPLETED
    # PostgreSQL: the claim (with task 1's start); for tasks 1 and 2 their success (with
    # their log lines and the job's progress) and the next task's start; the completion.
    # SQLite: 4 for the claim (BEGIN, claim, first task, task list), 4 per success (BEGIN,
    # log lines, task, job), 5 for the completion (and the children it releases), 1 per
    # start.
    assert (len(count.statements), count.commits) == ((6, 6) if PG else (19, 6))
