"""A finished job becomes one delivery per matching rule, sent once by a notify.* job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from jobs import engine, queues, services
from jobs.models import Job, JobStatus, Task, TaskStatus
from jobs.worker import execution
from notifications import senders
from notifications import services as notify
from notifications.models import Delivery, Event
from tests.support.job_factories import make_job
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

SECRET = "hook-secret-123"


def run(job_id: int, capture) -> None:
    """Run this one job in-process (no drain), its after-commit hooks included."""
    Job.objects.filter(pk=job_id).update(run_after=None)
    with capture(execute=True):
        claim = engine.claim(worker="test:1", queues=queues.served_queues(), job_id=job_id)
        assert claim is not None, f"job #{job_id} is not runnable"
        execution.execute(claim)


def failing_job(**fields) -> Job:
    return services.job_create(
        job_type="demo.steps",
        config={"steps": 2, "delay": 0, "fail_at": 2, "fail_attempts": 10},
        **fields,
    )


def webhook_rule(url: str, **fields):
    return notify.rule_create(
        name=fields.pop("name", "hook"),
        event=fields.pop("event", Event.JOB_FAILED),
        channel="webhook",
        url=url,
        secret=SECRET,
        **fields,
    )


def email_rule(**fields):
    return notify.rule_create(
        name=fields.pop("name", "mail"),
        event=fields.pop("event", Event.JOB_FAILED),
        channel="email",
        emails=fields.pop("emails", ["ops@example.com"]),
        **fields,
    )


def test_a_failing_job_sends_one_email_and_one_signed_webhook_retried_after_a_500(
    local_webhooks, django_capture_on_commit_callbacks
):
    with Receiver([500, 200]) as hook:
        webhook_rule(hook.url)
        email_rule()
        job = failing_job()
        run(job.pk, django_capture_on_commit_callbacks)
        assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED

        deliveries = {d.channel: d for d in Delivery.objects.all()}
        assert set(deliveries) == {"email", "webhook"}
        web, email = deliveries["webhook"], deliveries["email"]
        assert web.source_job_id == email.source_job_id == job.pk

        run(email.job_id, django_capture_on_commit_callbacks)
        assert len(mail.outbox) == 1
        message = mail.outbox[0]
        assert message.to == ["ops@example.com"]
        assert f"job #{job.pk} demo.steps failed" in message.subject
        assert "task 2 (step 2) failed" in message.body

        run(web.job_id, django_capture_on_commit_callbacks)  # the receiver answers 500
        sender = Job.objects.get(pk=web.job_id)
        assert sender.status == JobStatus.PENDING and sender.attempts == 1
        web.refresh_from_db()
        assert web.sent_at is None and web.response_status == 500
        run(web.job_id, django_capture_on_commit_callbacks)  # then 200
        assert Job.objects.get(pk=web.job_id).status == JobStatus.COMPLETED

    assert len(hook.received) == 2
    first, second = hook.received
    assert first.body == second.body  # a retry sends the same delivery again
    assert second.headers[senders.DELIVERY_HEADER] == str(web.delivery_id)
    assert second.headers[senders.EVENT_HEADER] == "job.failed"
    assert senders.verify(SECRET, second.body, second.headers[senders.SIGNATURE_HEADER])
    assert not senders.verify("another key", second.body, second.headers[senders.SIGNATURE_HEADER])
    payload = second.json
    assert payload["event"] == "job.failed"
    assert payload["delivery_id"] == str(web.delivery_id)
    assert payload["job"]["id"] == job.pk and payload["job"]["status"] == "failed"
    assert SECRET not in second.body.decode()
    web.refresh_from_db()
    assert web.sent_at is not None and web.response_status == 200 and web.attempts == 2


def test_an_event_is_delivered_once_however_often_its_finish_is_reported(
    django_capture_on_commit_callbacks,
):
    rule = email_rule()
    job = failing_job()
    run(job.pk, django_capture_on_commit_callbacks)
    notify.jobs_finished([job.pk])  # a second process hearing of the same finish
    job.refresh_from_db()
    again = notify.record(rule, Event.JOB_FAILED, notify.job_event_key(job), {}, source_job=job)
    assert again is None
    assert notify.catch_up(now=timezone.now() + timedelta(minutes=1)) == 0
    assert Delivery.objects.count() == 1
    assert Job.objects.filter(job_type="notify.email").count() == 1


def test_a_job_retried_and_failing_again_is_a_new_event(django_capture_on_commit_callbacks):
    email_rule()
    job = failing_job()
    run(job.pk, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.job_retry(job=job)
    run(job.pk, django_capture_on_commit_callbacks)
    assert Delivery.objects.filter(source_job=job).count() == 2


def test_a_delivery_already_sent_is_not_sent_again_when_its_job_runs_again(
    django_capture_on_commit_callbacks,
):
    email_rule()
    job = failing_job()
    run(job.pk, django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    run(delivery.job_id, django_capture_on_commit_callbacks)
    # As if its job's completion was lost after the send: the task runs again.
    Job.objects.filter(pk=delivery.job_id).update(status=JobStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        services.job_retry(job=Job.objects.get(pk=delivery.job_id))
    Task.objects.filter(job_id=delivery.job_id).update(status=TaskStatus.PENDING)
    run(delivery.job_id, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    assert Job.objects.get(pk=delivery.job_id).result == {"sent": True, "already": True}


def test_events_follow_the_outcome_and_the_scope(
    user, other_user, django_capture_on_commit_callbacks
):
    email_rule(name="succeeded", event=Event.JOB_SUCCEEDED)
    email_rule(name="finished", event=Event.JOB_FINISHED)
    email_rule(name="failed of alice", event=Event.JOB_FAILED, user=user)
    email_rule(name="failed cleanup type", event=Event.JOB_FAILED, job_type="maintenance.cleanup")
    ok = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    mine = failing_job(user=user)
    theirs = failing_job(user=other_user)
    for job in (ok, mine, theirs):
        run(job.pk, django_capture_on_commit_callbacks)
    got = sorted(Delivery.objects.values_list("rule__name", "source_job_id"))
    assert got == sorted(
        [
            ("succeeded", ok.pk),
            ("finished", ok.pk),
            ("finished", mine.pk),
            ("finished", theirs.pk),
            ("failed of alice", mine.pk),  # bob's job is not alice's to see
        ]
    )


def test_a_cancelled_pending_job_and_a_swept_job_are_finished_events(
    django_capture_on_commit_callbacks,
):
    email_rule(event=Event.JOB_FINISHED)
    pending = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    with django_capture_on_commit_callbacks(execute=True):
        services.job_cancel(job=pending)
    lost = make_job(JobStatus.RUNNING)
    Job.objects.filter(pk=lost.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        services.sweep_stale_jobs()
    assert set(Delivery.objects.values_list("source_job_id", flat=True)) == {pending.pk, lost.pk}


def test_schedule_failed_needs_a_schedule_and_notify_jobs_raise_no_events(
    make_schedule, django_capture_on_commit_callbacks
):
    schedule = make_schedule()
    email_rule(name="sched", event=Event.SCHEDULE_FAILED)
    email_rule(name="any", event=Event.JOB_FINISHED, job_type="notify.email")
    plain = failing_job()
    scheduled = failing_job(schedule=schedule)
    for job in (plain, scheduled):
        run(job.pk, django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    assert (delivery.rule.name, delivery.source_job_id) == ("sched", scheduled.pk)
    run(delivery.job_id, django_capture_on_commit_callbacks)  # a finished notify.email job
    assert Delivery.objects.count() == 1


def test_secret_config_values_never_reach_a_payload(
    secret_type, django_capture_on_commit_callbacks
):
    email_rule(event=Event.JOB_FINISHED)
    job = services.job_create(job_type=secret_type, config={"token": "s3cr3t-value"})
    run(job.pk, django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get()
    assert "refused" in delivery.payload["job"]["error"]
    assert "s3cr3t-value" not in str(delivery.payload)
    assert delivery.payload["job"]["config"]["token"] == "********"


def test_the_catch_up_delivers_what_a_dead_process_did_not(django_capture_on_commit_callbacks):
    email_rule()
    job = failing_job()
    Job.objects.filter(pk=job.pk).update(run_after=None)
    claim = engine.claim(worker="test:1", queues=queues.served_queues(), job_id=job.pk)
    assert claim is not None
    execution.execute(claim)  # its after-commit hook never ran (as if the worker died)
    assert Delivery.objects.count() == 0
    later = timezone.now() + timedelta(seconds=30)
    with django_capture_on_commit_callbacks(execute=True):
        assert notify.catch_up(now=later) == 1
        assert notify.catch_up(now=later) == 0
    assert Delivery.objects.get().source_job_id == job.pk


def test_a_webhook_to_a_host_no_longer_allowed_or_redirecting_is_not_sent(
    local_webhooks, django_capture_on_commit_callbacks
):
    with Receiver([302]) as hook:
        rule = webhook_rule(hook.url)
        delivery = notify.rule_test(rule=rule)
        run(delivery.job_id, django_capture_on_commit_callbacks)
        delivery.refresh_from_db()
        assert delivery.response_status == 302 and delivery.sent_at is None
        local_webhooks.JOBDECK_WEBHOOK_ALLOWED_HOSTS = ["hooks.example.com"]
        run(delivery.job_id, django_capture_on_commit_callbacks)
        delivery.refresh_from_db()
        assert "not in JOBDECK_WEBHOOK_ALLOWED_HOSTS" in delivery.last_error
        assert len(hook.received) == 1


def test_a_stalled_queue_is_announced_once_per_oldest_job(django_capture_on_commit_callbacks):
    rule = email_rule(event=Event.QUEUE_STALLED, stalled_minutes=5)
    old = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    long_ago = timezone.now() - timedelta(minutes=10)
    Job.objects.filter(pk=old.pk).update(queued_at=long_ago, created_at=long_ago)
    services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})  # fresh
    with django_capture_on_commit_callbacks(execute=True):
        assert notify.check_stalled_queues() == 1
        assert notify.check_stalled_queues() == 0
    delivery = Delivery.objects.get(rule=rule)
    assert delivery.payload["queue"]["oldest_job_id"] == old.pk
    assert delivery.payload["queue"]["waiting_seconds"] >= 600
    run(delivery.job_id, django_capture_on_commit_callbacks)
    assert "queue default" in mail.outbox[0].subject


def test_release_apply_and_rollback_raise_their_events():
    applied = Job(pk=1, job_type="release.apply", status=JobStatus.COMPLETED, config={})
    rolled = Job(
        pk=2, job_type="release.apply", status=JobStatus.COMPLETED, config={"rollback_of": 1}
    )
    failed = Job(pk=3, job_type="release.apply", status=JobStatus.FAILED, config={})
    assert Event.RELEASE_APPLIED in notify.job_events(applied)
    assert Event.RELEASE_ROLLED_BACK in notify.job_events(rolled)
    assert Event.RELEASE_ROLLED_BACK not in notify.job_events(applied)
    assert not {Event.RELEASE_APPLIED, Event.RELEASE_ROLLED_BACK} & notify.job_events(failed)
