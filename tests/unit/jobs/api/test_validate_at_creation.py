"""Bad input is refused when the job (or version) is created, naming the field;
nothing is created.

The findings: maintenance.cleanup with older_than_days = 10**12, release.apply with
a version or a rollback_of that does not exist (the latter even completed and
recorded a bogus link), and an upload whose file name reduces to nothing: each was
created, then failed or silently did nothing.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from jobs.models import Job
from releases.models import Artefact, ReleaseVersion
from tests.support.release_factories import make_release, make_version
from tests.unit.jobs.api.conftest import grant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def operator(django_user_model):
    """May clean up and change releases (so only the input is wrong)."""
    u = django_user_model.objects.create_user("otto", password="otto-pass-123")
    return grant(u, "cleanup_jobs", "change_release", "add_releaseversion")


@pytest.fixture
def client(operator) -> APIClient:
    c = APIClient()
    c.force_authenticate(operator)
    return c


@pytest.fixture
def release():
    release = make_release("app")
    make_version(release, {"README": b"v1"})
    return release


@pytest.mark.parametrize("days", [10**12, -1, 36_501])
def test_cleanup_with_an_out_of_range_age_is_a_400_naming_it(client, days):
    for path, body in (
        ("/api/jobs/", {"job_type": "maintenance.cleanup", "config": {"older_than_days": days}}),
        (
            "/api/wizard/jobs/",
            {"job_type": "maintenance.cleanup", "config": {"older_than_days": days}},
        ),
        (
            "/api/jobs/bulk/",
            {"jobs": [{"job_type": "maintenance.cleanup", "config": {"older_than_days": days}}]},
        ),
    ):
        response = client.post(path, body, format="json")

        assert response.status_code == 400, response.content
        assert "older_than_days" in response.content.decode()
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"version": 9}, "version"),
        ({"version": 1, "rollback_of": 99_999}, "rollback_of"),
        ({"version": 1, "restores": 99_999}, "restores"),
    ],
)
def test_an_apply_naming_a_version_or_job_that_does_not_exist_is_a_400(
    client, release, config, field
):
    for path in ("/api/jobs/", "/api/wizard/jobs/"):
        response = client.post(
            path,
            {"job_type": "release.apply", "release": release.pk, "config": config},
            format="json",
        )

        assert response.status_code == 400, response.content
        assert list(response.json()) == ["config"]
        assert field in response.json()["config"][0]
    response = client.post(
        "/api/jobs/bulk/",
        {"jobs": [{"job_type": "release.apply", "release": release.pk, "config": config}]},
        format="json",
    )
    assert response.status_code == 400 and field in response.json()["jobs"]["0"]["config"][0]
    assert not Job.objects.exists()
    release.refresh_from_db()
    assert release.current_version is None


def test_a_rollback_of_must_name_an_apply_job_of_the_same_release(client, release):
    other = make_release("other")
    make_version(other, {"README": b"v1"})
    theirs = client.post(
        "/api/jobs/",
        {"job_type": "release.apply", "release": other.pk, "config": {"version": 1}},
        format="json",
    ).json()["id"]

    response = client.post(
        "/api/jobs/",
        {
            "job_type": "release.apply",
            "release": release.pk,
            "config": {"version": 1, "rollback_of": theirs},
        },
        format="json",
    )

    assert response.status_code == 400 and "rollback_of" in response.json()["config"][0]


@pytest.mark.parametrize("job_type", ["release.inspect", "release.package", "release.verify"])
def test_a_release_job_on_a_release_without_versions_or_with_a_missing_one_is_a_400(
    client, job_type
):
    empty = make_release("empty")

    response = client.post("/api/jobs/", {"job_type": job_type, "release": empty.pk}, format="json")
    assert response.status_code == 400 and "release" in response.json()
    response = client.post(
        "/api/jobs/",
        {"job_type": job_type, "release": empty.pk, "config": {"version": 3}},
        format="json",
    )
    assert response.status_code == 400 and "version" in response.json()["config"][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize("name", ["💾", "@@", "docs/—", "a/%%"])
def test_an_upload_whose_name_reduces_to_nothing_is_a_400_naming_the_field(client, release, name):
    for data, field in (
        ({"files": [SimpleUploadedFile("x.txt", b"hi")], "paths": [name]}, "paths"),
        ({"files": [SimpleUploadedFile(name.rsplit("/", 1)[-1], b"hi")]}, "files"),
    ):
        response = client.post(f"/api/releases/{release.pk}/versions/", data, format="multipart")

        assert response.status_code == 400, response.content
        assert list(response.json()) == [field]
    assert ReleaseVersion.objects.filter(release=release).count() == 1
    assert Artefact.objects.count() == 1
