"""The public django.tasks API end to end, on a real qcluster."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.signals import task_enqueued
from django.utils import timezone

from jobs.models import Job, JobLog, JobStatus
from tests.support import signal_probe
from tests.support.cluster import wait_until
from tests.support.django_tasks import add, async_add, fail, slow, with_context

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The cluster's workers import the probe, whose receivers log each signal they get.
PROBE = {"JOBDECK_JOBTYPE_MODULES": "tests.support.signal_probe"}


def wait_for(result: TaskResult, status: TaskResultStatus, timeout: float = 30) -> None:
    def reached() -> bool:
        result.refresh()
        return result.status == status or (result.is_finished and status != result.status)

    wait_until(reached, timeout, 0.05, f"task {result.id} to be {status}")
    assert result.status == status, Job.objects.get(pk=int(result.id)).error


def pid_of(worker_id: str) -> int:
    return int(worker_id.rsplit(":", 1)[1])


def test_a_task_runs_on_the_cluster_and_the_signals_fire_where_django_says(make_cluster):
    cluster = make_cluster(**PROBE)
    enqueued = []

    def on_enqueued(sender, task_result, **kwargs):
        enqueued.append((task_result.id, task_result.status, os.getpid()))

    task_enqueued.connect(on_enqueued)
    try:
        result = add.enqueue(2, 3)
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert enqueued == [(result.id, TaskResultStatus.READY, os.getpid())]

    wait_for(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == 5
    assert result.attempts == 1
    [worker] = result.worker_ids
    pid = pid_of(worker)
    assert pid in cluster.worker_pids() and pid != os.getpid()
    assert result.enqueued_at <= result.started_at <= result.finished_at

    job = Job.objects.get(pk=int(result.id))
    assert (job.job_type, job.status, job.worker) == ("tasks.call", JobStatus.COMPLETED, worker)
    logs = list(JobLog.objects.filter(job=job).order_by("id").values_list("message", flat=True))
    # task_finished is sent before the runner's final UPDATE, so its line is there now.
    assert logs == [
        f"attempt 1 started on worker {worker}",
        f"{signal_probe.PREFIX} task_started RUNNING pid={pid}",
        "adding 2 and 3",
        f"{signal_probe.PREFIX} task_finished SUCCESSFUL pid={pid}",
    ]


def test_a_failing_task_is_failed_with_its_exception_class_and_traceback(make_cluster):
    make_cluster(**PROBE)
    result = fail.enqueue("boom")

    wait_for(result, TaskResultStatus.FAILED)
    [error] = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.rstrip().endswith("ValueError: boom")
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    job = Job.objects.get(pk=int(result.id))
    assert job.status == JobStatus.FAILED and "ValueError: boom" in job.error
    assert JobLog.objects.filter(
        job=job, message__startswith=f"{signal_probe.PREFIX} task_finished FAILED"
    ).exists()


def test_a_deferred_task_does_not_start_before_run_after(make_cluster):
    make_cluster()
    run_after = timezone.now() + timedelta(seconds=3)
    result = slow.using(run_after=run_after).enqueue(0, "late")

    while timezone.now() < run_after - timedelta(seconds=0.3):
        result.refresh()
        assert result.status == TaskResultStatus.READY
        time.sleep(0.1)
    wait_for(result, TaskResultStatus.SUCCESSFUL, timeout=30)
    assert result.return_value == "late"
    assert result.started_at >= run_after
    assert result.task.run_after == run_after


def test_waiting_tasks_start_in_priority_order(make_cluster):
    make_cluster(Q_WORKERS="1")
    blocker = slow.enqueue(1.5, "blocker")
    wait_for(blocker, TaskResultStatus.RUNNING)
    # The only worker is busy: these wait, then its drain loop claims by priority.
    low = slow.using(priority=-10).enqueue(0, "low")
    high = slow.using(priority=50).enqueue(0, "high")
    mid = slow.using(priority=10).enqueue(0, "mid")

    results = [blocker, low, high, mid]
    for result in results:
        wait_for(result, TaskResultStatus.SUCCESSFUL)
    order = [r.return_value for r in sorted(results, key=lambda r: r.started_at)]
    assert order == ["blocker", "high", "mid", "low"]


def test_a_context_task_sees_its_own_result_on_the_worker(make_cluster):
    make_cluster()
    result = with_context.enqueue(7)

    wait_for(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == {
        "id": result.id,
        "attempt": 1,
        "worker_ids": result.worker_ids,
        "x": 7,
    }


def test_an_async_task_function_runs_on_the_cluster(make_cluster):
    make_cluster()
    result = async_to_sync(async_add.aenqueue)(4, 5)

    wait_for(result, TaskResultStatus.SUCCESSFUL)
    assert result.return_value == 9
    assert JobLog.objects.filter(job_id=int(result.id), message="async adding 4 and 5").exists()


def test_a_result_refreshes_while_the_task_runs(make_cluster):
    make_cluster()
    result = slow.enqueue(2, "done")

    wait_for(result, TaskResultStatus.RUNNING)
    assert result.started_at is not None and result.finished_at is None
    assert len(result.worker_ids) == 1
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    fetched = async_to_sync(slow.aget_result)(result.id)
    assert fetched.status == TaskResultStatus.RUNNING
    assert fetched.worker_ids == result.worker_ids

    def finished() -> bool:
        async_to_sync(result.arefresh)()
        return result.is_finished

    wait_until(finished, 30, 0.1, "the task to finish")
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == "done"
    assert result.finished_at >= result.started_at + timedelta(seconds=2)
