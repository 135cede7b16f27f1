"""A schedule's timeout_seconds: validated, and carried by every job it makes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from jobs import services as job_services
from jobs.models import Job
from scheduler import services
from tests.support.schedule_fixtures import NOW

pytestmark = pytest.mark.django_db


def test_a_schedules_timeout_goes_to_the_jobs_it_fires_and_runs_now(make_schedule):
    schedule = make_schedule(timeout_seconds=90)
    services.fire_due_schedules(now=NOW + timedelta(minutes=1))
    services.schedule_run_now(schedule=schedule)
    assert list(Job.objects.values_list("timeout_seconds", flat=True)) == [90, 90]


def test_without_a_timeout_its_jobs_take_their_types_default(make_schedule):
    schedule = make_schedule()
    assert schedule.timeout_seconds is None
    assert services.schedule_run_now(schedule=schedule).timeout_seconds is None


@pytest.mark.parametrize("bad", [0, 86_401, 1.5, "x"])
def test_a_bad_timeout_is_refused_on_create_and_on_update(make_schedule, bad):
    with pytest.raises(ValidationError) as err:
        make_schedule(timeout_seconds=bad)
    assert err.value.message_dict == {"timeout_seconds": [job_services.TIMEOUT_ERROR]}
    schedule = make_schedule()
    with pytest.raises(ValidationError):
        services.schedule_update(schedule=schedule, timeout_seconds=bad)


def test_changing_the_timeout_is_audited(make_schedule, user):
    schedule = make_schedule()
    services.schedule_update(schedule=schedule, user=user, timeout_seconds=30)
    schedule.refresh_from_db()
    assert schedule.timeout_seconds == 30
    event = job_services.AuditEvent.objects.filter(action="changed").get()
    assert event.detail["changes"] == {"timeout_seconds": {"old": None, "new": 30}}


def test_the_api_sets_shows_and_validates_it(api_client, user):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_schedule", "change_schedule"])
    )
    body = {
        "name": "nightly",
        "job_type": "demo.steps",
        "config": {"steps": 1},
        "kind": "interval",
        "interval_minutes": 5,
    }
    created = api_client.post("/api/schedules/", {**body, "timeout_seconds": 120}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["timeout_seconds"] == 120
    pk = created.json()["id"]
    bad = api_client.patch(f"/api/schedules/{pk}/", {"timeout_seconds": 0}, format="json")
    assert bad.status_code == 400
    assert bad.json() == {"timeout_seconds": [job_services.TIMEOUT_ERROR]}
    cleared = api_client.patch(f"/api/schedules/{pk}/", {"timeout_seconds": None}, format="json")
    assert cleared.json()["timeout_seconds"] is None


def test_the_admin_sets_it_under_policies_and_refuses_a_bad_one(django_user_model):
    from django.test import Client
    from django.urls import reverse

    from scheduler.models import Schedule

    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "x"))
    data = {
        "name": "hourly",
        "job_type": "demo.steps",
        "config": '{"steps": 1, "delay": 0}',
        "kind": "interval",
        "interval_minutes": "60",
        "timezone": "UTC",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }
    add = reverse("admin:scheduler_schedule_add")
    page = client.get(add).content.decode()
    assert 'name="timeout_seconds"' in page
    refused = client.post(add, {**data, "timeout_seconds": "0"})
    assert "timeout_seconds" in refused.context["adminform"].form.errors
    response = client.post(add, {**data, "timeout_seconds": "300"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Schedule.objects.get().timeout_seconds == 300
