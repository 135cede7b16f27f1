"""Every legal and illegal status transition through the services."""

from __future__ import annotations

import pytest

from jobs import engine, runner, services
from jobs.exceptions import IllegalTransition
from jobs.models import TRANSITIONS, Job, JobStatus, TaskStatus
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db

S = JobStatus


def test_the_transition_table_matches_the_design():
    assert {
        S.DRAFT: {S.PENDING},
        S.PENDING: {S.RUNNING, S.CANCELLED},
        S.RUNNING: {S.COMPLETED, S.FAILED, S.CANCELLED, S.PENDING},
        S.COMPLETED: set(),
        S.FAILED: {S.PENDING},
        S.CANCELLED: {S.PENDING},
    } == TRANSITIONS


def test_submitting_a_draft_makes_it_pending_and_records_who_did_it(user):
    job = make_job(S.DRAFT)
    job = services.job_submit(job=job, user=user, via="test")
    assert job.status == S.PENDING and job.queued_at is not None
    event = job.events.get()
    assert (event.action, event.actor, event.via) == ("submitted", user, "test")


@pytest.mark.parametrize("status", [S.PENDING, S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED])
def test_only_drafts_can_be_submitted(status):
    job = make_job(status)
    with pytest.raises(IllegalTransition, match=f"cannot submit job #{job.pk}: it is {status}"):
        services.job_submit(job=job)
    assert Job.objects.get(pk=job.pk).status == status


def test_cancelling_a_pending_job_cancels_it_at_once_and_it_never_runs():
    job = make_job(S.PENDING)
    job = services.job_cancel(job=job, via="test")
    assert job.status == S.CANCELLED and job.finished_at is not None
    assert set(job.tasks.values_list("status", flat=True)) == {TaskStatus.SKIPPED}
    assert runner.claim(worker="w", job_id=job.pk) is None
    runner.run_job(job.pk)
    assert Job.objects.get(pk=job.pk).status == S.CANCELLED


def test_cancelling_a_running_job_requests_the_cancel_and_it_ends_cancelled_at_a_boundary():
    job = services.job_create(job_type="demo.steps", config={"steps": 3, "delay": 0})
    claimed = runner.claim(worker="w")
    assert claimed.job.pk == job.pk
    services.job_cancel(job=job)
    assert Job.objects.get(pk=job.pk).status == S.RUNNING
    assert Job.objects.get(pk=job.pk).cancel_requested_at is not None

    assert runner.execute(claimed) == S.CANCELLED
    job.refresh_from_db()
    assert job.status == S.CANCELLED and job.finished_at is not None
    # The first task ran (a claim is fresh); the cancel is honoured before the second.
    assert list(job.tasks.values_list("status", flat=True)) == [
        TaskStatus.SUCCEEDED,
        TaskStatus.SKIPPED,
        TaskStatus.SKIPPED,
    ]


def test_a_second_cancel_of_a_running_job_keeps_the_first_request_time():
    job = make_job(S.RUNNING)
    first = services.job_cancel(job=job).cancel_requested_at
    assert services.job_cancel(job=job).cancel_requested_at == first


@pytest.mark.parametrize("status", [S.DRAFT, S.COMPLETED, S.FAILED, S.CANCELLED])
def test_finished_jobs_and_drafts_cannot_be_cancelled(status):
    job = make_job(status)
    with pytest.raises(IllegalTransition, match=f"it is {status}"):
        services.job_cancel(job=job)
    assert Job.objects.get(pk=job.pk).status == status


@pytest.mark.parametrize("status", [S.FAILED, S.CANCELLED])
def test_failed_and_cancelled_jobs_can_be_retried(status, user):
    job = make_job(status)
    job = services.job_retry(job=job, user=user, via="test")
    assert job.status == S.PENDING
    assert job.finished_at is None and job.error == ""
    assert job.events.get().action == "retried"


@pytest.mark.parametrize("status", [S.DRAFT, S.PENDING, S.RUNNING, S.COMPLETED])
def test_other_jobs_cannot_be_retried(status):
    job = make_job(status)
    with pytest.raises(IllegalTransition, match=f"cannot retry job #{job.pk}: it is {status}"):
        services.job_retry(job=job)
    assert Job.objects.get(pk=job.pk).status == status


def test_retry_with_a_corrected_config_validates_it_and_records_the_change():
    job = make_job(S.FAILED, steps=2)
    with pytest.raises(Exception, match="steps"):
        services.job_retry(job=job, config={"steps": -1})
    assert Job.objects.get(pk=job.pk).status == S.FAILED

    job = services.job_retry(job=job, config={"steps": 4, "delay": 0})
    assert job.config["steps"] == 4
    assert job.tasks.count() == 4 and job.progress_total == 4
    change = job.events.get().detail["config"]
    assert change["old"]["steps"] == 2 and change["new"]["steps"] == 4


def test_the_runner_claims_a_pending_job_only_once():
    job = make_job(S.PENDING)
    assert runner.claim(worker="a", job_id=job.pk).job.pk == job.pk
    assert runner.claim(worker="b", job_id=job.pk) is None
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts) == (S.RUNNING, "a", 1)


def test_a_redelivered_message_for_a_finished_job_does_nothing():
    job = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    runner.run_job(job.pk)
    job.refresh_from_db()
    finished_at, attempts = job.finished_at, job.attempts
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert (job.status, job.finished_at, job.attempts) == (S.COMPLETED, finished_at, attempts)


def test_finishing_a_job_that_another_actor_already_finished_is_refused_quietly():
    job = make_job(S.RUNNING)
    engine.transition(job.pk, action="fail", expected=[S.RUNNING], to=S.FAILED)
    completion = engine.Completion(job.pk, job.attempts, None, None, None, 0)
    assert engine.complete(completion, []) is False
    assert Job.objects.get(pk=job.pk).status == S.FAILED


def test_retry_cannot_change_the_config_of_a_type_only_jobdeck_may_create():
    from django.core.exceptions import ValidationError
    from rest_framework import serializers

    from jobs import registry

    class CarrierConfig(serializers.Serializer):
        target = serializers.CharField()

    class Carrier(registry.JobType):
        name = "test.carrier"
        user_creatable = False
        config_serializer = CarrierConfig

        def run(self, ctx):
            return None

    registry.register(Carrier)
    try:
        job = services.job_create(
            job_type="test.carrier", config={"target": "a"}, allow_internal=True
        )
        Job.objects.filter(pk=job.pk).update(status=S.FAILED)  # as if it had run and failed
        with pytest.raises(ValidationError, match="cannot be changed"):
            services.job_retry(job=job, config={"target": "b"})
        assert Job.objects.get(pk=job.pk).status == S.FAILED
    finally:
        registry.unregister("test.carrier")
