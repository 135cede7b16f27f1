"""The live job page: every changing fact in one small poll, tasks a page at a time,
log filters, retry with a corrected config, the draft's and delayed job's buttons."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import AuditEvent, Job, JobStatus, LogLevel, Task, TaskStatus
from tests.support.admin_helpers import client_for, status_of, texts

pytestmark = pytest.mark.django_db


def test_the_poll_carries_every_changing_fact_of_the_page(viewer, make_job):
    job = make_job(JobStatus.PENDING, viewer)
    client = client_for(viewer)
    before = client.get(f"/admin/jobs/job/{job.pk}/status/").json()
    assert before["times"]["started_when"] is None
    assert before["fields"]["worker_text"] == "—"

    started = timezone.now() - timedelta(seconds=5)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED,
        attempts=1,
        worker="box:42",
        started_at=started,
        heartbeat_at=started,
        finished_at=started + timedelta(seconds=2),
        error="task 1 failed: boom",
    )
    Task.objects.filter(job=job, position=1).update(
        status=TaskStatus.FAILED,
        attempts=1,
        started_at=started,
        error="Traceback (most recent call last):\n  ...\nboom",
    )
    data = client.get(f"/admin/jobs/job/{job.pk}/status/?eh={before['error']['hash']}").json()

    assert data["fields"]["attempts_text"] == "1 of 1"
    assert data["fields"]["worker_text"] == "box:42"
    assert data["fields"]["duration"] == "2.0 s"
    assert data["times"]["started_when"][1] == started.isoformat()
    assert data["times"]["finished_when"] is not None
    assert data["error"]["text"] == "task 1 failed: boom"
    assert data["can_retry"] and not data["can_cancel"]
    first = data["tasks"][0]
    assert (first["status"], first["attempts"], first["error"]) == ("failed", 1, "boom")
    assert first["started"].endswith("UTC")


def test_the_error_result_and_config_are_sent_only_when_they_changed(viewer, make_job):
    job = make_job(JobStatus.FAILED, viewer, error="boom", result={"a": 1})
    client = client_for(viewer)
    first = client.get(f"/admin/jobs/job/{job.pk}/status/").json()
    hashes = {k: first[v]["hash"] for k, v in (("eh", "error"), ("rh", "result"), ("ch", "config"))}

    again = client.get(f"/admin/jobs/job/{job.pk}/status/", hashes).json()

    assert "text" in first["error"] and "text" in first["result"] and "text" in first["config"]
    assert "text" not in again["error"] and "text" not in again["result"]
    assert "text" not in again["config"]


def test_the_tasks_come_a_page_at_a_time_following_the_running_task(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer, config={"steps": 45, "delay": 0})
    Task.objects.filter(job=job, position__lte=24).update(status=TaskStatus.SUCCEEDED)
    Task.objects.filter(job=job, position=25).update(status=TaskStatus.RUNNING)
    client = client_for(viewer)

    auto = client.get(f"/admin/jobs/job/{job.pk}/status/").json()
    third = client.get(f"/admin/jobs/job/{job.pk}/status/?tp=3").json()

    assert auto["tasks_page"] | {"counts": None} == {
        "page": 2,
        "pages": 3,
        "per_page": 20,
        "total": 45,
        "counts": None,
    }
    assert auto["tasks_page"]["counts"] == {"pending": 20, "running": 1, "succeeded": 24}
    assert [t["position"] for t in auto["tasks"]] == list(range(21, 41))
    assert [t["position"] for t in third["tasks"]] == list(range(41, 46))


def test_a_1000_task_job_page_loads_fast_and_its_poll_is_under_10_kb(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer, config={"steps": 1000, "delay": 0})
    Task.objects.filter(job=job, position__lte=700).update(
        status=TaskStatus.SUCCEEDED,
        attempts=1,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    Task.objects.filter(job=job, position=701).update(status=TaskStatus.RUNNING, attempts=1)
    for i in range(300):
        services.job_log(job_id=job.pk, message=f"step {i} done")
    client = client_for(viewer)
    client.get(f"/admin/jobs/job/{job.pk}/change/")  # warm up templates

    started = time.perf_counter()
    page = client.get(f"/admin/jobs/job/{job.pk}/change/")
    elapsed = time.perf_counter() - started
    poll = client.get(f"/admin/jobs/job/{job.pk}/status/")

    print(
        f"1,000-task job: page {elapsed:.3f} s, {len(page.content)} bytes; "
        f"poll {len(poll.content)} bytes"
    )
    assert page.status_code == 200
    assert elapsed < 1.0, f"the page took {elapsed:.2f} s"
    assert len(page.content) < 100_000
    assert len(poll.content) < 10_000, len(poll.content)
    assert poll.json()["tasks"][0]["position"] == 701


def test_the_log_endpoint_filters_by_level_and_text(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer)
    services.job_log(job_id=job.pk, message="copying files")
    services.job_log(job_id=job.pk, message="disk almost full", level=LogLevel.WARNING)
    services.job_log(job_id=job.pk, message="copy failed", level=LogLevel.ERROR)
    client = client_for(viewer)

    def messages(query: str) -> list[str]:
        data = client.get(f"/admin/jobs/job/{job.pk}/logs/?{query}").json()
        return [line["message"] for line in data["lines"]]

    assert messages("level=30") == ["disk almost full", "copy failed"]
    assert messages("q=COPY") == ["copying files", "copy failed"]
    assert messages("level=40&q=copy") == ["copy failed"]
    assert messages("after=0&level=30&q=disk") == ["disk almost full"]


def test_the_job_page_puts_the_log_above_the_facts_and_pages_its_tasks(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer, config={"steps": 30, "delay": 0})
    html = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert html.index('id="jd-log"') < html.index("field-started_when")
    assert 'id="jd-log-level"' in html and 'id="jd-log-search"' in html
    assert "page 1 of 2 (30 tasks, 20 a page)" in html
    assert html.count('data-task="') == 20


def test_retry_with_a_corrected_config_shows_the_generated_form_prefilled(viewer, make_job):
    job = make_job(JobStatus.FAILED, viewer, config={"steps": 4, "delay": 0.5})
    html = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/retry/").content.decode()
    assert 'name="steps" value="4"' in html
    assert 'name="delay" value="0.5"' in html
    assert 'id="jd-retry-config"' in html


def test_retry_with_a_corrected_config_retries_with_it_and_audits_the_change(viewer, make_job):
    job = make_job(JobStatus.FAILED, viewer, config={"steps": 4, "delay": 0.5})

    response = client_for(viewer).post(
        f"/admin/jobs/job/{job.pk}/retry/",
        {"_config": "1", "steps": "3", "delay": "0", "fail_attempts": "0"},
        follow=True,
    )

    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert (job.config["steps"], job.config["delay"]) == (3, 0.0)
    assert f"Job #{job.pk} queued again with the corrected config." in texts(response)
    event = AuditEvent.objects.get(job=job, action="retried")
    assert event.detail["config"]["new"]["steps"] == 3


def test_an_invalid_corrected_config_shows_the_errors_and_retries_nothing(viewer, make_job):
    job = make_job(JobStatus.FAILED, viewer)

    response = client_for(viewer).post(
        f"/admin/jobs/job/{job.pk}/retry/", {"_config": "1", "steps": "0", "delay": "0"}
    )

    assert response.status_code == 200
    assert "Please correct the errors below" in response.content.decode()
    assert status_of(job) == JobStatus.FAILED


def test_a_drafts_page_offers_submit_and_discard_and_they_work(viewer, make_job):
    draft = make_job(JobStatus.DRAFT, viewer)
    other = make_job(JobStatus.DRAFT, viewer)
    client = client_for(viewer)
    html = client.get(f"/admin/jobs/job/{draft.pk}/change/").content.decode()
    assert 'id="jd-submit-tool">' in html and 'id="jd-discard-tool">' in html

    submitted = client.post(f"/admin/jobs/job/{draft.pk}/submit/", follow=True)
    discarded = client.post(f"/admin/jobs/job/{other.pk}/discard/", follow=True)

    assert status_of(draft) == JobStatus.PENDING
    assert f"Draft #{draft.pk} submitted: it runs." in texts(submitted)
    assert not Job.objects.filter(pk=other.pk).exists()
    assert f"Draft #{other.pk} discarded." in texts(discarded)
    assert discarded.redirect_chain[-1][0] == "/admin/jobs/job/"


def test_a_delayed_jobs_page_offers_run_now(viewer, make_job):
    job = make_job(JobStatus.PENDING, viewer, run_after=timezone.now() + timedelta(hours=2))
    client = client_for(viewer)
    html = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert 'id="jd-run-now-tool">' in html

    response = client.post(f"/admin/jobs/job/{job.pk}/run-now/", follow=True)

    assert Job.objects.get(pk=job.pk).run_after is None
    assert f"Job #{job.pk} starts now." in texts(response)
