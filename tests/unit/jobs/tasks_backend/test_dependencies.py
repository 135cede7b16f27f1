"""job_options(depends_on=…, on_parent_failure=…): a task enqueued after other jobs."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.tasks import TaskResultStatus
from django.test import override_settings

from jobs import runner, services
from jobs.models import AuditEvent, Job, JobDependency, JobStatus
from jobs.tasks_backend import job_options
from tests.support.django_tasks import add, fail
from tests.unit.jobs.tasks_backend.test_worker_in_process import WORKER, run

pytestmark = pytest.mark.django_db


def test_a_task_enqueued_after_a_result_waits_for_it_then_runs():
    first = add.enqueue(1, 2)
    with job_options(depends_on=[first]):
        second = add.enqueue(3, 4)

    child = Job.objects.get(pk=int(second.id))
    assert child.waiting_on == 1 and child.on_parent_failure == "cancel"
    assert JobDependency.objects.filter(parent_id=int(first.id), child=child).exists()
    assert runner.claim(worker=WORKER, job_id=child.pk) is None  # waiting
    assert second.status == TaskResultStatus.READY
    event = AuditEvent.objects.get(job=child, via="tasks", action="created")
    assert event.detail["depends_on"] == [int(first.id)]

    run(first.id)
    assert run(second.id).status == JobStatus.COMPLETED
    second.refresh()
    assert second.status == TaskResultStatus.SUCCESSFUL and second.return_value == 7


def test_job_ids_are_accepted_as_parents_and_the_options_end_with_the_block():
    parent = services.job_create(job_type="demo.steps", config={"steps": 1})
    with job_options(depends_on=[parent.pk]):
        waiting = add.enqueue(1, 1)
    free = add.enqueue(1, 1)
    assert Job.objects.get(pk=int(waiting.id)).waiting_on == 1
    assert Job.objects.get(pk=int(free.id)).waiting_on == 0


def test_a_failed_parent_cancels_the_task_or_lets_it_run_with_on_parent_failure_run():
    broken = fail.enqueue("boom")
    with job_options(depends_on=[broken]):
        cancelled = add.enqueue(1, 1)
    with job_options(depends_on=[broken], on_parent_failure="run"):
        anyway = add.enqueue(2, 2)
    Job.objects.filter(pk=int(broken.id)).update(max_attempts=1)
    assert run(broken.id).status == JobStatus.FAILED

    cancelled.refresh()
    assert cancelled.status == TaskResultStatus.FAILED
    assert cancelled.errors[0].exception_class_path == "jobs.exceptions.JobCancelled"
    assert run(anyway.id).status == JobStatus.COMPLETED


def test_a_task_enqueued_after_a_parent_that_already_failed_is_cancelled_at_once():
    broken = fail.enqueue("boom")
    Job.objects.filter(pk=int(broken.id)).update(max_attempts=1)
    run(broken.id)
    with job_options(depends_on=[broken]):
        result = add.enqueue(1, 1)
    assert result.status == TaskResultStatus.FAILED
    assert Job.objects.get(pk=int(result.id)).status == JobStatus.CANCELLED


@pytest.mark.parametrize(
    "options, field",
    [
        ({"depends_on": [999_999]}, "depends_on"),
        ({"depends_on": ["x"]}, "depends_on"),
        ({"depends_on": 5}, "depends_on"),
        ({"on_parent_failure": "later"}, "on_parent_failure"),
    ],
)
def test_bad_dependency_options_are_refused_at_enqueue_naming_the_field(options, field):
    with job_options(**options), pytest.raises(ValidationError) as caught:
        add.enqueue(1, 1)
    assert field in caught.value.message_dict
    assert not Job.objects.filter(job_type="tasks.call").exists()


@override_settings(
    TASKS={
        "default": {"BACKEND": "jobs.tasks_backend.JobdeckBackend", "QUEUES": ["default"]},
        "dummy": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
    }
)
def test_a_result_of_another_backend_is_no_parent():
    other = add.using(backend="dummy").enqueue(1, 1)
    with job_options(depends_on=[other]), pytest.raises(ValidationError, match="not a Jobdeck"):
        add.enqueue(1, 1)
