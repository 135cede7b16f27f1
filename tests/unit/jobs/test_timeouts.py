"""Per-job timeouts: resolved once at creation, validated at every door, enforced by
interrupting the running handler (jobs.worker.timeouts)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone

from jobs import registry, runner, services
from jobs.checks import check_job_type_timeouts
from jobs.exceptions import JobTimedOut
from jobs.models import Job, JobLog, JobStatus, TaskStatus
from jobs.registry import JobType
from jobs.tasks_backend import JobdeckBackend, job_options
from jobs.worker import timeouts
from jobs.worker.timeouts import Budget, interrupting
from tests.support import timeout_jobtypes  # noqa: F401  (registers timeouts.busy)
from tests.support.django_tasks import add

pytestmark = pytest.mark.django_db


def timer_as_before(before: tuple[float, float], handler: object) -> bool:
    """SIGALRM's handler and ITIMER_REAL are what they were (pytest-timeout may use them)."""
    delay = signal.getitimer(signal.ITIMER_REAL)[0]
    same_delay = delay == 0.0 if before[0] == 0.0 else 0 < delay <= before[0]
    return same_delay and signal.getsignal(signal.SIGALRM) is handler


@pytest.fixture
def timer_kept():
    """Asserts, after the test, that the timer was given back as it was."""
    before, handler = signal.getitimer(signal.ITIMER_REAL), signal.getsignal(signal.SIGALRM)
    yield
    assert timer_as_before(before, handler)


BUSY = {"job_type": "timeouts.busy", "config": {"seconds": 30, "every": 100}}


@pytest.fixture(autouse=True)
def one_job_per_drain(settings):
    settings.JOBDECK_DRAIN_SECONDS = 0
    settings.JOBDECK_RETRY_BACKOFF_SECONDS = 10


# --- resolution: once, at creation ------------------------------------------------------


def test_a_jobs_own_timeout_wins_over_its_types_default():
    jt = registry.get("timeouts.busy_default")
    assert services.resolved_timeout(jt, 30) == 30
    assert services.resolved_timeout(jt, None) == 1
    assert services.resolved_timeout(registry.get("demo.steps"), None) is None

    own = services.job_create(job_type="timeouts.busy_default", config={}, timeout_seconds=30)
    default = services.job_create(job_type="timeouts.busy_default", config={})
    none = services.job_create(job_type="demo.steps", config={"steps": 1})
    stored = dict(Job.objects.values_list("pk", "timeout_seconds"))
    assert (stored[own.pk], stored[default.pk], stored[none.pk]) == (30, 1, None)


def test_bulk_creation_stores_each_jobs_resolved_timeout():
    ids = services.job_bulk_create(
        specs=[
            {"job_type": "timeouts.busy_default", "config": {}},
            {"job_type": "timeouts.busy_default", "config": {}, "timeout_seconds": 7},
            {"job_type": "demo.steps", "config": {"steps": 1}},
        ]
    )
    stored = dict(Job.objects.values_list("pk", "timeout_seconds"))
    assert [stored[i] for i in ids] == [1, 7, None]


@pytest.mark.parametrize("bad", [0, -1, 86_401, True, 1.5, "5"])
def test_a_timeout_outside_1_to_86400_seconds_is_refused_naming_the_field(bad):
    with pytest.raises(ValidationError) as err:
        services.job_create(**BUSY, timeout_seconds=bad)
    assert err.value.message_dict == {"timeout_seconds": [services.TIMEOUT_ERROR]}
    with pytest.raises(services.BulkValidationError) as bulk:
        services.job_bulk_create(specs=[BUSY, {**BUSY, "timeout_seconds": bad}])
    assert bulk.value.errors == {1: {"timeout_seconds": [services.TIMEOUT_ERROR]}}
    assert not Job.objects.exists()


