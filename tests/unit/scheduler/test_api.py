"""The schedules API: every endpoint, its 400s and its permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from scheduler import services
from scheduler.models import Schedule

pytestmark = pytest.mark.django_db

BODY = {
    "name": "nightly",
    "job_type": "demo.steps",
    "config": {"steps": 2, "delay": 0},
    "kind": "daily",
    "time": "02:30",
    "timezone": "Europe/Paris",
}


@pytest.fixture
def operator(django_user_model):
    """A user holding the scheduler model permissions (the admin's groups govern the API)."""
    u = django_user_model.objects.create_user("otto", password="otto-pass-123")
    u.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="scheduler",
            codename__in=["add_schedule", "change_schedule", "delete_schedule"],
        )
    )
    return u


@pytest.fixture
def op_client(operator) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


@pytest.fixture
def schedule(make_schedule, operator) -> Schedule:
    return make_schedule(user=operator, now=timezone.now(), **{**BODY, "name": "existing"})


def test_any_authenticated_user_can_list_and_read_schedules(api_client, schedule):
    listed = api_client.get("/api/schedules/")
    one = api_client.get(f"/api/schedules/{schedule.pk}/")

    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["results"]] == ["existing"]
    assert one.status_code == 200
    body = one.json()
    assert body["time"] == "02:30" and body["timezone"] == "Europe/Paris"
    assert body["description"] == "Every day at 02:30 (Europe/Paris)"
    assert body["next_run_at"] is not None and body["created_by"] == "otto"


def test_anonymous_requests_are_refused(schedule):
    assert APIClient().get("/api/schedules/").status_code in (401, 403)


def test_creating_a_schedule_returns_it_with_its_computed_next_run(op_client):
    response = op_client.post("/api/schedules/", BODY, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["next_run_at"] and body["enabled"] is True
    assert body["kind"] == "daily" and body["weekdays"] == [] and body["cron"] == ""
    assert Schedule.objects.get(pk=body["id"]).created_by.username == "otto"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "cron", "cron": "0 25 * * *"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"kind": "weekly", "weekdays": [1, 9]}, "weekdays"),
        ({"time": "24:30"}, "time"),
        ({"kind": "interval", "interval_minutes": 0}, "interval_minutes"),
        ({"config": {"steps": -1}}, "config"),
        ({"job_type": "os.system"}, "job_type"),
        ({"kind": "yearly"}, "kind"),
    ],
)
def test_invalid_input_is_a_400_naming_the_field(op_client, changes, field):
    response = op_client.post("/api/schedules/", {**BODY, **changes}, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Schedule.objects.exists()


def test_writes_need_the_scheduler_model_permissions(api_client, schedule):
    url = f"/api/schedules/{schedule.pk}/"

    assert api_client.post("/api/schedules/", BODY, format="json").status_code == 403
    assert api_client.patch(url, {"enabled": False}, format="json").status_code == 403
    assert api_client.put(url, BODY, format="json").status_code == 403
    assert api_client.delete(url).status_code == 403
    assert api_client.post(f"{url}toggle/").status_code == 403
    assert api_client.post(f"{url}run/").status_code == 403
    assert Schedule.objects.get(pk=schedule.pk).enabled is True
    assert not Job.objects.exists()


def test_put_replaces_and_patch_changes_only_what_is_sent(op_client, schedule):
    url = f"/api/schedules/{schedule.pk}/"
    before = schedule.next_run_at

    patched = op_client.patch(url, {"dry_run": True}, format="json")
    assert patched.status_code == 200
    assert patched.json()["dry_run"] is True and patched.json()["time"] == "02:30"
    assert patched.json()["next_run_at"] == before.isoformat().replace("+00:00", "Z")

    put = op_client.put(
        url, {**BODY, "name": "hourly", "kind": "cron", "cron": "0 * * * *"}, format="json"
    )
    assert put.status_code == 200, put.json()
    body = put.json()
    assert body["name"] == "hourly" and body["time"] is None and body["dry_run"] is False
    assert body["description"] == "Every hour (Europe/Paris)"
    assert body["next_run_at"] != patched.json()["next_run_at"]


def test_patch_with_an_invalid_timezone_is_a_400(op_client, schedule):
    response = op_client.patch(
        f"/api/schedules/{schedule.pk}/", {"timezone": "Paris"}, format="json"
    )

    assert response.status_code == 400 and "timezone" in response.json()


def test_delete_removes_the_schedule(op_client, schedule):
    assert op_client.delete(f"/api/schedules/{schedule.pk}/").status_code == 204
    assert not Schedule.objects.exists()
    assert op_client.get(f"/api/schedules/{schedule.pk}/").status_code == 404


def test_toggle_flips_or_sets_enabled(op_client, schedule):
    url = f"/api/schedules/{schedule.pk}/toggle/"

    assert op_client.post(url).json()["enabled"] is False
    assert op_client.post(url, {"enabled": False}, format="json").json()["enabled"] is False
    body = op_client.post(url, {"enabled": True}, format="json").json()
    assert body["enabled"] is True and body["next_run_at"]
    assert op_client.post(url, {"enabled": "maybe"}, format="json").status_code == 400


def test_run_creates_a_job_at_once_and_returns_it_with_201(op_client, schedule):
    before = schedule.next_run_at

    response = op_client.post(f"/api/schedules/{schedule.pk}/run/")

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["id"])
    assert job.schedule_id == schedule.pk and job.status == JobStatus.PENDING
    assert response.json()["created_by"] == "otto"
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == before


