"""The tasks.call carrier run by Jobdeck's runner in this process (no cluster)."""

from __future__ import annotations

import pytest
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.signals import task_finished, task_started
from django.test import override_settings
from django.urls import reverse

from jobs import runner, services
from jobs.models import Job, JobLog, JobStatus, TaskStatus
from tests.support import signal_probe
from tests.support.django_tasks import (
    add,
    async_add,
    fail,
    returns_object,
    returns_tuple,
    with_context,
)

pytestmark = pytest.mark.django_db

WORKER = "test-host:4242"


def run(result_id: str) -> Job:
    """Claim and execute the job behind `result_id` as a worker would."""
    claim = runner.claim(worker=WORKER, job_id=int(result_id))
    assert claim is not None, "the job was not runnable"
    runner.execute(claim)
    claim.job.refresh_from_db()
    return claim.job


def log_messages(result_id: str) -> list[str]:
    return list(
        JobLog.objects.filter(job_id=int(result_id))
        .exclude(message__startswith=signal_probe.PREFIX)
        .order_by("id")
        .values_list("message", flat=True)
    )


def test_a_successful_task_reports_its_return_value_times_attempts_and_worker():
    result = add.enqueue(2, 3)
    job = run(result.id)
    assert job.status == JobStatus.COMPLETED
    assert job.result == 5

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids == [WORKER]
    assert result.attempts == job.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == job.started_at
    assert result.errors == []


def test_the_task_functions_logging_becomes_the_jobs_log():
    result = add.enqueue(2, 3)
    run(result.id)
    assert log_messages(result.id) == [f"attempt 1 started on worker {WORKER}", "adding 2 and 3"]


def test_a_failing_task_records_the_exception_class_and_traceback():
    result = fail.enqueue("boom")
    job = run(result.id)
    assert job.status == JobStatus.FAILED
    assert "ValueError: boom" in job.error

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.finished_at is not None
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "raise ValueError(message)" in error.traceback
    assert error.traceback.rstrip().endswith("ValueError: boom")
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_an_async_task_function_runs_and_its_log_lines_are_kept():
    result = async_add.enqueue(4, 5)
    run(result.id)
    result.refresh()
    assert result.return_value == 9
    assert "async adding 4 and 5" in log_messages(result.id)
    line = JobLog.objects.get(job_id=int(result.id), message="async adding 4 and 5")
    assert line.level == 30


def test_a_context_task_receives_its_own_result_and_attempt():
    result = with_context.enqueue(7)
    run(result.id)
    result.refresh()
    assert result.return_value == {
        "id": result.id,
        "attempt": 1,
        "worker_ids": [WORKER],
        "x": 7,
    }


def test_the_return_value_goes_through_a_json_round_trip():
    result = returns_tuple.enqueue()
    run(result.id)
    assert default_task_backend.get_result(result.id).return_value == [1, "two"]


def test_a_return_value_that_is_not_json_fails_the_task():
    result = returns_object.enqueue()
    run(result.id)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"


def test_started_and_finished_signals_carry_the_running_and_final_results():
    seen = []

    def receiver(sender, task_result, signal, **kwargs):
        seen.append((signal, task_result.id, task_result.status, list(task_result.worker_ids)))

    task_started.connect(receiver)
    task_finished.connect(receiver)
    try:
        ok = add.enqueue(1, 1)
        run(ok.id)
        bad = fail.enqueue("no")
        run(bad.id)
    finally:
        task_started.disconnect(receiver)
        task_finished.disconnect(receiver)
    assert seen == [
        (task_started, ok.id, TaskResultStatus.RUNNING, [WORKER]),
        (task_finished, ok.id, TaskResultStatus.SUCCESSFUL, [WORKER]),
        (task_started, bad.id, TaskResultStatus.RUNNING, [WORKER]),
        (task_finished, bad.id, TaskResultStatus.FAILED, [WORKER]),
    ]


