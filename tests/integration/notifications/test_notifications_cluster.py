"""With two real clusters: a failing job sends one email and one signed webhook, the
webhook retried after a 500, and no event is ever delivered twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobStatus
from notifications import senders
from notifications import services as notify
from notifications.models import Delivery
from tests.support.cluster import wait_until
from tests.support.webhook_receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "integration-hook-key"


def status_of(job_id: int | None) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


def test_a_failing_job_notifies_once_by_email_and_webhook_with_two_clusters(
    make_cluster, tmp_path, settings
):
    settings.JOBDECK_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    mail_dir = tmp_path / "mail"
    env = {
        "JOBDECK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "JOBDECK_NOTIFY_RULES_CACHE_SECONDS": "0",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    with Receiver([500, 200]) as hook:
        web_rule = notify.rule_create(
            name="hook", event="job.failed", channel="webhook", url=hook.url, secret=SECRET
        )
        mail_rule = notify.rule_create(
            name="mail", event="job.failed", channel="email", emails=["ops@example.com"]
        )
        first, second = make_cluster(**env), make_cluster(**env)
        job = services.job_create(
            job_type="demo.steps", config={"steps": 2, "delay": 0.2, "fail_at": 2}
        )
        wait_until(lambda: status_of(job.pk) == JobStatus.FAILED, 30, 0.1, "the job to fail")
        wait_until(lambda: Delivery.objects.count() == 2, 20, 0.1, "two deliveries")
        web = Delivery.objects.get(rule=web_rule)
        mail = Delivery.objects.get(rule=mail_rule)

        # Every other process hearing of the same finish, at once, records nothing more.
        def hear() -> None:
            try:
                notify.jobs_finished([job.pk])
            finally:
                connection.close()

        threads = [threading.Thread(target=hear) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert notify.catch_up(now=timezone.now() + timedelta(minutes=1)) == 0

        wait_until(
            lambda: status_of(web.job_id) == JobStatus.COMPLETED,
            30,
            0.1,
            f"the webhook job to complete:\n{first.output}\n{second.output}",
        )
        wait_until(lambda: status_of(mail.job_id) == JobStatus.COMPLETED, 30, 0.1, "the email")

    assert Delivery.objects.count() == 2
    assert Job.objects.filter(job_type__startswith="notify.").count() == 2
    sender = Job.objects.get(pk=web.job_id)
    assert sender.attempts == 2  # 500 first, then 200
    assert [r.headers[senders.DELIVERY_HEADER] for r in hook.received] == [str(web.delivery_id)] * 2
    for request in hook.received:
        assert senders.verify(SECRET, request.body, request.headers[senders.SIGNATURE_HEADER])
        assert request.json["job"]["id"] == job.pk
        assert SECRET not in request.body.decode()
    web.refresh_from_db()
    assert web.sent_at is not None and web.response_status == 200

    messages = list(mail_dir.iterdir())
    assert len(messages) == 1, [m.read_text()[:200] for m in messages]
    text = messages[0].read_text()
    assert "To: ops@example.com" in text
    assert f"job #{job.pk} demo.steps failed" in text
