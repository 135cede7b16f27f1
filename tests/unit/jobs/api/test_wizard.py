"""The wizard: create a draft, watch its analysis, then submit or discard it."""

from __future__ import annotations

import json

import pytest

from jobs import broker, services
from jobs.models import AuditEvent, Job, JobStatus
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db

BODY = {"job_type": "demo.steps", "config": {"steps": 2, "delay": 0.5, "fail_at": 2}}


def create_draft(client) -> dict:
    response = client.post("/api/wizard/jobs/", json.dumps(BODY), content_type="application/json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_the_wizard_creates_a_draft_and_queues_its_analysis(
    api_client, monkeypatch, django_capture_on_commit_callbacks
):
    analysed: list[int] = []
    monkeypatch.setattr(broker, "enqueue_analysis", analysed.append)

    with django_capture_on_commit_callbacks(execute=True):
        draft = create_draft(api_client)

    assert draft["status"] == "draft"
    assert draft["analysis"] == {"state": "pending"}
    assert analysed == [draft["id"]]
    assert api_client.get(f"/api/wizard/jobs/{draft['id']}/analysis/").json() == {
        "state": "pending",
        "analysis": {},
    }


def test_the_analysis_is_served_once_ready(api_client):
    draft = create_draft(api_client)

    services.job_analyze(job_id=draft["id"])  # what the worker does
    body = api_client.get(f"/api/wizard/jobs/{draft['id']}/analysis/").json()

    assert body["state"] == "ready"
    assert body["analysis"]["tasks"] == ["step 1", "step 2"]
    assert body["analysis"]["estimated_seconds"] == 1.0
    assert body["analysis"]["warnings"] == ["step 2 is set to fail"]


def test_a_failed_analysis_reports_its_error(api_client, monkeypatch):
    draft = create_draft(api_client)
    Job.objects.filter(pk=draft["id"]).update(
        analysis={"state": "failed", "analysis": {}, "error": "ValueError: bad"}
    )

    body = api_client.get(f"/api/wizard/jobs/{draft['id']}/analysis/").json()

    assert body == {"state": "failed", "analysis": {}, "error": "ValueError: bad"}


def test_the_wizard_serves_status_and_logs_of_its_draft(api_client):
    draft = create_draft(api_client)

    status = api_client.get(f"/api/wizard/jobs/{draft['id']}/status/").json()
    logs = api_client.get(f"/api/wizard/jobs/{draft['id']}/logs/").json()

    assert status["status"] == "draft" and status["progress_total"] == 2
    assert logs == {"results": [], "cursor": 0}


def test_the_wizard_lists_drafts_only(api_client, user):
    draft = create_draft(api_client)
    make_job(user=user)

    ids = [j["id"] for j in api_client.get("/api/wizard/jobs/").json()["results"]]

    assert ids == [draft["id"]]


def test_submitting_a_draft_makes_it_pending_and_enqueues_it(
    api_client, monkeypatch, django_capture_on_commit_callbacks
):
    draft = create_draft(api_client)
    woken: list = []
    monkeypatch.setattr(
        broker, "enqueue_wakeup", lambda job_id=None, queue="default": woken.append(job_id)
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/wizard/jobs/{draft['id']}/submit/")

    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert woken == [draft["id"]]
    assert AuditEvent.objects.get(job_id=draft["id"], action="submitted").via == "api"

    again = api_client.post(f"/api/wizard/jobs/{draft['id']}/submit/")
    assert again.status_code == 409
    assert "submit" in again.json()["detail"]


def test_discarding_a_draft_deletes_it(api_client):
    draft = create_draft(api_client)

    response = api_client.delete(f"/api/wizard/jobs/{draft['id']}/")

    assert response.status_code == 204
    assert not Job.objects.filter(pk=draft["id"]).exists()
    assert api_client.get(f"/api/wizard/jobs/{draft['id']}/").status_code == 404


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED])
def test_the_wizard_refuses_to_discard_a_job_that_is_not_a_draft(api_client, user, status):
    job = make_job(status, user=user)

    response = api_client.delete(f"/api/wizard/jobs/{job.pk}/")

    assert response.status_code == 409
    assert "draft" in response.json()["detail"]
    assert Job.objects.filter(pk=job.pk).exists()


def test_the_wizard_refuses_an_invalid_draft_with_400(api_client):
    response = api_client.post(
        "/api/wizard/jobs/",
        json.dumps({"job_type": "demo.steps", "config": {"steps": "x"}}),
        content_type="application/json",
    )

    assert response.status_code == 400 and "config" in response.json()
    assert not Job.objects.exists()


def test_a_job_created_without_the_wizard_has_no_analysis(api_client, user):
    job = make_job(JobStatus.COMPLETED, user=user)

    response = api_client.get(f"/api/wizard/jobs/{job.pk}/analysis/")

    assert response.status_code == 404
    assert "no analysis" in response.json()["detail"]
