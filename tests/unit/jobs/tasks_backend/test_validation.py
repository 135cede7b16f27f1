"""Enqueue-time validation and lookups, with Django's own exception types."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.tasks import TaskResultStatus, default_task_backend, task, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued
from django.test import override_settings
from django.utils import timezone
from django_q.models import OrmQ

from jobs import services
from jobs.models import AuditEvent, Job, JobStatus
from jobs.tasks_backend import JobdeckBackend
from tests.support.django_tasks import add, fail, with_context

pytestmark = pytest.mark.django_db

BACKEND = "jobs.tasks_backend.JobdeckBackend"


def jobdeck_tasks(**params) -> dict:
    return {"default": {"BACKEND": BACKEND, "QUEUES": ["default"], **params}}


def test_the_configured_default_backend_is_jobdeck_with_every_feature():
    backend = task_backends["default"]
    assert isinstance(backend, JobdeckBackend)
    assert backend.supports_defer and backend.supports_priority
    assert backend.supports_get_result and backend.supports_async_task


def test_enqueue_creates_a_pending_tasks_call_job_named_by_the_task_import_path():
    run_after = timezone.now() + timedelta(hours=1)
    result = add.using(priority=7, run_after=run_after).enqueue(2, b=3)

    job = Job.objects.get(pk=int(result.id))
    assert job.job_type == "tasks.call"
    assert job.status == JobStatus.PENDING
    assert job.priority == 7
    assert job.run_after == run_after
    assert job.config == {
        "task_path": "tests.support.django_tasks.add",
        "args": [2],
        "kwargs": {"b": 3},
        "queue_name": "default",
        "backend": "default",
        "takes_context": False,
    }
    assert list(job.tasks.values_list("name", flat=True)) == ["tests.support.django_tasks.add"]
    assert AuditEvent.objects.filter(job=job, via="tasks", action="created").exists()
    assert result.status == TaskResultStatus.READY
    assert result.task == add.using(priority=7, run_after=run_after)
    assert result.enqueued_at == job.queued_at
    assert result.started_at is None and result.finished_at is None
    assert result.args == [2] and result.kwargs == {"b": 3}
    assert result.worker_ids == [] and result.errors == []
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_enqueue_sends_task_enqueued_in_the_enqueuing_process():
    received = []

    def receiver(sender, task_result, **kwargs):
        received.append((sender, task_result.id, task_result.status))

    task_enqueued.connect(receiver)
    try:
        result = add.enqueue(1, 1)
    finally:
        task_enqueued.disconnect(receiver)
    assert received == [(JobdeckBackend, result.id, TaskResultStatus.READY)]


def test_get_result_reads_the_job_back_by_id():
    result = add.enqueue(1, 2)

    again = add.get_result(result.id)
    assert again.id == result.id
    assert again.task == add
    assert again.status == TaskResultStatus.READY
    assert again.args == [1, 2]
    assert default_task_backend.get_result(int(result.id)).id == result.id


def test_an_unknown_queue_name_is_refused_before_any_job_exists():
    with pytest.raises(InvalidTask, match="Queue 'reports' is not valid"):
        add.using(queue_name="reports")
    with override_settings(TASKS=jobdeck_tasks(QUEUES=["default", "reports"])):
        on_reports = add.using(queue_name="reports")
    # The same Task enqueued once the queue is gone from the setting: refused at enqueue.
    with pytest.raises(InvalidTask, match="Queue 'reports' is not valid"):
        on_reports.enqueue(1, 2)
    assert not Job.objects.exists()


def test_a_naive_run_after_is_refused():
    with pytest.raises(InvalidTask, match="aware datetime"):
        add.using(run_after=datetime(2030, 1, 1, 12, 0))


@pytest.mark.parametrize("priority", [101, -101])
def test_a_priority_outside_minus_100_to_100_is_refused(priority):
    with pytest.raises(InvalidTask, match="priority must be a whole number"):
        add.using(priority=priority)


def test_a_function_that_is_not_defined_at_module_level_is_refused():
    def inner() -> None:
        pass

    with pytest.raises(InvalidTask, match="module level"):
        task(inner)


def test_a_context_task_without_a_context_first_argument_is_refused():
    def no_context(x: int) -> int:
        return x

    no_context.__qualname__ = "no_context"  # looks module-level; still refused
    with pytest.raises(InvalidTask):
        task(takes_context=True)(no_context)


def test_arguments_that_are_not_json_serialisable_are_refused_and_nothing_is_created():
    with pytest.raises(TypeError, match="Unsupported type"):
        add.enqueue(object(), 1)
    with pytest.raises(TypeError, match="Unsupported type"):
        add.enqueue(1, b={"when": timezone.now()})
    with pytest.raises(ValueError, match="not JSON compliant"):
        add.enqueue(float("nan"), 1)
    assert not Job.objects.exists()


def test_arguments_are_stored_after_a_json_round_trip():
    result = add.enqueue((1, 2), b={"k": b"bytes", 3: None})
    assert result.args == [[1, 2]]
    assert result.kwargs == {"b": {"k": "bytes", "3": None}}
    assert add.get_result(result.id).kwargs == {"b": {"k": "bytes", "3": None}}


@pytest.mark.parametrize("result_id", ["999999", "not-a-number", "", None])
def test_an_unknown_result_id_raises_task_result_does_not_exist(result_id):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


def test_a_job_that_is_not_a_tasks_call_is_not_a_task_result():
    job = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(job.pk))


def test_a_result_of_another_task_raises_task_result_mismatch():
    result = add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        fail.get_result(result.id)


def test_the_carrier_type_cannot_be_created_through_the_front_doors():
    config = {"task_path": "tests.support.django_tasks.add", "args": [1, 2]}
    with pytest.raises(ValidationError, match="can only be created by Jobdeck itself"):
        services.job_create(job_type="tasks.call", config=config)


def test_the_carrier_config_refuses_a_task_path_that_is_not_a_dotted_name():
    with pytest.raises(ValidationError, match="task_path"):
        services.job_create(
            job_type="tasks.call",
            config={"task_path": "os.system('id')"},
            allow_internal=True,
        )


def test_a_takes_context_task_is_recorded_as_such():
    result = with_context.enqueue(5)
    assert Job.objects.get(pk=int(result.id)).config["takes_context"] is True


def test_a_queue_mapped_to_a_cluster_wakes_only_that_django_q2_cluster(
    django_capture_on_commit_callbacks,
):
    tasks = jobdeck_tasks(QUEUES=["default", "reports"])
    with (
        override_settings(TASKS=tasks, JOBDECK_QUEUE_CLUSTERS={"reports": "jobdeck-reports"}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = add.using(queue_name="reports").enqueue(1, 2)
    assert Job.objects.get(pk=int(result.id)).queue == "reports"
    assert set(OrmQ.objects.values_list("key", flat=True)) == {"jobdeck-reports"}


def test_the_backend_check_reports_a_queue_no_cluster_serves_and_unknown_options():
    backend = JobdeckBackend("default", {"QUEUES": ["default", "x"], "OPTIONS": {"TYPO": 1}})
    assert {m.id for m in backend.check()} == {"jobdeck.E101", "jobdeck.W101"}


def test_a_result_stays_readable_after_its_queue_is_removed_from_the_setting():
    with override_settings(
        TASKS=jobdeck_tasks(QUEUES=["default", "reports"]),
        JOBDECK_QUEUE_CLUSTERS={"reports": "jobdeck-reports"},
    ):
        result = add.using(queue_name="reports").enqueue(1, 2)
    again = default_task_backend.get_result(result.id)
    assert again.task.queue_name == "reports"
    assert again.status == TaskResultStatus.READY