def test_a_signal_receiver_that_raises_does_not_fail_the_task():
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    task_started.connect(broken)
    try:
        result = add.enqueue(1, 2)
        job = run(result.id)
    finally:
        task_started.disconnect(broken)
    assert job.status == JobStatus.COMPLETED
    assert any("receiver bug" in m for m in log_messages(result.id))


def test_a_retried_task_counts_both_attempts_and_both_workers():
    result = fail.enqueue("once")
    run(result.id)
    services.job_retry(job=Job.objects.get(pk=int(result.id)), via="test")
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.worker_ids == [WORKER]

    runner.execute(runner.claim(worker="other-host:1", job_id=int(result.id)))
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.worker_ids == [WORKER, "other-host:1"]
    assert result.attempts == 2
    assert result.started_at < result.last_attempted_at


def test_a_cancelled_task_job_reports_failed_with_a_cancel_error():
    result = add.enqueue(1, 2)
    services.job_cancel(job=Job.objects.get(pk=int(result.id)), via="test")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "jobs.exceptions.JobCancelled"
    assert result.worker_ids == []


def test_the_worker_refuses_a_path_that_is_not_a_django_task():
    job = services.job_create(
        job_type="tasks.call",
        config={"task_path": "os.getcwd", "args": []},
        allow_internal=True,
    )
    job = run(str(job.pk))
    assert job.status == JobStatus.FAILED
    assert "'os.getcwd' is not a django.tasks.Task" in job.error
    assert job.tasks.get().status == TaskStatus.FAILED


def test_the_worker_refuses_an_alias_of_a_task():
    job = services.job_create(
        job_type="tasks.call",
        config={"task_path": "tests.unit.jobs.tasks_backend.test_worker_in_process.add"},
        allow_internal=True,
    )
    job = run(str(job.pk))
    assert job.status == JobStatus.FAILED
    assert "is an alias of the task 'tests.support.django_tasks.add'" in job.error


def test_automatic_retries_keep_every_attempts_error_and_worker():
    tasks = {
        "default": {"BACKEND": "jobs.tasks_backend.JobdeckBackend", "OPTIONS": {"MAX_ATTEMPTS": 2}}
    }
    with override_settings(TASKS=tasks, JOBDECK_RETRY_BACKOFF_SECONDS=0):
        result = fail.enqueue("again")
        run(result.id)
        result.refresh()
        assert result.status == TaskResultStatus.READY  # re-queued by the runner
        assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"]

        runner.execute(runner.claim(worker="other-host:2", job_id=int(result.id)))
        result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.worker_ids == [WORKER, "other-host:2"]
    assert result.attempts == 2
    assert len(result.errors) == 2
    assert all(e.traceback.rstrip().endswith("ValueError: again") for e in result.errors)


def test_a_task_job_shows_in_the_admin_with_its_task_path_and_log(admin_client, settings):
    settings.SECURE_SSL_REDIRECT = False
    result = add.enqueue(2, 3)
    run(result.id)

    page = admin_client.get(reverse("admin:jobs_job_change", args=[result.id]))
    assert page.status_code == 200
    assert b"tests.support.django_tasks.add" in page.content
    logs = admin_client.get(reverse("admin:jobs_job_logs", args=[result.id]), {"tail": 50})
    assert logs.status_code == 200
    assert "adding 2 and 3" in [line["message"] for line in logs.json()["lines"]]
    changelist = admin_client.get(reverse("admin:jobs_job_changelist"), {"q": "tasks.call"})
    assert f"/{result.id}/change/".encode() in changelist.content


def test_a_cancel_requested_before_the_function_starts_stops_it_from_running():
    result = add.enqueue(2, 3)
    claim = runner.claim(worker=WORKER, job_id=int(result.id))
    job = claim.job
    services.job_cancel(job=job, via="test")  # running: a cancel request

    runner.execute(claim)
    result.refresh()
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "jobs.exceptions.JobCancelled"
    assert "adding 2 and 3" not in log_messages(result.id)
