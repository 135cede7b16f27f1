"""The schedules admin: list toggle, actions, change page preview and history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs.models import Job
from scheduler import services
from scheduler.models import Schedule

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:scheduler_schedule_changelist"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1")


@pytest.fixture
def client_(admin_user) -> Client:
    c = Client()
    c.force_login(admin_user)
    return c


@pytest.fixture
def viewer_client(django_user_model) -> Client:
    """Staff who may only view schedules."""
    u = django_user_model.objects.create_user("vic", password="vic-pass-123", is_staff=True)
    u.user_permissions.add(
        Permission.objects.get(codename="view_schedule", content_type__app_label="scheduler")
    )
    c = Client()
    c.force_login(u)
    return c


def action(client: Client, name: str, schedules: list[Schedule]):
    return client.post(
        reverse(CHANGELIST),
        {"action": name, "_selected_action": [s.pk for s in schedules]},
        follow=True,
    )


def test_the_changelist_shows_next_run_in_words_and_the_last_status(client_, make_schedule):
    schedule = make_schedule(
        kind="daily", time="09:00", timezone="Europe/Paris", now=timezone.now()
    )
    services.schedule_run_now(schedule=schedule)

    response = client_.get(reverse(CHANGELIST))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Every day at 09:00 (Europe/Paris)" in html
    assert ">in " in html and ("CET</span>" in html or "CEST</span>" in html)
    assert 'class="jd-badge jd-pending"' in html


def test_the_changelist_costs_the_same_queries_for_5_and_50_schedules(client_, make_schedule):
    def make(count: int) -> None:
        for _ in range(count):
            services.schedule_run_now(schedule=make_schedule(now=timezone.now()))

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client_.get(reverse(CHANGELIST)).status_code == 200
        return len(ctx.captured_queries)

    make(5)
    five = queries()
    make(45)
    fifty = queries()

    assert five == fifty


def test_the_enabled_column_toggles_through_the_service(client_, make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=10, now=timezone.now())
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000",
        "form-0-id": str(schedule.pk),
        "_save": "Save",
    }  # no form-0-enabled: the box is unticked

    response = client_.post(reverse(CHANGELIST), data)

    assert response.status_code == 302
    assert Schedule.objects.get(pk=schedule.pk).enabled is False

    client_.post(reverse(CHANGELIST), {**data, "form-0-enabled": "on"})
    schedule = Schedule.objects.get(pk=schedule.pk)
    assert schedule.enabled is True and schedule.next_run_at > timezone.now()


def test_enable_and_disable_actions_report_counts(client_, make_schedule):
    a, b = make_schedule(now=timezone.now()), make_schedule(now=timezone.now())

    response = action(client_, "disable_schedules", [a, b])
    assert "2 schedules disabled." in response.content.decode()
    assert not Schedule.objects.filter(enabled=True).exists()

    response = action(client_, "enable_schedules", [a])
    assert "1 schedule enabled." in response.content.decode()
    assert list(Schedule.objects.filter(enabled=True)) == [a]


def test_the_run_now_action_creates_one_job_per_schedule_without_moving_next_run(
    client_, make_schedule
):
    a, b = make_schedule(now=timezone.now()), make_schedule(now=timezone.now())
    before = {s.pk: s.next_run_at for s in (a, b)}

    response = action(client_, "run_schedules_now", [a, b])

    assert "2 jobs created" in response.content.decode()
    assert sorted(Job.objects.values_list("schedule", flat=True)) == sorted([a.pk, b.pk])
    assert {s.pk: s.next_run_at for s in Schedule.objects.all()} == before


def test_a_view_only_user_cannot_run_or_toggle_schedules(viewer_client, make_schedule):
    schedule = make_schedule(now=timezone.now())

    assert viewer_client.get(reverse(CHANGELIST)).status_code == 200
    action(viewer_client, "run_schedules_now", [schedule])
    action(viewer_client, "disable_schedules", [schedule])

    assert not Job.objects.exists()
    assert Schedule.objects.get(pk=schedule.pk).enabled is True


def test_the_change_page_shows_the_preview_and_the_jobs_it_created(client_, make_schedule):
    schedule = make_schedule(kind="weekly", time="02:30", weekdays=[6], timezone="Europe/Paris")
    job = services.schedule_run_now(schedule=schedule)

    response = client_.get(reverse("admin:scheduler_schedule_change", args=[schedule.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Next occurrences" in html and "Local (Europe/Paris)" in html
    assert f"#{job.pk}" in html


def test_adding_a_schedule_in_the_admin_goes_through_the_service(client_, admin_user):
    data = {
        "name": "weekday mornings",
        "job_type": "demo.steps",
        "config": '{"steps": 1, "delay": 0}',
        "kind": "weekly",
        "time": "09:00",
        "weekdays": ["0", "1", "2", "3", "4"],
        "cron": "",
        "timezone": "America/New_York",
        "enabled": "on",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }

    response = client_.post(reverse("admin:scheduler_schedule_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = Schedule.objects.get()
    assert schedule.created_by == admin_user and schedule.weekdays == [0, 1, 2, 3, 4]
    assert schedule.next_run_at > timezone.now() - timedelta(seconds=1)


def test_the_admin_form_shows_a_bad_cron_or_timezone_on_its_field(client_):
    data = {
        "name": "broken",
        "job_type": "demo.steps",
        "config": '{"steps": 1}',
        "kind": "cron",
        "cron": "every day",
        "timezone": "Nowhere/Land",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }

    response = client_.post(reverse("admin:scheduler_schedule_add"), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "cron" in errors and "timezone" in errors
    assert not Schedule.objects.exists()


def test_a_duplicate_name_in_the_admin_form_is_one_error_on_the_name(client_, make_schedule):
    make_schedule(name="taken", now=timezone.now())
    data = {
        "name": "taken",
        "job_type": "demo.steps",
        "config": '{"steps": 1}',
        "kind": "interval",
        "interval_minutes": "5",
        "timezone": "UTC",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }

    response = client_.post(reverse("admin:scheduler_schedule_add"), data)

    assert response.context["adminform"].form.errors["name"] == [
        "A schedule with this name already exists."
    ]


def test_editing_the_time_on_the_change_page_recomputes_the_next_run(client_, make_schedule):
    schedule = make_schedule(kind="daily", time="03:00", timezone="UTC", now=timezone.now())
    data = {
        "name": schedule.name,
        "job_type": "demo.steps",
        "config": '{"steps": 1, "delay": 0}',
        "kind": "daily",
        "time": "04:15",
        "timezone": "UTC",
        "enabled": "on",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }

    response = client_.post(reverse("admin:scheduler_schedule_change", args=[schedule.pk]), data)

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.next_run_at.strftime("%H:%M") == "04:15"
