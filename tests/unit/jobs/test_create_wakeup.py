"""One-by-one creation: the job, its tasks and its wake-up message, all or nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from jobs import broker, registry, services
from jobs.models import AuditEvent, Job, JobStatus, Task, TaskStatus

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


def test_with_the_orm_broker_the_wakeup_is_written_with_the_job_and_rolls_back_with_it(
    django_capture_on_commit_callbacks,
):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(Rollback),
        transaction.atomic(),
    ):
        job = services.job_create(job_type="demo.steps", config={"steps": 1})
        message = OrmQ.objects.get()  # in the job's transaction, not after it
        task = SignedPackage.loads(message.payload)
        assert (task["func"], task["args"]) == (broker.RUNNER, (job.pk,))
        assert message.key == "jobdeck" and message.lock <= timezone.now()
        raise Rollback
    assert callbacks == []
    assert not OrmQ.objects.exists() and not Job.objects.exists() and not Task.objects.exists()


def test_with_a_broker_elsewhere_the_wakeup_is_sent_only_after_the_commit(
    monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(Conf, "ORM", None)  # e.g. Redis, or the ORM broker on another database
    sent: list[Any] = []
    monkeypatch.setattr(
        broker, "enqueue_wakeup", lambda job_id=None, queue="default": sent.append(job_id)
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = services.job_create(job_type="demo.steps", config={"steps": 1})
        assert sent == []
    assert len(callbacks) == 1 and sent == [job.pk]


def test_in_sync_mode_the_wakeup_waits_for_the_commit(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)  # it would run the job before the job is committed
    assert not broker.wakeup_in_transaction("default")


def test_a_failing_wakeup_insert_fails_the_whole_creation(monkeypatch):
    def broken(job_id=None, queue="default"):
        raise DatabaseError("broker table is gone")

    monkeypatch.setattr(broker, "enqueue_wakeup", broken)
    with pytest.raises(DatabaseError):
        services.job_create(job_type="demo.steps", config={"steps": 1})
    assert not Job.objects.exists() and not Task.objects.exists()


def test_any_other_wakeup_error_is_logged_and_the_job_is_kept(monkeypatch, caplog):
    def broken(job_id=None, queue="default"):
        raise ValueError("cannot sign")

    monkeypatch.setattr(broker, "enqueue_wakeup", broken)
    job = services.job_create(job_type="demo.steps", config={"steps": 1})
    assert Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).exists()
    assert f"wake-up of job {job.pk}" in caplog.text


def test_the_created_job_and_tasks_are_what_save_and_bulk_create_would_write(user):
    run_after = timezone.now()
    job = services.job_create(
        job_type="demo.steps",
        config={"steps": 3, "delay": 0.5},
        user=user,
        via="api",
        priority=5,
        max_attempts=2,
        run_after=run_after,
    )
    assert job.pk and not job._state.adding and job._state.db == "default"
    stored = Job.objects.get(pk=job.pk)
    assert (stored.job_type, stored.status, stored.created_by_id, stored.priority) == (
        "demo.steps",
        JobStatus.PENDING,
        user.pk,
        5,
    )
    assert stored.config == job.config and stored.config["steps"] == 3
    assert (stored.max_attempts, stored.run_after, stored.progress_total) == (2, run_after, 3)
    assert stored.created_at == stored.queued_at == job.created_at
    assert (stored.result, stored.error, stored.analysis, stored.attempts) == (None, "", None, 0)
    tasks = list(Task.objects.filter(job=job).order_by("position").values())
    assert [(t["position"], t["name"], t["status"]) for t in tasks] == [
        (1, "step 1", TaskStatus.PENDING),
        (2, "step 2", TaskStatus.PENDING),
        (3, "step 3", TaskStatus.PENDING),
    ]
    assert {(t["result"], t["error"], t["attempts"], t["started_at"]) for t in tasks} == {
        (None, "", 0, None)
    }
    assert AuditEvent.objects.filter(job=job, actor=user, via="api").count() == 1


def test_a_draft_keeps_its_analysis_state_and_sends_no_wakeup():
    job = services.job_create(job_type="demo.steps", config={"steps": 1}, draft=True)
    stored = Job.objects.get(pk=job.pk)
    assert stored.status == JobStatus.DRAFT and stored.analysis == {"state": "pending"}
    assert stored.queued_at is None and not OrmQ.objects.exists()


def test_a_job_with_many_tasks_gets_every_task_in_order():
    class Long(registry.JobType):
        name = "test.long"

        def tasks(self, config):
            return [f"part {i}" for i in range(1, 1201)]

    registry.register(Long)
    try:
        job = services.job_create(job_type="test.long")
    finally:
        registry.unregister("test.long")
    names = list(Task.objects.filter(job=job).order_by("position").values_list("name", flat=True))
    assert names == [f"part {i}" for i in range(1, 1201)]
    assert Job.objects.get(pk=job.pk).progress_total == 1200


def test_a_config_for_a_type_without_config_fields_is_validated_as_before():
    class Bare(registry.JobType):
        name = "test.bare"

    registry.register(Bare)
    try:
        jt = registry.get("test.bare")
        for config in (None, {}, {"unknown": 1}):
            clean = services.validated_type_and_config("test.bare", config)[1]
            assert clean == registry.validate_config(jt, config) == {}
        for config in ([], "x", 3):
            with pytest.raises(ValidationError) as err:
                services.validated_type_and_config("test.bare", config)
            assert list(err.value.message_dict) == ["config"]
    finally:
        registry.unregister("test.bare")


def test_the_broker_is_made_once_per_cluster():
    assert broker._broker("jobdeck") is broker._broker("jobdeck")
    assert broker._broker("jobdeck") is not broker._broker("jobdeck-reports")


def test_a_job_for_an_unsaved_release_is_refused_as_save_would():
    from releases.models import Release

    class Needy(registry.JobType):
        name = "test.needy"
        requires_release = True

    registry.register(Needy)
    try:
        with pytest.raises(ValueError, match="unsaved related object"):
            services.job_create(job_type="test.needy", release=Release())
    finally:
        registry.unregister("test.needy")
    assert not Job.objects.exists() and not OrmQ.objects.exists()
