"""Threads per worker: the settings, their start-up check, and the threaded drain in-process
(jobs.worker.threads); the real cluster is tests/integration/jobs/test_worker_threads.py."""

from __future__ import annotations

import threading
import time

import pytest

from jobs import engine, queues, runner, services
from jobs.checks import check_worker_threads
from jobs.models import Job, JobStatus
from jobs.worker import drain, threads

# --- the settings and their check -------------------------------------------------------


def test_one_thread_per_worker_is_the_default_and_a_queue_can_have_its_own(settings):
    settings.JOBDECK_QUEUE_CLUSTERS = {"reports": "jobdeck-reports"}
    assert queues.threads_for("default") == 1
    settings.JOBDECK_WORKER_THREADS = 4
    settings.JOBDECK_QUEUE_THREADS = {"reports": "10"}  # as parsed from the environment
    assert queues.threads_for("default") == 4
    assert queues.threads_for("reports") == 10
    assert queues.worker_threads("jobdeck-reports") == {"reports": 10}
    assert queues.worker_threads() == {"default": 4}


@pytest.mark.parametrize(
    ("value", "threads"),
    [
        *[(1, 1), (12, 12), ("3", 3), (" 5 ", 5)],
        *[(0, None), (-2, None), ("x", None), ("2.5", None), (2.0, None), (True, None)],
        (None, None),
    ],
)
def test_a_thread_count_is_a_whole_number_of_one_or_more(value, threads):
    assert queues.parse_threads(value) == threads


def test_the_check_accepts_good_thread_settings(settings):
    settings.JOBDECK_QUEUE_CLUSTERS = {"reports": "jobdeck-reports"}
    settings.JOBDECK_WORKER_THREADS = 8
    settings.JOBDECK_QUEUE_THREADS = {"reports": "16", "default": 1}
    assert check_worker_threads() == []


def test_the_check_refuses_a_bad_default_and_bad_queue_values_and_warns_of_unknown_queues(
    settings,
):
    settings.JOBDECK_QUEUE_CLUSTERS = {"reports": "jobdeck-reports"}
    settings.JOBDECK_WORKER_THREADS = 0
    settings.JOBDECK_QUEUE_THREADS = {"reports": "ten", "defualt": "4"}
    messages = {m.id: m.msg for m in check_worker_threads()}
    assert messages == {
        "jobdeck.E020": "JOBDECK_WORKER_THREADS = 0 is not a thread count.",
        "jobdeck.E021": "JOBDECK_QUEUE_THREADS gives queue 'reports' 'ten' threads.",
        "jobdeck.W020": "JOBDECK_QUEUE_THREADS names queue 'defualt', which no cluster serves.",
    }


@pytest.mark.parametrize("batch", [0, -1, "32", 2.5, True])
def test_the_check_refuses_a_claim_batch_that_is_not_a_whole_number_of_one_or_more(settings, batch):
    settings.JOBDECK_CLAIM_BATCH = batch
    assert [m.id for m in check_worker_threads()] == ["jobdeck.E022"]


def test_a_malformed_thread_count_runs_one_thread_rather_than_none(settings):
    settings.JOBDECK_WORKER_THREADS = "many"
    assert queues.threads_for("default") == 1


# --- the threaded drain, in this process --------------------------------------------------


@pytest.fixture(autouse=True)
def dismissed_after():
    """The drain threads a test parked close their connections before the next test."""
    yield
    threads.crew.dismiss()


@pytest.fixture
def recorded(monkeypatch) -> dict[int, list[str]]:
    """Which thread ran each job, and how many ran at once per queue (a peak per queue)."""
    seen: dict[int, list[str]] = {}
    running: dict[str, int] = {}
    peaks: dict[str, int] = {}
    lock = threading.Lock()
    execute = drain.execute_deferred

    def watched(claim):
        queue = claim.job.queue
        with lock:
            seen.setdefault(claim.job.pk, []).append(threading.current_thread().name)
            for key in (queue, "all"):
                running[key] = running.get(key, 0) + 1
                peaks[key] = max(peaks.get(key, 0), running[key])
        try:
            return execute(claim)
        finally:
            with lock:
                running[queue] -= 1
                running["all"] -= 1

    monkeypatch.setattr(drain, "execute_deferred", watched)
    monkeypatch.setattr(threads, "execute_deferred", watched)
    seen[-1] = peaks  # type: ignore[assignment]
    return seen


def sleepers(n: int, seconds: float, queue: str = "default") -> list[Job]:
    return [
        services.job_create(
            job_type="demo.steps", config={"steps": 1, "delay": seconds}, queue=queue
        )
        for _ in range(n)
    ]


