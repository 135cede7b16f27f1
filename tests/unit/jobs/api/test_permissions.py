"""Who sees and acts on which job: own jobs for everyone, all jobs with the permissions."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobStatus
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_job(user) -> Job:
    return make_job(JobStatus.FAILED, user=user)


def listed_ids(client) -> set[int]:
    return {j["id"] for j in client.get("/api/jobs/?page_size=200").json()["results"]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("get", "status/"),
        ("get", "logs/"),
        ("post", "cancel/"),
        ("put", "cancel/"),
        ("post", "retry/"),
    ],
)
def test_another_users_job_is_404_to_a_plain_user_whatever_the_endpoint(
    bob_client, alices_job, method, path
):
    response = getattr(bob_client, method)(f"/api/jobs/{alices_job.pk}/{path}", format="json")

    assert response.status_code == 404
    assert Job.objects.get(pk=alices_job.pk).status == JobStatus.FAILED


def test_another_users_draft_is_404_in_the_wizard_too(bob_client, user):
    draft = make_job(JobStatus.DRAFT, user=user)

    for method, path in [("get", ""), ("get", "analysis/"), ("post", "submit/"), ("delete", "")]:
        response = getattr(bob_client, method)(f"/api/wizard/jobs/{draft.pk}/{path}")
        assert response.status_code == 404, (method, path)
    assert Job.objects.get(pk=draft.pk).status == JobStatus.DRAFT


def test_the_list_never_shows_another_users_jobs(api_client, bob_client, alices_job, other_user):
    bobs = make_job(user=other_user)

    assert listed_ids(bob_client) == {bobs.pk}
    assert listed_ids(api_client) == {alices_job.pk}
    assert bob_client.get("/api/jobs/?created_by=alice").json()["results"] == []


def test_staff_without_view_all_jobs_sees_only_their_own(staff_client, staff_user, alices_job):
    own = make_job(user=staff_user)

    assert listed_ids(staff_client) == {own.pk}
    assert staff_client.get(f"/api/jobs/{alices_job.pk}/").status_code == 404


def test_a_manager_sees_and_acts_on_every_job(manager_client, alices_job, other_user):
    bobs = make_job(user=other_user)

    assert listed_ids(manager_client) == {alices_job.pk, bobs.pk}
    assert manager_client.get(f"/api/jobs/{alices_job.pk}/").status_code == 200
    assert manager_client.post(f"/api/jobs/{alices_job.pk}/retry/").status_code == 200
    assert manager_client.post(f"/api/jobs/{bobs.pk}/cancel/").status_code == 200


def test_a_superuser_sees_and_acts_on_every_job(django_user_model, alices_job):
    from tests.unit.jobs.api.conftest import client_for

    root = django_user_model.objects.create_superuser("root", password="root-pass-123")
    client = client_for(root)

    assert listed_ids(client) == {alices_job.pk}
    assert client.post(f"/api/jobs/{alices_job.pk}/retry/").status_code == 200


def test_view_all_jobs_lets_a_user_see_but_not_act_on_others_jobs(watcher_client, alices_job):
    assert alices_job.pk in listed_ids(watcher_client)
    assert watcher_client.get(f"/api/jobs/{alices_job.pk}/").status_code == 200
    assert watcher_client.get(f"/api/jobs/{alices_job.pk}/logs/").status_code == 200

    for path in ("cancel/", "retry/"):
        response = watcher_client.post(f"/api/jobs/{alices_job.pk}/{path}")
        assert response.status_code == 403
        assert "detail" in response.json()
    assert Job.objects.get(pk=alices_job.pk).status == JobStatus.FAILED


def test_everything_but_health_and_the_schema_needs_authentication(anon_client, alices_job):
    for url in (
        "/api/jobs/",
        f"/api/jobs/{alices_job.pk}/",
        "/api/job-types/",
        "/api/wizard/jobs/",
    ):
        response = anon_client.get(url)
        assert response.status_code == 401, url
        assert "detail" in response.json()
    assert anon_client.post("/api/jobs/", {}, format="json").status_code == 401
    assert anon_client.get("/api/health/").status_code in (200, 503)
    assert anon_client.get("/api/schema/").status_code == 200
