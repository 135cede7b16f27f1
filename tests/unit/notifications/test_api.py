"""/api/notification-rules/: create, read, change, test and delete rules; errors are 4xx JSON."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from jobs.models import AuditEvent, Job
from notifications import services as notify
from notifications.models import Delivery, NotificationRule
from tests.support.admin_helpers import grant

pytestmark = pytest.mark.django_db

URL = "/api/notification-rules/"


def webhook(**fields) -> dict:
    return {
        "name": "ops hook",
        "event": "job.failed",
        "channel": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "secret": "k3y-value",
        **fields,
    }


def test_a_webhook_rule_is_created_and_its_secret_is_write_only(api_client, local_webhooks, user):
    response = api_client.post(URL, webhook(job_type="demo.steps", queue="default"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["has_secret"] is True and "secret" not in body
    assert body["owner"] == user.username and body["job_type"] == "demo.steps"
    rule = NotificationRule.objects.get(pk=body["id"])
    assert rule.secret == "k3y-value" and rule.created_by == user
    assert "k3y-value" not in str(api_client.get(f"{URL}{rule.pk}/").json())
    event = AuditEvent.objects.get(target_type="notifications.notificationrule")
    assert "k3y-value" not in str(event.detail)


def test_an_email_rule_to_addresses_or_to_the_jobs_owner(api_client):
    response = api_client.post(
        URL,
        {"name": "mail", "event": "job.finished", "channel": "email", "emails": ["a@example.com"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    owner_only = {"name": "owner", "event": "job.failed", "channel": "email"}
    response = api_client.post(URL, {**owner_only, "email_job_owner": True}, format="json")
    assert response.status_code == 201, response.json()
    assert api_client.post(URL, {**owner_only, "name": "x"}, format="json").json() == {
        "emails": ["Give addresses, or mail the job's owner (email_job_owner)."]
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event": "job.exploded"}, "event"),
        ({"channel": "pigeon"}, "channel"),
        ({"url": "http://evil.example.com/x"}, "url"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": ""}, "url"),
        ({"emails": ["a@example.com"]}, "emails"),
        ({"job_type": "no.such.type"}, "job_type"),
        ({"queue": "nowhere"}, "queue"),
        ({"event": "queue.stalled"}, "stalled_minutes"),
        ({"stalled_minutes": 5}, "stalled_minutes"),
        ({"secret": "x" * 201}, "secret"),
        ({"name": ""}, "name"),
        ({"schedule": 999}, "schedule"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client, local_webhooks, fields, field):
    response = api_client.post(URL, webhook(**fields), format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not NotificationRule.objects.exists()


def test_a_duplicate_name_is_a_400_and_unknown_query_parameters_too(api_client, local_webhooks):
    assert api_client.post(URL, webhook(), format="json").status_code == 201
    assert "name" in api_client.post(URL, webhook(), format="json").json()
    response = api_client.get(f"{URL}?evnt=job.failed")
    assert response.status_code == 400 and "evnt" in response.json()


def test_users_see_their_own_rules_and_managers_all(api_client, local_webhooks, user, other_user):
    mine = notify.rule_create(user=user, **webhook(name="mine"))
    theirs = notify.rule_create(user=other_user, **webhook(name="theirs"))
    assert [r["name"] for r in api_client.get(URL).json()["results"]] == ["mine"]
    assert api_client.get(f"{URL}{theirs.pk}/").status_code == 404
    assert api_client.delete(f"{URL}{theirs.pk}/").status_code == 404
    boss = APIClient()
    boss.force_authenticate(grant(other_user, "manage_all_rules"))
    assert {r["name"] for r in boss.get(URL).json()["results"]} == {"mine", "theirs"}
    assert boss.patch(f"{URL}{mine.pk}/", {"enabled": False}, format="json").status_code == 200


def test_patch_changes_what_was_sent_and_an_empty_secret_keeps_the_stored_one(
    api_client, local_webhooks, user
):
    rule = notify.rule_create(user=user, **webhook())
    response = api_client.patch(
        f"{URL}{rule.pk}/", {"event": "job.finished", "secret": ""}, format="json"
    )
    assert response.status_code == 200, response.json()
    rule.refresh_from_db()
    assert rule.event == "job.finished" and rule.secret == "k3y-value"
    assert rule.url == "http://127.0.0.1:9/hook"
    response = api_client.put(f"{URL}{rule.pk}/", webhook(secret="n3w"), format="json")
    assert response.status_code == 200
    rule.refresh_from_db()
    assert rule.secret == "n3w" and rule.event == "job.failed"
    assert api_client.patch(f"{URL}{rule.pk}/", {"url": "x"}, format="json").status_code == 400


def test_a_rule_is_tested_and_deleted_through_the_api(api_client, local_webhooks, user):
    rule = notify.rule_create(user=user, **webhook())
    response = api_client.post(f"{URL}{rule.pk}/test/")
    assert response.status_code == 202
    delivery = Delivery.objects.get(pk=response.json()["id"])
    assert delivery.event == "test"
    assert Job.objects.get(pk=delivery.job_id).job_type == "notify.webhook"
    listed = api_client.get(f"{URL}{rule.pk}/deliveries/").json()["results"]
    assert [d["delivery_id"] for d in listed] == [str(delivery.delivery_id)]
    assert api_client.delete(f"{URL}{rule.pk}/").status_code == 204
    assert not NotificationRule.objects.exists()


def test_the_list_costs_the_same_queries_for_2_and_20_rules(api_client, local_webhooks, user):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = api_client.get(f"{URL}?page_size=100")
        assert response.status_code == 200
        return len(ctx.captured_queries)

    for i in range(2):
        notify.rule_create(user=user, **webhook(name=f"r{i}"))
    queries()  # the user's permissions are cached from the first request on
    two = queries()
    for i in range(2, 20):
        notify.rule_create(user=user, **webhook(name=f"r{i}"))
    assert queries() == two
    assert len(api_client.get(f"{URL}?page_size=100").json()["results"]) == 20


def test_anonymous_callers_get_a_401_and_notify_jobs_cannot_be_created_by_hand(api_client):
    assert APIClient().get(URL).status_code in (401, 403)
    response = api_client.post(
        "/api/jobs/", {"job_type": "notify.webhook", "config": {"delivery": 1}}, format="json"
    )
    assert response.status_code == 400 and "job_type" in response.json()
