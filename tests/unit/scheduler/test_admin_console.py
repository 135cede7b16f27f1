"""The schedule page: generated config form, searchable timezone, live preview with DST
flags, Run now and Enable/Disable, the dry-run warning, the dashboard's schedules panel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from scheduler import services
from scheduler.models import Schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def su(django_user_model, client):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(user)
    return user


@pytest.fixture
def nightly(su):
    return services.schedule_create(
        name="nightly",
        job_type="demo.steps",
        config={"steps": 3, "delay": 0},
        kind="daily",
        time=timezone.now().time().replace(hour=2, minute=30, second=0, microsecond=0),
        timezone="Europe/Paris",
        user=su,
    )


def test_the_change_page_has_the_generated_config_form_a_timezone_list_and_buttons(
    client, su, nightly
):
    html = client.get(f"/admin/scheduler/schedule/{nightly.pk}/change/").content.decode()
    assert 'name="cfg__steps"' in html and 'value="3"' in html
    assert 'list="jd-timezones"' in html and '<option value="Europe/Paris">' in html
    assert 'id="jd-schedule-run-now"' in html and ">Disable</button>" in html
    assert 'id="jd-live-preview"' in html and 'id="jd-dryrun-warning"' in html


def test_saving_through_the_generated_form_writes_the_config(client, su, nightly):
    response = client.post(
        f"/admin/scheduler/schedule/{nightly.pk}/change/",
        {
            "_config_type": "demo.steps",
            "name": "nightly",
            "job_type": "demo.steps",
            "config": "{}",
            "cfg__steps": "7",
            "cfg__delay": "0.5",
            "cfg__fail_attempts": "0",
            "kind": "daily",
            "time": "02:30",
            "timezone": "Europe/Paris",
            "enabled": "on",
            "misfire_policy": "skip",
            "overlap_policy": "skip",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    nightly.refresh_from_db()
    assert (nightly.config["steps"], nightly.config["delay"]) == (7, 0.5)


def test_the_live_preview_flags_dst_before_saving(client, su):
    data = client.get(
        "/admin/scheduler/schedule/preview/",
        {"kind": "daily", "time": "02:30", "timezone": "Europe/Paris"},
    ).json()
    assert data["error"] == "" and len(data["rows"]) == 10
    bad = client.get("/admin/scheduler/schedule/preview/", {"kind": "daily", "time": ""}).json()
    assert bad["error"] == "give the time (HH:MM)"
    unknown = client.get(
        "/admin/scheduler/schedule/preview/",
        {"kind": "interval", "interval_minutes": "5", "timezone": "Mars/Base"},
    ).json()
    assert "unknown timezone" in unknown["error"]


def test_the_preview_of_a_saved_schedule_starts_with_a_due_occurrence(su, nightly):
    from scheduler import selectors

    Schedule.objects.filter(pk=nightly.pk).update(
        next_run_at=timezone.now() - timedelta(seconds=20)
    )
    nightly.refresh_from_db()
    rows = selectors.schedule_preview(schedule=nightly, n=3)
    assert rows[0].get("due") and len(rows) == 3


def test_run_now_and_disable_from_the_change_page(client, su, nightly):
    ran = client.post(f"/admin/scheduler/schedule/{nightly.pk}/run-now/", follow=True)
    job = Job.objects.get(schedule=nightly)
    assert f"nightly: job #{job.pk} created now." in [str(m) for m in ran.context["messages"]]

    client.post(f"/admin/scheduler/schedule/{nightly.pk}/toggle/", {"enabled": "0"})
    nightly.refresh_from_db()
    assert nightly.enabled is False


def test_the_dashboard_has_a_schedules_panel_with_run_now(client, su, nightly):
    html = client.get("/admin/").content.decode()
    assert 'id="jd-schedules-panel"' in html
    assert "nightly" in html and f"/admin/scheduler/schedule/{nightly.pk}/run-now/" in html
