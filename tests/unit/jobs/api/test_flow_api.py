"""/api/queues/, /api/job-types/ as flow-control objects, and unique keys over the API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs import flow
from jobs.models import AuditEvent, FlowSetting, Job
from tests.support.admin_helpers import grant
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db
STEPS = {"job_type": "demo.steps", "config": {"steps": 1, "delay": 0}}


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("ops", password="x")
    return grant(user, "manage_queues")


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_queues_list_their_state_and_figures(operator):
    make_job()
    make_job()
    (row,) = client_of(operator).get("/api/queues/").json()
    assert row["name"] == "default" and row["pending"] == 2 and row["running"] == 0
    assert row["paused"] is False and row["oldest_pending_seconds"] >= 0
    assert set(row) == {
        "name",
        "paused",
        "pending",
        "running",
        "oldest_pending_seconds",
        "concurrency_limit",
        "rate_limit",
        "rate_period_seconds",
    }


def test_pause_and_resume_a_queue_are_audited_as_api(operator):
    client = client_of(operator)
    assert client.post("/api/queues/default/pause/").json()["paused"] is True
    assert flow.queue_rules("default").paused
    assert client.post("/api/queues/default/resume").json()["paused"] is False
    assert list(AuditEvent.objects.order_by("pk").values_list("action", "via", "actor")) == [
        ("paused", "api", operator.pk),
        ("resumed", "api", operator.pk),
    ]


def test_patch_a_queue_sets_and_clears_limits(operator):
    client = client_of(operator)
    body = client.patch(
        "/api/queues/default/",
        {"concurrency_limit": 4, "rate_limit": 10, "rate_period_seconds": 60},
        format="json",
    ).json()
    assert (body["concurrency_limit"], body["rate_limit"], body["rate_period_seconds"]) == (
        4,
        10,
        60,
    )
    body = client.patch("/api/queues/default/", {"concurrency_limit": None}, format="json").json()
    assert body["concurrency_limit"] is None and body["rate_limit"] == 10


def test_job_types_show_their_flow_rules_and_an_operator_overrides_them(operator, api_client):
    client = client_of(operator)
    response = client.patch(
        "/api/job-types/demo.steps/",
        {"paused": True, "concurrency_limit": 2, "timeout_seconds": 30},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["paused"], body["concurrency_limit"], body["timeout_seconds"]) == (True, 2, 30)
    assert body["overridden"] == ["concurrency_limit", "paused", "timeout_seconds"]
    # Every user sees the rules of the types they may run.
    (listed,) = [t for t in api_client.get("/api/job-types/").json() if t["name"] == "demo.steps"]
    assert listed["paused"] is True and listed["rate_limit"] is None
    assert client.post("/api/job-types/demo.steps/resume/").json()["paused"] is False


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/queues/default/", {"concurrency_limit": 0}, "concurrency_limit"),
        ("/api/queues/default/", {"rate_limit": "ten"}, "rate_limit"),
        ("/api/queues/default/", {"timeout_seconds": 5}, "timeout_seconds"),
        ("/api/queues/default/", {"paused": "yes"}, "paused"),
        ("/api/job-types/demo.steps/", {"surprise": 1}, "surprise"),
        ("/api/job-types/demo.steps/", {"rate_period_seconds": 10**9}, "rate_period_seconds"),
    ],
)
def test_bad_changes_are_400_naming_the_field_and_change_nothing(operator, url, body, field):
    response = client_of(operator).patch(url, body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not FlowSetting.objects.exclude(concurrency_limit=None).exists()
    assert not FlowSetting.objects.filter(paused=True).exists()


def test_unknown_queues_and_types_are_404(operator):
    client = client_of(operator)
    assert client.post("/api/queues/nope/pause/").status_code == 404
    assert client.patch("/api/job-types/no.such/", {}, format="json").status_code == 404
    assert client.get("/api/queues/nope/").status_code == 404


def test_changing_needs_manage_queues_and_reading_queues_needs_it_or_view_all(api_client, manager):
    assert api_client.get("/api/queues/").status_code == 403
    assert api_client.post("/api/queues/default/pause/").status_code == 403
    assert (
        api_client.patch("/api/job-types/demo.steps/", {"paused": True}, format="json").status_code
        == 403
    )
    watcher = client_of(manager)  # view_all_jobs, manage_all_jobs: reads, never changes
    assert watcher.get("/api/queues/").status_code == 200
    assert watcher.post("/api/queues/default/pause/").status_code == 403
    assert not FlowSetting.objects.exists()


def test_a_job_waiting_on_a_paused_queue_says_so_in_its_status(operator, api_client):
    job = api_client.post("/api/jobs/", STEPS, format="json").json()
    client_of(operator).post("/api/queues/default/pause/")
    status = api_client.get(f"/api/jobs/{job['id']}/status/").json()
    assert status["waiting_reason"] == "queue default is paused"


def test_a_unique_key_returns_the_existing_job_with_200(api_client):
    first = api_client.post("/api/jobs/", {**STEPS, "unique_key": "nightly"}, format="json")
    again = api_client.post("/api/jobs/", {**STEPS, "unique_key": "nightly"}, format="json")
    assert (first.status_code, first.json()["existing"]) == (201, False)
    assert (again.status_code, again.json()["existing"]) == (200, True)
    assert again.json()["id"] == first.json()["id"] and again.json()["unique_key"] == "nightly"
    assert Job.objects.count() == 1


def test_the_idempotency_key_header_is_the_unique_key(api_client):
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    first = api_client.post("/api/jobs/", STEPS, format="json", **headers)
    again = api_client.post("/api/jobs/", STEPS, format="json", **headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["unique_key"] == "order-42"
    clash = api_client.post(
        "/api/jobs/", {**STEPS, "unique_key": "other"}, format="json", **headers
    )
    assert clash.status_code == 400 and "unique_key" in clash.json()
    assert Job.objects.count() == 1


def test_bulk_reports_which_items_already_existed(api_client):
    body = {"jobs": [STEPS, {**STEPS, "unique_key": "k"}, {**STEPS, "unique_key": "k"}]}
    response = api_client.post("/api/jobs/bulk/", body, format="json")
    assert response.status_code == 201
    data = response.json()
    assert data["count"] == 3 and data["ids"][1] == data["ids"][2]
    assert data["existing"] == [2]


@pytest.mark.parametrize("key", ["x" * 201, ["a"], {"a": 1}])
def test_a_bad_unique_key_is_400(api_client, key):
    response = api_client.post("/api/jobs/", {**STEPS, "unique_key": key}, format="json")
    assert response.status_code == 400 and "unique_key" in response.json()
    assert not Job.objects.exists()
