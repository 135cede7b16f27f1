"""The audit page: every door's actions, filters, diffs, constant queries, outliving jobs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.models import AuditEvent, JobStatus
from tests.support.admin_helpers import client_for

pytestmark = pytest.mark.django_db


def test_the_audit_page_lists_who_did_what_through_which_door(superuser, viewer, make_job):
    job = make_job(JobStatus.FAILED, viewer)
    services.job_retry(job=job, user=viewer, via="api", config={"steps": 3, "delay": 0})
    services.job_cancel(job=job, user=superuser, via="cli")

    html = client_for(superuser).get("/admin/jobs/auditevent/").content.decode()

    assert "retried" in html and "cancelled" in html and "created" in html
    assert ">api<" in html and ">cli<" in html
    assert f'<a href="/admin/jobs/job/{job.pk}/change/">#{job.pk} demo.steps</a>' in html
    # the config change is a diff, key by key
    assert '<span class="jd-diff-del">- config.steps: 2</span>' in html
    assert '<span class="jd-diff-add">+ config.steps: 3</span>' in html


def test_the_audit_page_filters_by_actor_action_door_and_target(superuser, viewer, make_job):
    job = make_job(JobStatus.PENDING, viewer)
    services.job_cancel(job=job, user=superuser, via="cli")
    client = client_for(superuser)

    def rows(query: str) -> list[str]:
        response = client.get(f"/admin/jobs/auditevent/?{query}")
        assert response.status_code == 200
        return [e.action for e in response.context["cl"].result_list]

    assert rows(f"actor__id__exact={superuser.pk}") == ["cancelled"]
    assert rows("action__exact=created") == ["created"]
    assert rows("via=cli") == ["cancelled"]
    assert rows("target_type=jobs.job") == ["cancelled", "created"]
    assert rows(f"target_type=jobs.job&target_id={job.pk}") == ["cancelled", "created"]
    assert rows("created_at__gte=2000-01-01") == ["cancelled", "created"]


def test_the_job_pages_history_button_opens_its_audit_events(superuser, make_job):
    job = make_job(JobStatus.PENDING, superuser)
    response = client_for(superuser).get(f"/admin/jobs/job/{job.pk}/history/")
    assert response.status_code == 302
    assert response["Location"] == (
        f"/admin/jobs/auditevent/?target_type=jobs.job&target_id={job.pk}"
    )


def test_audit_events_outlive_the_jobs_they_describe(superuser, make_job):
    job = make_job(JobStatus.COMPLETED, superuser)
    services.job_delete(job=job, user=superuser, via="admin")

    events = AuditEvent.objects.filter(target_type="jobs.job", target_id=str(job.pk))
    assert sorted(events.values_list("action", flat=True)) == ["created", "deleted"]
    html = client_for(superuser).get("/admin/jobs/auditevent/").content.decode()
    assert f"#{job.pk} demo.steps (deleted)" in html


def test_the_audit_page_runs_the_same_queries_for_5_and_50_events(superuser, make_job):
    client = client_for(superuser)
    for _ in range(5):
        make_job(JobStatus.PENDING, superuser)
    with CaptureQueriesContext(connection) as five:
        client.get("/admin/jobs/auditevent/")
    for _ in range(45):
        make_job(JobStatus.PENDING, superuser)
    with CaptureQueriesContext(connection) as fifty:
        assert client.get("/admin/jobs/auditevent/").status_code == 200
    assert len(fifty.captured_queries) == len(five.captured_queries)


def test_the_audit_page_is_read_only(superuser, make_job):
    make_job(JobStatus.PENDING, superuser)
    event = AuditEvent.objects.get()
    client = client_for(superuser)
    assert client.get("/admin/jobs/auditevent/add/").status_code == 403
    assert client.post(f"/admin/jobs/auditevent/{event.pk}/delete/").status_code == 403
