"""The jobs endpoints: create, list, filter, read, follow, cancel, retry, clean up, bulk."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from jobs import broker, registry, services
from jobs.models import AuditEvent, Job, JobLog, JobStatus, Task, TaskStatus
from releases.models import Release
from tests.support.job_factories import make_job
from tests.unit.jobs.api.conftest import grant

pytestmark = pytest.mark.django_db

DEMO = {"job_type": "demo.steps", "config": {"steps": 3, "delay": 0}}


def post(client, url: str, body) -> object:
    return client.post(url, json.dumps(body), content_type="application/json")


# --- create ---------------------------------------------------------------------------


def test_creating_a_job_returns_it_with_its_tasks_and_owner(api_client, user):
    response = post(api_client, "/api/jobs/", {**DEMO, "priority": 5, "max_attempts": 2})

    assert response.status_code == 201, response.json()
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.created_by == user and job.status == JobStatus.PENDING
    assert body["status"] == "pending"
    assert body["created_by"] == "alice"
    assert body["priority"] == 5 and body["max_attempts"] == 2
    assert body["config"] == {"steps": 3, "delay": 0.0, "fail_at": None, "fail_attempts": 1}
    assert [(t["position"], t["name"], t["status"]) for t in body["tasks"]] == [
        (1, "step 1", "pending"),
        (2, "step 2", "pending"),
        (3, "step 3", "pending"),
    ]
    assert body["progress"] == 0 and body["progress_total"] == 3
    assert [(e["action"], e["actor"], e["via"]) for e in body["events"]] == [
        ("created", "alice", "api")
    ]
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


def test_a_job_can_be_created_delayed_and_as_a_draft(api_client):
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    response = post(api_client, "/api/jobs/", {**DEMO, "run_after": later, "draft": True})

    assert response.status_code == 201
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.DRAFT
    assert abs((job.run_after - timezone.now()) - timedelta(hours=1)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"job_type": "no.such.type", "config": {}}, "job_type"),
        ({"config": {"steps": 1}}, "job_type"),
        ({"job_type": "demo.steps", "config": {"steps": 0}}, "config"),
        ({"job_type": "demo.steps", "config": {}}, "config"),
        ({"job_type": "demo.steps", "config": [1, 2]}, "config"),
        ({"job_type": "demo.steps", "config": "steps=3"}, "config"),
        ({**DEMO, "priority": 101}, "priority"),
        ({**DEMO, "priority": "high"}, "priority"),
        ({**DEMO, "max_attempts": 0}, "max_attempts"),
        ({**DEMO, "run_after": "tomorrow"}, "run_after"),
        ({**DEMO, "release": 999_999}, "release"),
        ({"job_type": "release.inspect", "config": {}}, "release"),
        ({"job_type": "tasks.call", "config": {"task_path": "os.system"}}, "job_type"),
    ],
)
def test_an_invalid_job_is_refused_with_400_naming_the_field_and_nothing_is_created(
    api_client, user, body, field
):
    # Release jobs need the release right (else 403, before any validation).
    grant(user, "change_release")

    response = post(api_client, "/api/jobs/", body)

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert all(isinstance(m, str) for m in response.json()[field])
    assert not Job.objects.exists() and not Task.objects.exists()


def test_a_deeply_nested_config_is_a_400_not_a_crash(api_client):
    nested: dict = {"steps": 1}
    for _ in range(50):
        nested = {"x": nested}
    response = post(api_client, "/api/jobs/", {"job_type": "demo.steps", "config": nested})

    assert response.status_code == 400
    assert "config" in response.json()


def test_json_nested_beyond_the_parsers_recursion_limit_is_a_400(api_client):
    body = '{"job_type": "demo.steps", "config": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api_client.post("/api/jobs/", body, content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()


@pytest.mark.parametrize("body", ["{not json", "[1, 2, 3]", '"a string"', "null", "NaN"])
def test_malformed_or_non_object_bodies_are_400(api_client, body):
    response = api_client.post("/api/jobs/", body, content_type="application/json")

    assert response.status_code == 400
    assert isinstance(response.json(), dict)
    assert not Job.objects.exists()


def test_a_body_over_the_size_limit_is_a_json_413(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {**DEMO, "config": {"steps": 1, "padding": "x" * 2000}}

    response = post(api_client, "/api/jobs/", body)

    assert response.status_code == 413
    assert "detail" in response.json()


def test_a_form_encoded_body_is_415(api_client):
    response = api_client.post("/api/jobs/", {"job_type": "demo.steps"}, format="multipart")

    assert response.status_code == 415
    assert "detail" in response.json()


# --- list and filters -------------------------------------------------------------------


def test_the_list_is_cursor_paginated_newest_first_without_tasks(api_client, user):
    jobs = [make_job(user=user) for _ in range(5)]

    first = api_client.get("/api/jobs/?page_size=2").json()
    assert set(first) == {"next", "previous", "results"}
    assert [j["id"] for j in first["results"]] == [jobs[4].pk, jobs[3].pk]
    assert "tasks" not in first["results"][0] and "config" not in first["results"][0]
    second = api_client.get(first["next"]).json()
    assert [j["id"] for j in second["results"]] == [jobs[2].pk, jobs[1].pk]
    assert second["previous"] is not None


def test_page_size_is_capped_at_200(api_client, user):
    services.job_bulk_create(specs=[DEMO] * 205, user=user)

    body = api_client.get("/api/jobs/?page_size=500").json()

    assert len(body["results"]) == 200
    assert body["next"] is not None


def test_an_invalid_cursor_is_404(api_client):
    assert api_client.get("/api/jobs/?cursor=bogus").status_code == 404


def test_the_list_can_be_ordered_oldest_first(api_client, user):
    jobs = [make_job(user=user) for _ in range(3)]

    body = api_client.get("/api/jobs/?ordering=created_at").json()

    assert [j["id"] for j in body["results"]] == [j.pk for j in jobs]
    assert api_client.get("/api/jobs/?ordering=status").status_code == 400


def test_the_list_filters_by_status_type_owner_release_schedule_and_creation_time(
    api_client, manager_client, user, other_user
):
    pending = make_job(user=user)
    failed = make_job(JobStatus.FAILED, user=user)
    done = make_job(JobStatus.COMPLETED, user=user)
    bobs = make_job(user=other_user)
    release = Release.objects.create(slug="r1", name="R1")
    Job.objects.filter(pk=done.pk).update(release=release)
    cleanup = services.job_create(
        job_type="maintenance.cleanup", config={}, user=grant(user, "cleanup_jobs")
    )
    old = make_job(user=user)
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))

    def ids(client, query: str) -> set[int]:
        response = client.get(f"/api/jobs/?{query}")
        assert response.status_code == 200, response.json()
        return {j["id"] for j in response.json()["results"]}

    assert ids(api_client, "status=failed,completed") == {failed.pk, done.pk}
    assert ids(api_client, "job_type=maintenance.cleanup") == {cleanup.pk}
    assert ids(api_client, f"release={release.pk}") == {done.pk}
    assert ids(api_client, "schedule=1") == set()
    assert ids(manager_client, "created_by=bob") == {bobs.pk}
    assert ids(manager_client, f"created_by={other_user.pk}") == {bobs.pk}
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert old.pk not in ids(api_client, f"created_after={since}")
    assert ids(api_client, f"created_before={since}") == {old.pk}
    assert pending.pk in ids(api_client, "status=pending")


@pytest.mark.parametrize(
    "query",
    ["status=bogus", "status=pending,nope", "created_after=yesterday", "release=abc"],
)
def test_invalid_filters_are_400_naming_the_filter(api_client, query):
    response = api_client.get(f"/api/jobs/?{query}")

    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


# --- detail and status -------------------------------------------------------------------


@pytest.fixture
def secret_type():
    class SecretConfig(serializers.Serializer):
        token = serializers.CharField()
        region = serializers.CharField()

    @registry.register
    class SecretType(registry.JobType):
        name = "test.secret"
        config_serializer = SecretConfig
        secret_fields = ("token",)

    yield SecretType
    registry.unregister("test.secret")


def test_the_detail_shows_every_field_with_secrets_redacted(api_client, secret_type):
    created = post(
        api_client,
        "/api/jobs/",
        {"job_type": "test.secret", "config": {"token": "s3cr3t", "region": "eu"}},
    ).json()

    body = api_client.get(f"/api/jobs/{created['id']}/").json()

    assert body["config"] == {"token": "********", "region": "eu"}
    assert "s3cr3t" not in json.dumps(body)
    for field in [
        "id",
        "job_type",
        "status",
        "config",
        "result",
        "error",
        "release",
        "schedule",
        "created_by",
        "priority",
        "attempts",
        "max_attempts",
        "created_at",
        "started_at",
        "finished_at",
        "progress",
        "progress_done",
        "progress_total",
        "duration_seconds",
        "tasks",
        "events",
    ]:
        assert field in body
    assert set(body["tasks"][0]) >= {
        "position",
        "name",
        "status",
        "started_at",
        "finished_at",
        "error",
        "result",
    }


def test_the_detail_carries_the_audit_trail_of_api_actions(api_client, user):
    job = make_job(user=user)
    post(api_client, f"/api/jobs/{job.pk}/cancel/", {})

    events = api_client.get(f"/api/jobs/{job.pk}/").json()["events"]

    assert [e["action"] for e in events][:1] == ["cancelled"]
    assert events[0]["actor"] == "alice" and events[0]["via"] == "api"


def test_status_reports_progress_duration_and_the_current_task(api_client, user):
    job = make_job(JobStatus.RUNNING, steps=4, user=user)
    Job.objects.filter(pk=job.pk).update(
        progress_done=1, started_at=timezone.now() - timedelta(seconds=10)
    )
    Task.objects.filter(job=job, position=1).update(status=TaskStatus.SUCCEEDED)
    Task.objects.filter(job=job, position=2).update(status=TaskStatus.RUNNING)

    body = api_client.get(f"/api/jobs/{job.pk}/status/").json()

    assert body["status"] == "running"
    assert body["progress"] == 25 and body["progress_done"] == 1 and body["progress_total"] == 4
    assert body["current_task"] == "step 2"
    assert body["duration_seconds"] >= 10
    assert body["error"] == ""


@pytest.mark.parametrize("url", ["/api/jobs/999999/", "/api/jobs/abc/", "/api/jobs/999999/status/"])
def test_an_unknown_job_is_404_with_a_detail(api_client, url):
    response = api_client.get(url)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."} or "detail" in response.json()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("delete", "/api/jobs/{id}/"),
        ("put", "/api/jobs/{id}/"),
        ("patch", "/api/jobs/{id}/"),
        ("get", "/api/jobs/{id}/cancel/"),
        ("get", "/api/jobs/{id}/retry/"),
        ("put", "/api/jobs/"),
        ("get", "/api/jobs/bulk/"),
    ],
)
def test_unsupported_methods_are_405(api_client, user, method, url):
    job = make_job(user=user)

    response = getattr(api_client, method)(url.format(id=job.pk), {}, format="json")

    assert response.status_code == 405
    assert "detail" in response.json()


def test_cleanup_answers_405_to_a_get_from_a_user_who_may_clean_up(cleaner_client):
    assert cleaner_client.get("/api/jobs/cleanup/").status_code == 405


# --- logs ---------------------------------------------------------------------------------


def test_logs_can_be_tailed_and_followed_with_a_cursor(api_client, user):
    job = make_job(JobStatus.RUNNING, user=user)
    for i in range(5):
        services.job_log(job_id=job.pk, message=f"line {i}")

    tail = api_client.get(f"/api/jobs/{job.pk}/logs/?tail=2").json()
    assert [line["message"] for line in tail["results"]] == ["line 3", "line 4"]
    assert set(tail["results"][0]) == {"id", "created_at", "level", "task", "message"}
    assert tail["results"][0]["level"] == "info"
    assert tail["cursor"] == tail["results"][-1]["id"]

    services.job_log(job_id=job.pk, message="line 5")
    follow = api_client.get(f"/api/jobs/{job.pk}/logs/?after={tail['cursor']}").json()
    assert [line["message"] for line in follow["results"]] == ["line 5"]

    idle = api_client.get(f"/api/jobs/{job.pk}/logs/?after={follow['cursor']}").json()
    assert idle == {"results": [], "cursor": follow["cursor"]}


def test_logs_without_parameters_return_the_last_hundred_lines(api_client, user):
    job = make_job(JobStatus.RUNNING, user=user)
    JobLog.objects.bulk_create([JobLog(job=job, message=f"l{i}") for i in range(150)])

    body = api_client.get(f"/api/jobs/{job.pk}/logs/").json()

    assert len(body["results"]) == 100 and body["results"][-1]["message"] == "l149"


def test_a_zero_tail_returns_no_lines_but_a_cursor_at_the_newest_line(api_client, user):
    job = make_job(JobStatus.RUNNING, user=user)
    last = services.job_log(job_id=job.pk, message="x")

    assert api_client.get(f"/api/jobs/{job.pk}/logs/?tail=0").json() == {
        "results": [],
        "cursor": last.pk,
    }
    empty = make_job(user=user)
    assert api_client.get(f"/api/jobs/{empty.pk}/logs/").json() == {"results": [], "cursor": 0}


@pytest.mark.parametrize(
    ("query", "field"),
    [("tail=-1", "tail"), ("tail=abc", "tail"), ("after=-5", "after"), ("after=1.5", "after")],
)
def test_log_parameters_must_be_non_negative_integers(api_client, user, query, field):
    job = make_job(user=user)

    response = api_client.get(f"/api/jobs/{job.pk}/logs/?{query}")

    assert response.status_code == 400
    assert field in response.json()


# --- cancel and retry -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put"])
def test_cancelling_a_pending_job_cancels_it_at_once(api_client, user, method):
    job = make_job(user=user)

    response = getattr(api_client, method)(f"/api/jobs/{job.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["id"] == job.pk
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


def test_cancelling_a_running_job_requests_the_cancel(api_client, user):
    job = make_job(JobStatus.RUNNING, user=user)

    response = api_client.post(f"/api/jobs/{job.pk}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == "running"
    job.refresh_from_db()
    assert job.cancel_requested_at is not None


def test_cancelling_a_completed_job_is_409_naming_the_transition(api_client, user):
    job = make_job(JobStatus.COMPLETED, user=user)

    response = api_client.post(f"/api/jobs/{job.pk}/cancel/")

    assert response.status_code == 409
    assert "cancel" in response.json()["detail"] and "completed" in response.json()["detail"]


def test_retrying_a_failed_job_keeps_its_succeeded_tasks(api_client, user):
    job = make_job(JobStatus.FAILED, steps=3, user=user)
    Task.objects.filter(job=job, position=1).update(status=TaskStatus.SUCCEEDED)
    Task.objects.filter(job=job, position=2).update(status=TaskStatus.FAILED, error="boom")

    response = api_client.post(f"/api/jobs/{job.pk}/retry/")

    assert response.status_code == 200 and response.json()["status"] == "pending"
    statuses = list(job.tasks.order_by("position").values_list("status", flat=True))
    assert statuses == [TaskStatus.SUCCEEDED, TaskStatus.PENDING, TaskStatus.PENDING]
    assert AuditEvent.objects.get(job=job, action="retried").via == "api"


def test_retrying_with_a_corrected_config_validates_and_uses_it(api_client, user):
    job = make_job(JobStatus.FAILED, steps=2, user=user)

    bad = post(api_client, f"/api/jobs/{job.pk}/retry/", {"config": {"steps": -1}})
    assert bad.status_code == 400 and "config" in bad.json()
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED

    good = post(api_client, f"/api/jobs/{job.pk}/retry/", {"config": {"steps": 4, "delay": 0}})
    assert good.status_code == 200
    job.refresh_from_db()
    assert job.config["steps"] == 4 and job.tasks.count() == 4


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.PENDING, JobStatus.COMPLETED])
def test_retrying_a_job_that_has_not_failed_is_409(api_client, user, status):
    job = make_job(status, user=user)

    response = api_client.post(f"/api/jobs/{job.pk}/retry/")

    assert response.status_code == 409
    assert "retry" in response.json()["detail"]


# --- cleanup and job types --------------------------------------------------------------------


def test_cleanup_holders_can_clean_up_old_finished_jobs_and_dry_run_first(
    cleaner_client, staff_user
):
    old = make_job(JobStatus.COMPLETED, user=staff_user)
    Job.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=10))
    recent = make_job(JobStatus.COMPLETED, user=staff_user)

    dry = post(cleaner_client, "/api/jobs/cleanup/", {"older_than_days": 5, "dry_run": True})
    assert dry.status_code == 200
    assert dry.json()["jobs"] == 1 and dry.json()["dry_run"] is True
    assert Job.objects.filter(pk=old.pk).exists()

    real = post(cleaner_client, "/api/jobs/cleanup/", {"older_than_days": 5})
    assert real.status_code == 200
    assert real.json()["jobs"] == 1 and real.json()["tasks"] == 2
    assert not Job.objects.filter(pk=old.pk).exists()
    assert Job.objects.filter(pk=recent.pk).exists()


@pytest.mark.parametrize("body", [{"older_than_days": -1}, {}, {"older_than_days": "many"}])
def test_cleanup_refuses_a_negative_or_missing_age(cleaner_client, body):
    response = post(cleaner_client, "/api/jobs/cleanup/", body)

    assert response.status_code == 400
    assert "older_than_days" in response.json()


def test_cleanup_needs_its_named_permission_not_merely_staff(api_client, staff_client):
    for client in (api_client, staff_client):
        response = post(client, "/api/jobs/cleanup/", {"older_than_days": 1})

        assert response.status_code == 403
        assert "jobs.cleanup_jobs" in response.json()["detail"]


def test_job_types_list_each_type_with_its_config_fields(api_client):
    response = api_client.get("/api/job-types/")

    assert response.status_code == 200
    types = {t["name"]: t for t in response.json()}
    demo = types["demo.steps"]
    assert demo["label"] and demo["user_creatable"] is True
    steps = next(f for f in demo["config"] if f["name"] == "steps")
    assert steps["type"] == "integer" and steps["required"] is True and steps["min_value"] == 1
    # Only the types this caller may create: not Jobdeck's own carrier, not the ones
    # that need a permission alice lacks.
    assert not {"tasks.call", "maintenance.cleanup", "release.apply"} & set(types)


# --- bulk -------------------------------------------------------------------------------------


def test_bulk_creation_makes_every_job_and_task_and_wakes_only_a_few_workers(
    api_client, user, monkeypatch, django_capture_on_commit_callbacks, settings
):
    woken: list = []
    monkeypatch.setattr(
        broker, "enqueue_wakeup", lambda job_id=None, queue="default": woken.append(job_id)
    )
    grant(user, "cleanup_jobs")
    jobs = [DEMO, {**DEMO, "priority": 3}, {"job_type": "maintenance.cleanup"}] * 10

    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_client, "/api/jobs/bulk/", {"jobs": jobs})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["count"] == 30 and len(body["ids"]) == 30
    created = Job.objects.filter(pk__in=body["ids"])
    assert created.count() == 30
    assert set(created.values_list("status", flat=True)) == {JobStatus.PENDING}
    assert {j.created_by_id for j in created} == {user.pk}
    assert Task.objects.filter(job__in=created).count() == 20 * 3 + 10
    assert woken == [None] * settings.Q_CLUSTER["workers"]


def test_bulk_creation_is_all_or_nothing_and_names_each_bad_item(api_client):
    jobs = [DEMO, {"job_type": "demo.steps", "config": {"steps": 0}}, DEMO, {"job_type": "nope"}]

    response = post(api_client, "/api/jobs/bulk/", {"jobs": jobs})

    assert response.status_code == 400
    errors = response.json()["jobs"]
    assert set(errors) == {"1", "3"}
    assert "config" in errors["1"] and "job_type" in errors["3"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"jobs": []},
        {"jobs": "many"},
        {},
        {"jobs": [DEMO, 5]},
        {"jobs": [{**DEMO, "release": 12345}]},
        {"jobs": [{**DEMO, "priority": 1000}]},
    ],
)
def test_bulk_creation_refuses_malformed_bodies(api_client, body):
    response = post(api_client, "/api/jobs/bulk/", body)

    assert response.status_code == 400
    assert "jobs" in response.json()
    assert not Job.objects.exists()


def test_bulk_creation_accepts_ten_thousand_jobs_and_no_more(api_client, user):
    response = post(api_client, "/api/jobs/bulk/", {"jobs": [DEMO] * 10_000})
    assert response.status_code == 201
    assert Job.objects.count() == 10_000 and Task.objects.count() == 30_000

    too_many = post(api_client, "/api/jobs/bulk/", {"jobs": [DEMO] * 10_001})
    assert too_many.status_code == 400
    assert Job.objects.count() == 10_000
