"""The schedule admin never shows a secret config value, and a view-only user can
open a schedule at all.

The findings: a schedule's secret config field was shown in clear in its admin
change form (the API masked it); a view-only staff user got a 500 on every
schedule's change page (`KeyError: 'cron'`).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework import serializers

from jobs import registry
from scheduler import services
from scheduler.models import Schedule

pytestmark = pytest.mark.django_db

SECRET = "hunter2-\\-token"


@pytest.fixture
def secret_type():
    class Config(serializers.Serializer):
        token = serializers.CharField()
        region = serializers.CharField(default="eu")

    @registry.register
    class Notify(registry.JobType):
        name = "test.notify"
        config_serializer = Config
        secret_fields = ("token",)

    yield Notify
    registry.unregister("test.notify")


@pytest.fixture
def schedule(secret_type, user) -> Schedule:
    return services.schedule_create(
        name="nightly notify",
        job_type="test.notify",
        config={"token": SECRET, "region": "eu"},
        kind="daily",
        time="02:30",
        user=user,
    )


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1")


@pytest.fixture
def view_only(django_user_model):
    """Staff holding every view_* permission, nothing else."""
    u = django_user_model.objects.create_user("vera", password="vera-pass-1", is_staff=True)
    u.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return u


def form_data(schedule: Schedule, **changes) -> dict:
    data = {
        "name": schedule.name,
        "job_type": schedule.job_type,
        "config": '{"token": "********", "region": "eu"}',
        "release": "",
        "enabled": "on",
        "kind": schedule.kind,
        "interval_minutes": "",
        "time": "02:30",
        "cron": "",
        "timezone": "UTC",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }
    data.update(changes)
    return data


def test_the_change_form_shows_the_secret_masked(root, schedule):
    page = client_for(root).get(f"/admin/scheduler/schedule/{schedule.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html and "hunter2" not in html
    assert "********" in html


def test_saving_the_unchanged_mask_keeps_the_stored_secret(root, schedule):
    response = client_for(root).post(
        f"/admin/scheduler/schedule/{schedule.pk}/change/",
        form_data(schedule, config='{"token": "********", "region": "us"}'),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert schedule.config == {"token": SECRET, "region": "us"}


def test_a_new_secret_replaces_the_stored_one(root, schedule):
    client_for(root).post(
        f"/admin/scheduler/schedule/{schedule.pk}/change/",
        form_data(schedule, config='{"token": "new-one", "region": "eu"}'),
    )

    schedule.refresh_from_db()
    assert schedule.config["token"] == "new-one"


def test_a_view_only_user_opens_a_schedule_and_sees_no_secret(view_only, schedule):
    page = client_for(view_only).get(f"/admin/scheduler/schedule/{schedule.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html and "hunter2" not in html
    assert "nightly notify" in html


def test_the_api_round_trip_of_a_masked_config_keeps_the_secret(root, schedule):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(root)
    shown = client.get(f"/api/schedules/{schedule.pk}/").json()["config"]
    assert shown == {"token": "********", "region": "eu"}

    response = client.patch(
        f"/api/schedules/{schedule.pk}/", {"config": {**shown, "region": "us"}}, format="json"
    )

    assert response.status_code == 200, response.json()
    schedule.refresh_from_db()
    assert schedule.config == {"token": SECRET, "region": "us"}