def test_history_lists_the_jobs_it_created_newest_first_and_paginated(
    op_client, schedule, operator
):
    jobs = [services.schedule_run_now(schedule=schedule, user=operator) for _ in range(3)]

    page = op_client.get(f"/api/schedules/{schedule.pk}/history/?page_size=2").json()
    rest = op_client.get(page["next"]).json()

    assert [j["id"] for j in page["results"]] == [jobs[2].pk, jobs[1].pk]
    assert [j["id"] for j in rest["results"]] == [jobs[0].pk]
    assert rest["next"] is None


def test_history_shows_a_user_only_the_jobs_they_may_see(api_client, schedule, operator, user):
    services.schedule_run_now(schedule=schedule, user=operator)
    mine = services.schedule_run_now(schedule=schedule, user=user)

    response = api_client.get(f"/api/schedules/{schedule.pk}/history/")

    assert [j["id"] for j in response.json()["results"]] == [mine.pk]


def test_history_of_a_missing_schedule_is_404(api_client):
    assert api_client.get("/api/schedules/999/history/").status_code == 404


def test_preview_lists_the_next_occurrences_and_flags_dst_changes(api_client, make_schedule):
    weekly = make_schedule(
        kind="weekly", time="02:30", weekdays=[6], timezone="Europe/Paris", now=timezone.now()
    )  # Sundays 02:30: both European DST changes fall on a Sunday at 02:00-03:00

    response = api_client.get(f"/api/schedules/{weekly.pk}/preview/?n=60")

    assert response.status_code == 200
    body = response.json()
    assert body["timezone"] == "Europe/Paris" and len(body["results"]) == 60
    gap = next(r for r in body["results"] if r["dst"] == "gap")
    repeated = next(r for r in body["results"] if r["dst"] == "repeated")
    assert "T03:00:00+02:00" in gap["local"] and "first valid time after the gap" in gap["note"]
    assert "T02:30:00+02:00" in repeated["local"] and "fires once" in repeated["note"]
    assert all(r["utc"].endswith("Z") for r in body["results"])
    assert sum(1 for r in body["results"] if r["dst"]) == 2


@pytest.mark.parametrize("n", ["0", "101", "ten"])
def test_preview_with_a_bad_n_is_a_400(api_client, schedule, n):
    response = api_client.get(f"/api/schedules/{schedule.pk}/preview/?n={n}")

    assert response.status_code == 400 and "n" in response.json()


def test_preview_defaults_to_ten_occurrences(api_client, schedule):
    assert len(api_client.get(f"/api/schedules/{schedule.pk}/preview/").json()["results"]) == 10


def test_the_list_costs_the_same_queries_for_5_and_50_schedules(api_client, make_schedule, user):
    def make(count: int) -> None:
        for _ in range(count):
            s = make_schedule(now=timezone.now() - timedelta(minutes=1))
            services.schedule_run_now(schedule=s, user=user)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = api_client.get("/api/schedules/?page_size=100")
        assert response.status_code == 200
        return len(ctx.captured_queries)

    make(5)
    five = queries()
    make(45)
    fifty = queries()

    assert five == fifty
    assert len(api_client.get("/api/schedules/?page_size=100").json()["results"]) == 50


@pytest.mark.parametrize("path", ["", "history/", "preview/"])
def test_a_malformed_or_missing_id_is_a_404(api_client, path):
    assert api_client.get(f"/api/schedules/abc/{path}").status_code == 404
    assert api_client.get(f"/api/schedules/999/{path}").status_code == 404


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(
        st.sampled_from(
            ["name", "job_type", "config", "kind", "interval_minutes", "time", "weekdays",
             "cron", "timezone", "enabled", "misfire_policy", "overlap_policy", "dry_run"]
        ),
        json_values | st.sampled_from(["* * * * *", "0 9 * * 1-5", "Europe/Paris", "09:30"]),
        max_size=4,
    )
)  # fmt: skip
def test_hostile_schedule_bodies_are_201_or_400_never_a_crash(op_client, changes):
    response = op_client.post("/api/schedules/", {**BODY, **changes}, format="json")

    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        assert isinstance(response.json(), dict)
