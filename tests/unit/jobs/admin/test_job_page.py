"""The job page: facts, config/result/error, tasks, audit, the log and status endpoints, buttons."""

from __future__ import annotations

import json

import pytest

from jobs import services
from jobs.models import JobStatus, LogLevel
from tests.support.admin_helpers import client_for, status_of, texts

pytestmark = pytest.mark.django_db


def test_the_job_page_shows_facts_pretty_config_error_tasks_and_audit_trail(viewer, make_job):
    job = make_job(
        JobStatus.FAILED,
        viewer,
        error="task 1 failed: <b>boom</b>\n\nTraceback (most recent call last):\n  ...",
        result={"answer": 42},
    )

    response = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<span class="jd-badge jd-failed" id="jd-status">failed</span>' in html
    assert '<pre class="jd-pre">{\n  &quot;delay&quot;: 0.0,' in html
    assert "&quot;answer&quot;: 42" in html
    assert '<pre class="jd-pre jd-error">task 1 failed: &lt;b&gt;boom&lt;/b&gt;' in html
    assert "<b>boom</b>" not in html
    assert 'data-task="1">failed</span>' in html and 'data-task="2">pending</span>' in html
    assert "Audit trail" in html and "created by sam via system" in html
    assert 'id="jd-retry"' in html
    assert 'id="jd-log"' in html


def test_the_job_page_redacts_secret_config_fields(viewer, make_job, monkeypatch):
    from jobs.jobtypes import DemoSteps

    monkeypatch.setattr(DemoSteps, "secret_fields", ("fail_attempts",))
    job = make_job(JobStatus.PENDING, viewer)

    html = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/change/").content.decode()

    assert "&quot;fail_attempts&quot;: &quot;********&quot;" in html


def test_the_log_endpoint_escapes_html_and_control_characters(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer)
    services.job_log(job_id=job.pk, message="<script>alert('x')</script> & done")
    services.job_log(job_id=job.pk, message="\x1b[31mred\x1b[0m\x07", level=LogLevel.ERROR)

    response = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/logs/?tail=10")

    body = response.content.decode()
    assert response["Content-Type"] == "application/json"
    assert "<script>" not in body and "<" not in body and "&" not in body
    lines = json.loads(body)["lines"]
    assert lines[0]["message"] == "<script>alert('x')</script> & done"
    assert lines[0]["level"] == "info"
    assert lines[1]["message"] == "\\x1b[31mred\\x1b[0m\\x07"
    assert lines[1]["level"] == "error"


def test_the_log_endpoint_tails_and_follows_with_a_cursor(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer)
    for i in range(5):
        services.job_log(job_id=job.pk, message=f"line {i}")
    client = client_for(viewer)

    tail = client.get(f"/admin/jobs/job/{job.pk}/logs/?tail=2").json()
    services.job_log(job_id=job.pk, message="line 5")
    follow = client.get(f"/admin/jobs/job/{job.pk}/logs/?after={tail['cursor']}").json()
    idle = client.get(f"/admin/jobs/job/{job.pk}/logs/?after={follow['cursor']}").json()

    assert [line["message"] for line in tail["lines"]] == ["line 3", "line 4"]
    assert [line["message"] for line in follow["lines"]] == ["line 5"]
    assert idle["lines"] == [] and idle["cursor"] == follow["cursor"]


def test_the_log_endpoint_refuses_bad_parameters_with_400(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer)

    response = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/logs/?after=x")

    assert response.status_code == 400


def test_the_log_and_status_endpoints_hide_other_users_jobs(viewer, user, make_job):
    theirs = make_job(JobStatus.RUNNING, user)
    client = client_for(viewer)

    assert client.get(f"/admin/jobs/job/{theirs.pk}/logs/").status_code == 404
    assert client.get(f"/admin/jobs/job/{theirs.pk}/status/").status_code == 404


def test_the_endpoints_need_an_admin_login(make_job, client):
    job = make_job(JobStatus.RUNNING)

    response = client.get(f"/admin/jobs/job/{job.pk}/logs/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_status_endpoint_reports_progress_duration_and_tasks(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer, progress_done=1)

    data = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/status/").json()

    assert data["status"] == "running"
    assert (data["progress"], data["progress_done"], data["progress_total"]) == (50, 1, 2)
    assert data["duration"].endswith(" s")
    assert data["can_cancel"] and not data["can_retry"]
    assert [t["name"] for t in data["tasks"]] == ["step 1", "step 2"]


def test_the_cancel_button_cancels_a_pending_job(viewer, make_job):
    job = make_job(JobStatus.PENDING, viewer)

    response = client_for(viewer).post(f"/admin/jobs/job/{job.pk}/cancel/", follow=True)

    assert status_of(job) == JobStatus.CANCELLED
    assert f"Job #{job.pk} cancelled." in texts(response)


def test_the_retry_button_requeues_a_failed_job(viewer, make_job):
    job = make_job(JobStatus.FAILED, viewer)

    response = client_for(viewer).post(f"/admin/jobs/job/{job.pk}/retry/", follow=True)

    assert status_of(job) == JobStatus.PENDING
    assert f"Job #{job.pk} queued again." in texts(response)


def test_the_buttons_refuse_an_illegal_transition_with_a_message(viewer, make_job):
    job = make_job(JobStatus.COMPLETED, viewer)
    client = client_for(viewer)

    cancel = client.post(f"/admin/jobs/job/{job.pk}/cancel/", follow=True)
    retry = client.post(f"/admin/jobs/job/{job.pk}/retry/", follow=True)

    assert status_of(job) == JobStatus.COMPLETED
    assert any(f"cannot cancel job #{job.pk}: it is completed" in m for m in texts(cancel))
    assert any(f"cannot retry job #{job.pk}: it is completed" in m for m in texts(retry))


def test_the_buttons_refuse_a_user_who_does_not_manage_the_job(watcher, user, make_job):
    job = make_job(JobStatus.PENDING, user)

    response = client_for(watcher).post(f"/admin/jobs/job/{job.pk}/cancel/", follow=True)

    assert status_of(job) == JobStatus.PENDING
    assert "Refused: you may only cancel your own jobs." in texts(response)
    page = client_for(watcher).get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert 'id="jd-cancel"' not in page


def test_the_buttons_accept_only_post(viewer, make_job):
    job = make_job(JobStatus.PENDING, viewer)

    response = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/cancel/")

    assert response.status_code == 405
    assert status_of(job) == JobStatus.PENDING


def test_the_buttons_need_a_csrf_token(viewer, make_job):
    from django.test import Client

    job = make_job(JobStatus.PENDING, viewer)
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)

    response = client.post(f"/admin/jobs/job/{job.pk}/cancel/")

    assert response.status_code == 403
    assert status_of(job) == JobStatus.PENDING


def test_the_job_page_is_read_only(viewer, make_job):
    job = make_job(JobStatus.PENDING, viewer)

    response = client_for(viewer).post(
        f"/admin/jobs/job/{job.pk}/change/", {"job_type": "x", "_save": "1"}
    )

    assert response.status_code == 403
