"""Job types are no back door: creating a job needs the right its type declares.

The findings, tried as alice (an ordinary user): POST /api/releases/1/versions/2/
apply/ was a 403, but POST /api/jobs/ with a release.apply job of the same release
was a 201 and the release moved to v2 (bulk too, and release.package/verify); a
maintenance.cleanup job with older_than_days 0 deleted bob's finished jobs, and a
draft of it showed her the counts across all users.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIClient

from jobs import permissions, registry, runner, services
from jobs.models import Job, JobStatus
from tests.support.job_factories import make_job
from tests.support.release_factories import make_release, make_version
from tests.unit.jobs.api.conftest import grant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def release():
    release = make_release("app")
    make_version(release, {"README": b"v1"})
    make_version(release, {"README": b"v2"})
    job = services.job_create(job_type="release.apply", release=release, config={"version": 1})
    runner.run_job(job.pk)
    release.refresh_from_db()
    assert release.current_version.number == 1
    return release


def run_everything() -> None:
    for pk in Job.objects.filter(status=JobStatus.PENDING).values_list("pk", flat=True):
        runner.run_job(pk)


def test_an_ordinary_user_cannot_apply_a_release_through_the_jobs_endpoint(api_client, release):
    assert api_client.post(f"/api/releases/{release.pk}/versions/2/apply/").status_code == 403
    apply = {"job_type": "release.apply", "release": release.pk, "config": {"version": 2}}

    for path, body in (
        ("/api/jobs/", apply),
        ("/api/jobs/bulk/", {"jobs": [apply]}),
        ("/api/wizard/jobs/", apply),
    ):
        response = api_client.post(path, body, format="json")
        assert response.status_code == 403, response.content
        assert "releases.change_release" in response.json()["detail"]
    for job_type in ("release.package", "release.verify", "release.inspect"):
        body = {"job_type": job_type, "release": release.pk}
        assert api_client.post("/api/jobs/", body, format="json").status_code == 403
    run_everything()
    release.refresh_from_db()
    assert release.current_version.number == 1
    assert not Job.objects.filter(created_by__username="alice").exists()


def test_the_release_right_lets_the_same_request_through(api_client, user, release):
    grant(user, "change_release")
    body = {"job_type": "release.apply", "release": release.pk, "config": {"version": 2}}

    assert api_client.post("/api/jobs/", body, format="json").status_code == 201
    run_everything()
    release.refresh_from_db()
    assert release.current_version.number == 2


def test_an_ordinary_user_cannot_clean_up_everyones_jobs_through_a_job(api_client, other_user):
    bobs = make_job(JobStatus.COMPLETED, user=other_user)
    Job.objects.filter(pk=bobs.pk).update(finished_at=timezone.now() - timedelta(days=2))
    assert api_client.post("/api/jobs/cleanup/", {"older_than_days": 0}).status_code == 403
    cleanup = {"job_type": "maintenance.cleanup", "config": {"older_than_days": 0}}

    assert api_client.post("/api/jobs/", cleanup, format="json").status_code == 403
    draft = api_client.post("/api/wizard/jobs/", cleanup, format="json")
    assert draft.status_code == 403 and "would_delete" not in draft.content.decode()
    run_everything()
    assert Job.objects.filter(pk=bobs.pk).exists()


def test_the_job_types_listed_are_those_the_caller_may_create(api_client, user):
    def listed(client) -> set[str]:
        return {t["name"] for t in client.get("/api/job-types/").json()}

    assert {"demo.steps"} <= listed(api_client)
    assert not {"maintenance.cleanup", "release.apply", "tasks.call"} & listed(api_client)
    holder = APIClient()
    holder.force_authenticate(grant(user, "cleanup_jobs", "change_release"))
    assert {"maintenance.cleanup", "release.apply", "release.package"} <= listed(holder)
    assert "tasks.call" not in listed(holder)


def test_a_type_may_decide_by_release_and_config(api_client, user):
    """JobType.may_create(user, release, config): here, big runs for staff only."""

    class Config(serializers.Serializer):
        size = serializers.IntegerField(min_value=1)

    @registry.register
    class Sized(registry.JobType):
        name = "test.sized"
        config_serializer = Config

        def may_create(self, user, release, config):
            return config["size"] <= 10 or user.is_staff

    try:
        small = {"job_type": "test.sized", "config": {"size": 3}}
        big = {"job_type": "test.sized", "config": {"size": 99}}
        assert api_client.post("/api/jobs/", small, format="json").status_code == 201
        assert api_client.post("/api/jobs/", big, format="json").status_code == 403
        assert permissions.may_create(user, registry.get("test.sized"))  # the type as a whole
    finally:
        registry.unregister("test.sized")


def test_submitting_or_retrying_needs_the_right_of_whoever_acts_now(api_client, user):
    """A draft made while alice held the right (or by someone who does) is not hers to
    submit once she no longer holds it; nor is a retry."""
    cleaner = grant(user, "cleanup_jobs")
    draft = services.job_create(job_type="maintenance.cleanup", user=cleaner, draft=True)
    failed = services.job_create(job_type="maintenance.cleanup", user=cleaner)
    Job.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED)
    cleaner.user_permissions.clear()

    submit = api_client.post(f"/api/wizard/jobs/{draft.pk}/submit/")
    retry = api_client.post(f"/api/jobs/{failed.pk}/retry/", {}, format="json")

    assert (submit.status_code, retry.status_code) == (403, 403)
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert (statuses[draft.pk], statuses[failed.pk]) == (JobStatus.DRAFT, JobStatus.FAILED)
