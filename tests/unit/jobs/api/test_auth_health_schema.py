"""Token and session auth, the health endpoint, the OpenAPI schema and the Swagger UI."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
import yaml
from django.db import OperationalError
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db


# --- auth -----------------------------------------------------------------------------------


def test_a_token_is_issued_for_a_username_and_password_and_authenticates(anon_client, user):
    response = anon_client.post(
        "/api/auth/token/", {"username": "alice", "password": "alice-pass-123"}, format="json"
    )

    assert response.status_code == 200
    token = response.json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/jobs/").status_code == 200
    # Asking again issues another token (knox: each login is a token of its own, with
    # its own expiry); both work until they expire or are revoked.
    again = anon_client.post(
        "/api/auth/token/", {"username": "alice", "password": "alice-pass-123"}, format="json"
    )
    assert again.json()["token"] != token and again.json()["expiry"]
    assert client.get("/api/jobs/").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": "x"},
        {"username": "alice"},
        {},
    ],
)
def test_bad_credentials_get_no_token(anon_client, user, body):
    response = anon_client.post("/api/auth/token/", body, format="json")

    assert response.status_code == 400
    assert "token" not in response.json()


def test_an_oversized_form_body_is_a_json_413(anon_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = anon_client.post(
        "/api/auth/token/",
        "username=alice&password=" + "x" * 2000,
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 413
    assert "detail" in response.json()


def test_an_invalid_token_is_401(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/jobs/")

    assert response.status_code == 401
    assert "detail" in response.json()


def test_session_auth_works_for_the_browsable_api(user):
    client = APIClient()
    assert client.login(username="alice", password="alice-pass-123")

    assert client.get("/api/jobs/").status_code == 200
    assert client.get("/api/jobs/", HTTP_ACCEPT="text/html").status_code == 200


def test_anonymous_requests_are_throttled(anon_client, settings, user):
    from rest_framework.throttling import AnonRateThrottle

    with mock.patch.object(AnonRateThrottle, "get_rate", return_value="2/minute"):
        codes = [
            anon_client.post("/api/auth/token/", {}, format="json").status_code for _ in range(3)
        ]

    assert codes == [400, 400, 429]


# --- health ---------------------------------------------------------------------------------


def cluster_ticked(seconds_ago: float = 0) -> None:
    """What a live cluster does each minute: advance jobdeck.tick's next run past now."""
    Schedule.objects.filter(name="jobdeck.tick").update(
        next_run=timezone.now() + timedelta(seconds=60 - seconds_ago)
    )


def test_health_is_ok_with_a_database_and_a_recently_seen_cluster(anon_client):
    cluster_ticked()

    response = anon_client.get("/api/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["cluster"]["seen"] is True
    assert body["queue"]["pending"] == 0 and body["queue"]["broker_messages"] == 0


def test_health_is_503_when_no_cluster_has_been_seen_recently(anon_client):
    Schedule.objects.filter(name="jobdeck.tick").update(
        next_run=timezone.now() - timedelta(minutes=10)
    )

    response = anon_client.get("/api/health/")

    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["cluster"]["seen"] is False


def test_a_recent_heartbeat_counts_as_a_cluster_seen(anon_client, user):
    Schedule.objects.filter(name="jobdeck.tick").delete()
    make_job(JobStatus.RUNNING, user=user)

    response = anon_client.get("/api/health/")

    assert response.status_code == 200
    assert response.json()["cluster"]["last_heartbeat"] is not None


def test_health_is_degraded_by_a_stale_running_job_or_an_old_backlog(anon_client, user, settings):
    cluster_ticked()
    stale = make_job(JobStatus.RUNNING, user=user)
    Job.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    body = anon_client.get("/api/health/").json()
    assert body["status"] == "degraded" and body["queue"]["stale_running"] == 1

    Job.objects.filter(pk=stale.pk).update(status=JobStatus.FAILED)
    waiting = make_job(user=user)
    Job.objects.filter(pk=waiting.pk).update(queued_at=timezone.now() - timedelta(hours=1))
    body = anon_client.get("/api/health/").json()
    assert body["status"] == "degraded" and body["queue"]["oldest_due_seconds"] >= 3600


def test_health_is_503_when_the_database_is_unreachable(anon_client):
    with mock.patch(
        "django.db.backends.utils.CursorWrapper.execute",
        side_effect=OperationalError("connection refused"),
    ):
        response = anon_client.get("/api/health/")

    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["database"]["status"] == "down"


def test_health_ignores_credentials_and_throttling(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token garbage")
    cluster_ticked()

    codes = {client.get("/api/health/").status_code for _ in range(70)}

    assert codes == {200}


# --- schema and docs --------------------------------------------------------------------------


def test_the_openapi_schema_is_served_anonymously_and_describes_the_jobs_api(anon_client):
    response = anon_client.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/jobs/",
        "/api/jobs/{id}/",
        "/api/jobs/{id}/status/",
        "/api/jobs/{id}/logs/",
        "/api/jobs/{id}/cancel/",
        "/api/jobs/{id}/retry/",
        "/api/jobs/cleanup/",
        "/api/jobs/bulk/",
        "/api/job-types/",
        "/api/wizard/jobs/",
        "/api/wizard/jobs/{id}/analysis/",
        "/api/wizard/jobs/{id}/submit/",
        "/api/health/",
        "/api/auth/token/",
    ):
        assert path in schema["paths"], path
    assert "409" in schema["paths"]["/api/jobs/{id}/cancel/"]["post"]["responses"]
    assert "503" in schema["paths"]["/api/health/"]["get"]["responses"]


def test_the_schema_passes_openapi_validation():
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_swagger_ui_is_served_with_local_assets_only(anon_client):
    response = anon_client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "drf_spectacular_sidecar" in html
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs"):
        assert cdn not in html
