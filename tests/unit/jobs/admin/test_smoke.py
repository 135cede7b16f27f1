"""Every admin URL the jobs admin adds answers a GET, and every action answers a POST."""

from __future__ import annotations

import pytest

from jobs.models import JobStatus
from tests.support.admin_helpers import action, client_for

pytestmark = pytest.mark.django_db


def test_every_added_admin_url_answers_a_get(superuser, make_job):
    job = make_job(JobStatus.FAILED, superuser)
    client = client_for(superuser)
    urls = [
        "/admin/",
        "/admin/jobs/",
        "/admin/jobs/job/",
        "/admin/jobs/job/?all=",
        "/admin/jobs/job/run/",
        "/admin/jobs/job/run/?job_type=demo.steps",
        "/admin/jobs/job/run/?job_type=maintenance.cleanup",
        "/admin/jobs/job/dashboard/",
        f"/admin/jobs/job/{job.pk}/change/",
        f"/admin/jobs/job/{job.pk}/logs/",
        f"/admin/jobs/job/{job.pk}/logs/?tail=5",
        f"/admin/jobs/job/{job.pk}/logs/?after=0",
        f"/admin/jobs/job/{job.pk}/status/",
        f"/admin/jobs/job/{job.pk}/history/",  # the audit page of the job (follow)
        f"/admin/jobs/job/{job.pk}/retry/",
        f"/admin/jobs/job/{job.pk}/status/?tp=2&eh=x",
        f"/admin/jobs/job/{job.pk}/logs/?level=30&q=boom",
        "/admin/jobs/workers/",
        "/admin/jobs/auditevent/",
        "/admin/jobs/auditevent/?via=api&target_type=jobs.job",
        "/admin/django_q/schedule/",
        "/admin/django_q/success/",
        "/admin/django_q/failure/",
        "/admin/django_q/ormq/",
    ]

    statuses = {url: client.get(url, follow=True).status_code for url in urls}

    assert statuses == dict.fromkeys(urls, 200)


def test_unknown_jobs_answer_404_on_every_added_endpoint(superuser):
    client = client_for(superuser)

    for suffix in ("logs/", "status/"):
        assert client.get(f"/admin/jobs/job/999999/{suffix}").status_code == 404
    for suffix in ("cancel/", "retry/", "submit/", "discard/", "run-now/"):
        assert client.post(f"/admin/jobs/job/999999/{suffix}").status_code == 404
    assert client.get("/admin/jobs/job/abc/status/").status_code == 404


@pytest.mark.parametrize(
    "name",
    ["cancel_jobs", "retry_jobs", "run_now", "submit_drafts", "discard_drafts", "delete_finished"],
)
@pytest.mark.parametrize("status", list(JobStatus))
def test_every_action_answers_a_post_on_every_status_without_an_error(
    superuser, make_job, name, status
):
    job = make_job(status, superuser)

    response = action(client_for(superuser), name, [job], post="yes")

    assert response.status_code == 200


@pytest.mark.parametrize("button", ["cancel", "retry", "submit", "discard", "run-now"])
@pytest.mark.parametrize("status", list(JobStatus))
def test_every_button_answers_a_post_on_every_status_without_an_error(
    superuser, make_job, button, status
):
    job = make_job(status, superuser)

    response = client_for(superuser).post(f"/admin/jobs/job/{job.pk}/{button}/", follow=True)

    assert response.status_code == 200
