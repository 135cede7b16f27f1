"""Threads per worker on a real cluster (JOBDECK_WORKER_THREADS): one worker process runs
several jobs at once, each still heartbeated, timed out, cancellable and fenced."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from jobs import selectors, services
from jobs.models import Job, JobStatus, Task, TaskStatus
from tests.support import timeout_jobtypes
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

THREADED = {"Q_WORKERS": "1", "JOBDECK_WORKER_THREADS": "4"}


def status_of(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def sleeper(seconds: float, steps: int = 1) -> Job:
    return services.job_create(job_type="demo.steps", config={"steps": steps, "delay": seconds})


def test_four_threads_in_one_worker_run_four_sleeping_jobs_at_once(make_cluster):
    cluster = make_cluster(**THREADED)
    jobs = [sleeper(2) for _ in range(4)]
    started = time.monotonic()

    wait_until(
        lambda: all(status_of(job) == JobStatus.COMPLETED for job in jobs), 30, 0.05, "the jobs"
    )
    elapsed = time.monotonic() - started
    rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
    # Every job started before any finished: their runs overlap.
    assert max(r.started_at for r in rows) < min(r.finished_at for r in rows), cluster.output
    assert len({r.worker for r in rows}) == 1  # one worker process ran all four
    assert elapsed < 4 * 2, cluster.output  # one after another would take 8 s
    for job in jobs:  # each job's log holds its own lines, and only those
        assert [line.message for line in selectors.log_tail(job.pk, 10)] == [
            "step 1 of 1 started",
            "step 1 done",
        ]


def test_each_job_running_in_a_thread_is_heartbeated(make_cluster):
    cluster = make_cluster(**THREADED)
    jobs = [sleeper(6) for _ in range(3)]
    wait_until(
        lambda: all(status_of(job) == JobStatus.RUNNING for job in jobs), 20, 0.02, "the jobs"
    )

    def all_beaten() -> bool:
        rows = Job.objects.filter(pk__in=[job.pk for job in jobs])
        # JOBDECK_HEARTBEAT_SECONDS is 0.5 in the harness: a second past its start.
        return all(r.heartbeat_at - r.started_at > timedelta(seconds=1) for r in rows)

    wait_until(all_beaten, 5, 0.1, "a heartbeat of every running job")
    assert len(set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("worker"))) == 1
    assert all(status_of(job) == JobStatus.RUNNING for job in jobs), cluster.output


def test_a_threaded_job_past_its_timeout_fails_timed_out_while_its_neighbour_completes(
    make_cluster,
):
    cluster = make_cluster(**THREADED, JOBDECK_JOBTYPE_MODULES=timeout_jobtypes.MODULE)
    busy = services.job_create(
        job_type="timeouts.busy", config={"seconds": 120, "every": 0.1}, timeout_seconds=2
    )
    neighbour = sleeper(4)
    wait_until(lambda: status_of(busy) == JobStatus.RUNNING, 20, 0.02, "the job to start")
    running_since = time.monotonic()

    wait_until(lambda: status_of(busy) == JobStatus.FAILED, 2 + 5, 0.05, "the timeout")
    assert time.monotonic() - running_since < 2 + 5, cluster.output
    busy.refresh_from_db()
    assert busy.error.split("\n\n")[0] == "timed out after 2 s", cluster.output
    task = busy.tasks.get()
    assert task.status == TaskStatus.FAILED and task.error.startswith("timed out after 2 s")
    assert "timed out after 2 s; its handler was interrupted" in cluster.output
    # Its handler stopped: no more progress is written.
    written = Task.objects.filter(job=busy).values_list("progress_done", flat=True).get()
    time.sleep(1)
    assert Task.objects.filter(job=busy).values_list("progress_done", flat=True).get() == written
    # The neighbour ran beside it in the same worker, untouched.
    wait_until(lambda: status_of(neighbour) == JobStatus.COMPLETED, 10, 0.05, "the neighbour")
    neighbour.refresh_from_db()
    assert neighbour.worker == busy.worker
    assert neighbour.started_at < busy.finished_at


def test_a_threaded_job_cancelled_from_another_process_ends_cancelled(make_cluster):
    cluster = make_cluster(**THREADED)
    cancelled, kept = sleeper(1, steps=5), sleeper(1, steps=3)
    wait_until(
        lambda: status_of(cancelled) == status_of(kept) == JobStatus.RUNNING,
        20,
        0.02,
        "both jobs to start",
    )

    services.job_cancel(job=cancelled, via="test")

    wait_until(lambda: status_of(cancelled) == JobStatus.CANCELLED, 10, 0.05, "the cancel")
    statuses = list(cancelled.tasks.order_by("position").values_list("status", flat=True))
    assert TaskStatus.CANCELLED in statuses and statuses[-1] == TaskStatus.SKIPPED
    assert TaskStatus.RUNNING not in statuses and TaskStatus.PENDING not in statuses
    wait_until(lambda: status_of(kept) == JobStatus.COMPLETED, 10, 0.05, "the other job")
    workers = Job.objects.filter(pk__in=[cancelled.pk, kept.pk]).values_list("worker", flat=True)
    assert len(set(workers)) == 1, cluster.output  # side by side in one worker


def test_a_threaded_job_whose_claim_was_taken_stops_without_touching_the_new_attempt(
    make_cluster,
):
    cluster = make_cluster(**THREADED)
    job = services.job_create(
        job_type="demo.steps", config={"steps": 3, "delay": 1.5}, max_attempts=2
    )
    neighbour = sleeper(3)
    wait_until(
        lambda: status_of(job) == status_of(neighbour) == JobStatus.RUNNING,
        20,
        0.02,
        "both jobs to start",
    )
    # As if swept and claimed again elsewhere while task 1 runs: a new attempt, another
    # worker, a fresh heartbeat.
    taken_at = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        attempts=F("attempts") + 1, worker="elsewhere:1", heartbeat_at=taken_at
    )

    wait_until(
        lambda: f"job #{job.pk} lost its claim" in cluster.output, 10, 0.1, "the worker to stop"
    )
    time.sleep(1.5)  # what task 2 would have taken
    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker) == (JobStatus.RUNNING, 2, "elsewhere:1")
    assert job.heartbeat_at == taken_at  # the old attempt's heartbeat is fenced out
    statuses = list(job.tasks.order_by("position").values_list("status", flat=True))
    assert statuses[1:] == [TaskStatus.PENDING, TaskStatus.PENDING], cluster.output
    # Its neighbour in the same worker is unaffected.
    wait_until(lambda: status_of(neighbour) == JobStatus.COMPLETED, 10, 0.05, "the neighbour")


def test_a_deep_backlog_is_claimed_in_batches_no_larger_than_the_free_threads(make_cluster):
    # 2 workers of 4 threads and 200 short jobs: each dispatcher claims up to 4 jobs per
    # statement. Jobs of one batch share their worker and their start (the claim reads
    # the clock once), so batches are visible from outside.
    cluster = make_cluster(Q_WORKERS="2", JOBDECK_WORKER_THREADS="4")
    ids = list(
        services.job_bulk_create(
            specs=[{"job_type": "demo.steps", "config": {"steps": 1, "delay": 0.02}}] * 200
        )
    )

    wait_until(
        lambda: Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == 200,
        60,
        0.1,
        "the backlog",
    )
    rows = list(
        Job.objects.filter(pk__in=ids).values("worker", "started_at", "finished_at", "attempts")
    )
    assert {r["attempts"] for r in rows} == {1}, cluster.output  # each ran once
    batches: dict[tuple, int] = {}
    for r in rows:
        key = (r["worker"], r["started_at"])
        batches[key] = batches.get(key, 0) + 1
    assert max(batches.values()) <= 4  # never more than a worker's threads
    assert len(batches) < len(rows)  # some statement claimed several
    # Shown running only while running: a worker never had more than its 4 threads'
    # jobs between start and finish at any moment.
    for worker in {r["worker"] for r in rows}:
        spans = sorted((r["started_at"], r["finished_at"]) for r in rows if r["worker"] == worker)
        for start, _ in spans:
            assert sum(1 for s, f in spans if s <= start < f) <= 4