@pytest.mark.django_db(transaction=True)
def test_with_threads_one_wakeup_runs_jobs_side_by_side_each_thread_its_own_connection(
    settings, recorded
):
    settings.JOBDECK_WORKER_THREADS = 3
    jobs = sleepers(6, 0.4)

    assert runner.run_job(jobs[0].pk) == {"ran": 6}

    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.COMPLETED}
    peaks = recorded.pop(-1)
    assert peaks == {"default": 3, "all": 3}  # never more than the setting, and that many at once
    names = {name for ran in recorded.values() for name in ran}
    assert names and all(name.startswith("jobdeck-drain-") for name in names)
    assert threading.main_thread().name not in names


@pytest.mark.django_db(transaction=True)
def test_each_queue_of_a_cluster_keeps_its_own_thread_limit_and_the_largest_caps_them_all(
    settings, recorded
):
    # One cluster serving two queues: `default` one job at a time, `reports` three, and
    # the process three in all.
    settings.JOBDECK_QUEUE_CLUSTERS = {"reports": settings.Q_CLUSTER["name"]}
    settings.JOBDECK_QUEUE_THREADS = {"reports": "3"}
    sleepers(6, 0.3, queue="reports")
    sleepers(3, 0.3)

    assert runner.run_job() == {"ran": 9}

    assert recorded.pop(-1) == {"default": 1, "reports": 3, "all": 3}
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.COMPLETED}


@pytest.mark.django_db(transaction=True)
def test_with_one_thread_the_drain_runs_in_the_calling_thread_as_always(settings, recorded):
    settings.JOBDECK_WORKER_THREADS = 1
    jobs = sleepers(2, 0)

    assert runner.run_job(jobs[0].pk) == {"ran": 2}
    assert recorded.pop(-1) == {"default": 1, "all": 1}
    assert {name for ran in recorded.values() for name in ran} == {"MainThread"}


@pytest.mark.django_db(transaction=True)
def test_an_error_in_a_drain_thread_reaches_the_caller_after_the_others_finish(
    settings, monkeypatch
):
    settings.JOBDECK_WORKER_THREADS = 2
    jobs = sleepers(3, 0.2)
    execute = drain.execute_deferred
    calls: list[int] = []

    def broken_once(claim):
        calls.append(claim.job.pk)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return execute(claim)

    monkeypatch.setattr(threads, "execute_deferred", broken_once)
    with pytest.raises(RuntimeError, match="the database went away"):
        threads.Pool(runner.worker_name(), float("inf"), {"default": 2}).run(jobs[0].pk)
    # The other thread kept draining: every job but the broken one completed.
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses.pop(calls[0]) == JobStatus.RUNNING
    assert set(statuses.values()) == {JobStatus.COMPLETED}


@pytest.mark.django_db(transaction=True)
def test_the_next_wakeup_reuses_the_parked_threads_and_their_connections(settings, recorded):
    settings.JOBDECK_WORKER_THREADS = 3
    first = sleepers(3, 0.3)
    assert runner.run_job(first[0].pk) == {"ran": 3}
    assert threads.crew.idle() == 3
    names = {name for ran in recorded.values() if isinstance(ran, list) for name in ran}

    second = sleepers(3, 0.3)
    assert runner.run_job(second[0].pk) == {"ran": 3}
    again = {name for pk in (j.pk for j in second) for name in recorded[pk]}
    assert again <= names  # no new thread: the parked ones ran them


@pytest.mark.django_db(transaction=True)
def test_a_thread_parked_too_long_closes_its_connection_and_ends(settings, monkeypatch):
    settings.JOBDECK_WORKER_THREADS = 2
    monkeypatch.setattr(threads, "PARK_SECONDS", 0.2)
    jobs = sleepers(2, 0.1)
    assert runner.run_job(jobs[0].pk) == {"ran": 2}
    assert threads.crew.idle() == 2

    time.sleep(0.6)
    assert threads.crew.idle() == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("jobdeck-drain-")]


@pytest.mark.django_db(transaction=True)
def test_a_round_that_fails_leaves_no_finished_job_unwritten(settings, monkeypatch):
    settings.JOBDECK_WORKER_THREADS = 3
    jobs = sleepers(3, 0.1)
    settle = engine.settle_and_claim

    def broken_with_completions(finished, **kwargs):
        if finished:
            raise RuntimeError("the round broke")
        return settle(finished, **kwargs)

    monkeypatch.setattr(engine, "settle_and_claim", broken_with_completions)
    with pytest.raises(RuntimeError, match="the round broke"):
        threads.Pool(runner.worker_name(), float("inf"), {"default": 3}).run(jobs[0].pk)
    # The jobs its threads finished were written one by one on the way out.
    statuses = set(Job.objects.values_list("status", flat=True))
    assert statuses == {JobStatus.COMPLETED}
