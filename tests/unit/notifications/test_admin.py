"""Rules in the admin: created and changed through the service, tested from their page."""

from __future__ import annotations

import pytest

from notifications import services as notify
from notifications.models import Delivery, NotificationRule
from tests.support.admin_helpers import client_for, texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")


def test_a_rule_is_added_in_the_admin_and_tested_from_its_page(admin_user, local_webhooks):
    client = client_for(admin_user)
    response = client.post(
        "/admin/notifications/notificationrule/add/",
        {
            "name": "hook",
            "event": "job.failed",
            "enabled": "on",
            "channel": "webhook",
            "url": "http://127.0.0.1:9/hook",
            "secret": "adm1n-key",
            "emails": "",
            "job_type": "",
            "queue": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = NotificationRule.objects.get()
    assert rule.secret == "adm1n-key" and rule.created_by == admin_user
    page = client.get(f"/admin/notifications/notificationrule/{rule.pk}/change/")
    assert page.status_code == 200
    assert "adm1n-key" not in page.content.decode()
    assert "Send a test notification" in page.content.decode()
    response = client.post(f"/admin/notifications/notificationrule/{rule.pk}/test/", follow=True)
    assert any("Test notification queued" in t for t in texts(response))
    delivery = Delivery.objects.get()
    assert delivery.event == "test"
    assert client.get(f"/admin/notifications/delivery/{delivery.pk}/change/").status_code == 200
    assert client.get("/admin/notifications/delivery/").status_code == 200


def test_a_host_outside_the_allow_list_is_refused_by_the_admin_form(admin_user):
    client = client_for(admin_user)
    response = client.post(
        "/admin/notifications/notificationrule/add/",
        {"name": "hook", "event": "job.failed", "channel": "webhook", "url": "http://x.test/"},
    )
    assert response.status_code == 200
    assert "JOBDECK_WEBHOOK_ALLOWED_HOSTS" in response.content.decode()
    assert not NotificationRule.objects.exists()


def test_changing_a_rule_without_a_secret_keeps_it(admin_user, local_webhooks):
    rule = notify.rule_create(
        name="hook", event="job.failed", channel="webhook", url="http://127.0.0.1:9/h", secret="k"
    )
    client = client_for(admin_user)
    response = client.post(
        f"/admin/notifications/notificationrule/{rule.pk}/change/",
        {
            "name": "hook renamed",
            "event": "job.finished",
            "enabled": "on",
            "channel": "webhook",
            "url": "http://127.0.0.1:9/h",
            "secret": "",
            "emails": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    rule.refresh_from_db()
    assert (rule.name, rule.event, rule.secret) == ("hook renamed", "job.finished", "k")