def test_the_database_refuses_a_timeout_below_one_second():
    job = services.job_create(**BUSY, timeout_seconds=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(timeout_seconds=0)


# --- the API ------------------------------------------------------------------------------


def test_the_api_creates_a_job_with_a_timeout_and_shows_it(api_client):
    response = api_client.post("/api/jobs/", {**BUSY, "timeout_seconds": 30}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["timeout_seconds"] == 30
    default = api_client.post(
        "/api/jobs/", {"job_type": "timeouts.busy_default", "config": {}}, format="json"
    )
    assert default.json()["timeout_seconds"] == 1
    listed = api_client.get("/api/jobs/").json()["results"]
    assert sorted(j["timeout_seconds"] for j in listed) == [1, 30]


@pytest.mark.parametrize("bad", [0, 86_401, "soon", 2.5])
def test_the_api_refuses_a_bad_timeout_with_a_400_naming_the_field(api_client, bad):
    response = api_client.post("/api/jobs/", {**BUSY, "timeout_seconds": bad}, format="json")
    assert response.status_code == 400
    assert response.json() == {"timeout_seconds": [services.TIMEOUT_ERROR]}
    bulk = api_client.post(
        "/api/jobs/bulk/", {"jobs": [BUSY, {**BUSY, "timeout_seconds": bad}]}, format="json"
    )
    assert bulk.status_code == 400
    assert bulk.json() == {"jobs": {"1": {"timeout_seconds": [services.TIMEOUT_ERROR]}}}
    assert not Job.objects.exists()


def test_the_api_bulk_creates_jobs_with_their_timeouts(api_client):
    response = api_client.post(
        "/api/jobs/bulk/", {"jobs": [{**BUSY, "timeout_seconds": 9}, BUSY]}, format="json"
    )
    assert response.status_code == 201, response.json()
    stored = dict(Job.objects.values_list("pk", "timeout_seconds"))
    assert [stored[i] for i in response.json()["ids"]] == [9, None]


# --- the command -----------------------------------------------------------------------


def test_jobs_run_job_timeout_sets_it_and_jobs_status_shows_it():
    out = StringIO()
    call_command("jobs", "--json", "run", "timeouts.busy", "--job-timeout", "12", stdout=out)
    created = json.loads(out.getvalue())
    assert created["timeout_seconds"] == 12
    assert Job.objects.get(pk=created["id"]).timeout_seconds == 12
    status = StringIO()
    call_command("jobs", "status", str(created["id"]), stdout=status)
    assert "timeout 12 s" in status.getvalue()


def test_jobs_run_refuses_a_job_timeout_below_one():
    with pytest.raises(CommandError, match="must be 1 or more"):
        call_command("jobs", "run", "timeouts.busy", "--job-timeout", "0", stdout=StringIO())
    with pytest.raises(CommandError, match="timeout_seconds: timeout_seconds must be"):
        call_command("jobs", "run", "timeouts.busy", "--job-timeout", "90000", stdout=StringIO())
    assert not Job.objects.exists()


# --- the django.tasks backend ------------------------------------------------------------


def test_the_tasks_backend_takes_its_default_from_options_and_one_enqueue_from_job_options():
    assert Job.objects.get(pk=add.enqueue(1, 2).id).timeout_seconds is None
    with job_options(timeout_seconds=20):
        inner = add.enqueue(1, 2)
    assert Job.objects.get(pk=inner.id).timeout_seconds == 20
    backend = {"BACKEND": "jobs.tasks_backend.JobdeckBackend", "QUEUES": ["default"]}
    with override_settings(TASKS={"default": {**backend, "OPTIONS": {"TIMEOUT_SECONDS": 40}}}):
        assert Job.objects.get(pk=add.enqueue(1, 2).id).timeout_seconds == 40
        with job_options(timeout_seconds=5):
            assert Job.objects.get(pk=add.enqueue(1, 2).id).timeout_seconds == 5
    with job_options(timeout_seconds=0), pytest.raises(ValidationError):
        add.enqueue(1, 2)


def test_the_tasks_backend_check_refuses_a_bad_default_timeout():
    backend = JobdeckBackend("default", {"QUEUES": ["default"], "OPTIONS": {"TIMEOUT_SECONDS": 0}})
    assert [m.id for m in backend.check()] == ["jobdeck.E102"]


# --- system checks -------------------------------------------------------------------------


def test_the_system_check_refuses_a_bad_type_timeout_and_warns_at_django_q2s_timeout(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 60}

    class Bad(JobType):
        name = "timeouts.bad"
        timeout_seconds = 0

    class Long(JobType):
        name = "timeouts.long"
        timeout_seconds = 60

    registry.register(Bad)
    registry.register(Long)
    try:
        found = {(m.id, m.obj) for m in check_job_type_timeouts()}
    finally:
        registry.unregister("timeouts.bad")
        registry.unregister("timeouts.long")
    assert found == {("jobdeck.E010", Bad), ("jobdeck.W010", Long)}
    assert check_job_type_timeouts() == []


# --- the timer -------------------------------------------------------------------------------


def test_a_python_loop_is_interrupted_at_its_timeout_and_the_timer_is_given_back(timer_kept):
    budget = timeouts.Budget(0.3)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(JobTimedOut), timeouts.interrupting(budget):
        while True:
            pass
    assert 0.29 <= time.monotonic() - started < 1
    assert budget.timed_out


def test_a_handler_catching_exception_is_still_stopped():
    iterations_after = 0
    budget = timeouts.Budget(0.2)  # type: ignore[arg-type]
    with pytest.raises(JobTimedOut), timeouts.interrupting(budget):
        while True:
            try:
                time.sleep(0.01)
            except Exception:
                iterations_after += 1
    assert iterations_after == 0


def test_a_handler_that_swallows_the_interrupt_is_interrupted_again_and_still_times_out(
    monkeypatch,
):
    monkeypatch.setattr(timeouts, "REPEAT_SECONDS", 0.1)
    swallowed = 0
    with pytest.raises(JobTimedOut), timeouts.interrupting(timeouts.Budget(0.2)):  # type: ignore[arg-type]
        while swallowed < 3:
            try:
                time.sleep(5)
            except BaseException:
                swallowed += 1
    assert swallowed == 3


def test_django_q2s_own_timeout_around_it_keeps_its_handler_and_its_time():
    from django_q.exceptions import TimeoutException
    from django_q.timeout import TimeoutHandler

    with TimeoutHandler(30):
        outer = signal.getsignal(signal.SIGALRM)
        with timeouts.interrupting(timeouts.Budget(5)):
            assert 4 < signal.getitimer(signal.ITIMER_REAL)[0] <= 5
        assert signal.getsignal(signal.SIGALRM) == outer
        assert 29 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30
    # django-q2's deadline first: its own exception, raised by its own handler.
    with pytest.raises(TimeoutException), TimeoutHandler(1), interrupting(Budget(10)):
        time.sleep(5)


def test_a_spent_budget_stops_at_once_and_no_timeout_arms_nothing(timer_kept):
    spent = Budget(1, start=time.monotonic() - 2)
    with pytest.raises(JobTimedOut), interrupting(spent):
        pytest.fail("the block must not run")
    before, handler = signal.getitimer(signal.ITIMER_REAL), signal.getsignal(signal.SIGALRM)
    with timeouts.interrupting(timeouts.Budget(None)):
        assert timer_as_before(before, handler)


def in_a_thread(work) -> list[object]:
    """Run `work` in a thread (as a drain thread runs handlers); what it returned or raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return outcome


def busy_loop(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


def test_outside_the_main_thread_the_watchdog_interrupts_a_python_loop_at_its_deadline():
    budget = Budget(1, start=time.monotonic() - 0.8)  # 0.2 s left
    started = time.monotonic()

    def work() -> str:
        with interrupting(budget, job_id=7):
            return busy_loop(5)

    [outcome] = in_a_thread(work)
    assert isinstance(outcome, JobTimedOut) and str(outcome) == "timed out after 1 s"
    assert outcome.seconds == 1 and budget.timed_out
    assert 0.15 < time.monotonic() - started < 1.0
    assert timeouts.watchdog.watching() == 0


def test_outside_the_main_thread_a_swallowed_timeout_is_raised_again_and_still_counts():
    budget = Budget(1, start=time.monotonic() - 0.9)
    swallowed: list[str] = []

    def work() -> str:
        with interrupting(budget):
            for _ in range(2):
                try:
                    busy_loop(5)
                except BaseException as exc:  # a handler that swallows everything
                    swallowed.append(type(exc).__name__)
            return "returned anyway"

    [outcome] = in_a_thread(work)
    assert swallowed == ["JobTimedOut", "JobTimedOut"]  # again REPEAT_SECONDS later
    assert isinstance(outcome, JobTimedOut)


def test_outside_the_main_thread_nothing_is_raised_once_the_handler_returned_in_time():
    def work() -> str:
        with interrupting(Budget(1, start=time.monotonic() - 0.7)):
            busy_loop(0.1)
        return busy_loop(0.6)  # the worker's bookkeeping, past the deadline

    assert in_a_thread(work) == ["finished"]
    assert timeouts.watchdog.watching() == 0


def test_outside_the_main_thread_a_blocking_call_is_interrupted_when_it_returns():
    # An asynchronous exception waits for the C call (here a sleep) to come back.
    started = time.monotonic()

    def work() -> str:
        with interrupting(Budget(1, start=time.monotonic() - 0.9), job_id=7):
            time.sleep(0.4)
        return "finished"

    [outcome] = in_a_thread(work)
    assert isinstance(outcome, JobTimedOut)
    assert 0.4 <= time.monotonic() - started < 1.0


# --- the worker: fail, or retry ---------------------------------------------------------------


def test_a_job_past_its_timeout_is_interrupted_and_fails_timed_out(caplog, timer_kept):
    job = services.job_create(**BUSY, timeout_seconds=1)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="jobs.worker.execution"):
        runner.run_job(job.pk)
    assert time.monotonic() - started < 3
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.split("\n\n")[0] == "timed out after 1 s"
    assert "task 1 (work 1) timed out after 1 s; interrupted at:" in job.error
    task = job.tasks.get()
    assert task.status == TaskStatus.FAILED
    assert task.error.startswith("timed out after 1 s\n\n") and "JobTimedOut" in task.error
    assert JobLog.objects.filter(job=job, message="task 1 (work 1) timed out after 1 s").exists()
    assert "timed out after 1 s; its handler was interrupted" in caplog.text


def test_a_timed_out_job_with_attempts_left_is_requeued_with_backoff_then_fails():
    job = services.job_create(**BUSY, timeout_seconds=1, max_attempts=2)
    before = timezone.now()
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.attempts == 1
    assert job.error.startswith("timed out after 1 s")
    assert before + timedelta(seconds=5) <= job.run_after
    assert job.tasks.get().status == TaskStatus.FAILED

    Job.objects.filter(pk=job.pk).update(run_after=None)
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.FAILED, 2)
    assert job.error.startswith("timed out after 1 s")


def test_the_budget_runs_from_the_claim_across_the_jobs_tasks():
    # Two tasks of 0.7 s each: the first succeeds, the second is cut at 1 s in total.
    job = services.job_create(
        job_type="timeouts.busy",
        config={"seconds": 0.7, "tasks": 2, "sleep": True, "every": 100},
        timeout_seconds=1,
    )
    started = time.monotonic()
    runner.run_job(job.pk)
    assert time.monotonic() - started < 1.6
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert list(job.tasks.order_by("position").values_list("status", flat=True)) == [
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
    ]
    assert "task 2 (work 2) timed out after 1 s" in job.error


def test_a_job_within_its_timeout_completes_and_gives_the_timer_back(timer_kept):
    job = services.job_create(
        job_type="timeouts.busy", config={"seconds": 0.1, "sleep": True}, timeout_seconds=5
    )
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
