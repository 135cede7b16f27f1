"""The releases admin: pages open, versions are read-only, actions go through services."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from jobs import services as job_services
from jobs.models import Job, JobStatus
from releases.models import Artefact, Release, ReleaseVersion
from tests.support.release_factories import make_version, run

pytestmark = pytest.mark.django_db

# The read-only versions inline still posts its (empty) management form.
NO_INLINES = {"versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}


@pytest.fixture
def client_as(client):
    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def su(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")


@pytest.fixture
def populated(release, user):
    make_version(release, {"README": b"hello", "bin/app": b"\x00" * 2048}, comment="first")
    make_version(release, {"README": b"hello 2"}, comment="second")
    run(job_services.job_create(job_type="release.apply", config={"version": 1}, release=release))
    return release


def test_every_releases_admin_page_opens_for_a_superuser(client_as, su, populated):
    client = client_as(su)
    version = ReleaseVersion.objects.get(number=1)
    artefact = Artefact.objects.filter(version=version).first()
    urls = [
        reverse("admin:releases_release_changelist"),
        reverse("admin:releases_release_add"),
        reverse("admin:releases_release_change", args=[populated.pk]),
        reverse("admin:releases_release_delete", args=[populated.pk]),
        reverse("admin:releases_releaseversion_changelist"),
        reverse("admin:releases_releaseversion_change", args=[version.pk]),
        reverse("admin:releases_artefact_changelist"),
        reverse("admin:releases_artefact_change", args=[artefact.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url


def test_the_release_page_shows_versions_artefact_sizes_and_its_jobs(client_as, su, populated):
    page = client_as(su).get(reverse("admin:releases_release_change", args=[populated.pk]))
    text = page.content.decode()
    assert "first" in text and "second" in text  # the versions inline
    assert "2.0 KB" in text  # v1's files: 5 + 2048 bytes
    job = Job.objects.get(release=populated)
    assert f"#{job.pk}" in text and "release.apply" in text  # the history
    version_page = client_as(su).get(
        reverse(
            "admin:releases_releaseversion_change", args=[ReleaseVersion.objects.get(number=1).pk]
        )
    )
    sha = Artefact.objects.get(path="bin/app").sha256
    assert sha in version_page.content.decode()


def test_versions_and_artefacts_cannot_be_added_changed_or_deleted_in_the_admin(
    client_as, su, populated
):
    client = client_as(su)
    version = ReleaseVersion.objects.get(number=1)
    change = reverse("admin:releases_releaseversion_change", args=[version.pk])
    response = client.post(change, {"comment": "tampered", "manifest": "{}"})
    assert response.status_code == 403
    assert client.get(reverse("admin:releases_releaseversion_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:releases_releaseversion_delete", args=[version.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    artefact = Artefact.objects.filter(version=version).first()
    assert (
        client.post(
            reverse("admin:releases_artefact_change", args=[artefact.pk]), {"size": "1"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            reverse("admin:releases_artefact_delete", args=[artefact.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    version.refresh_from_db()
    assert version.comment == "first"
    assert "Save" not in client.get(change).content.decode().split("submit-row")[-1][:200]


def test_a_release_is_created_and_edited_through_the_admin_form(client_as, su):
    client = client_as(su)
    response = client.post(
        reverse("admin:releases_release_add"), {"slug": "web", "name": "Web", **NO_INLINES}
    )
    assert response.status_code == 302
    release = Release.objects.get(slug="web")
    assert release.created_by == su
    client.post(
        reverse("admin:releases_release_change", args=[release.pk]),
        {"slug": "web", "name": "Web 2", "description": "d", **NO_INLINES},
    )
    release.refresh_from_db()
    assert release.name == "Web 2"


def _action(client, model: str, action: str, pks: list[int]):
    return client.post(
        reverse(f"admin:releases_{model}_changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )


def test_admin_actions_queue_apply_rollback_package_and_verify_jobs(client_as, su, populated):
    client = client_as(su)
    version = ReleaseVersion.objects.get(number=2)
    for action in ("apply", "package", "verify"):
        response = _action(client, "releaseversion", action, [version.pk])
        assert "Queued 1" in response.content.decode(), action
    jobs = Job.objects.filter(release=populated, status=JobStatus.PENDING).order_by("pk")
    assert [j.job_type for j in jobs] == ["release.apply", "release.package", "release.verify"]
    for job in jobs:
        assert run(job).status == JobStatus.COMPLETED, job.error
    populated.refresh_from_db()
    assert populated.current_version.number == 2

    response = _action(client, "release", "rollback", [populated.pk])
    assert "Queued 1 rollback job" in response.content.decode()
    run(Job.objects.get(status=JobStatus.PENDING))
    populated.refresh_from_db()
    assert populated.current_version.number == 1

    for action in ("apply_latest", "package_current", "verify_current"):
        assert "Queued 1" in _action(client, "release", action, [populated.pk]).content.decode()


def test_an_action_refused_by_the_service_is_reported_not_raised(client_as, su, release):
    response = _action(client_as(su), "release", "rollback", [release.pk])
    assert response.status_code == 200
    assert "no applied version" in response.content.decode()


def test_actions_are_hidden_from_staff_without_the_change_permission(
    client_as, staff_user, populated
):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_release", "view_releaseversion"])
    )
    client = client_as(staff_user)
    page = client.get(reverse("admin:releases_releaseversion_changelist")).content.decode()
    assert 'value="apply"' not in page
    version = ReleaseVersion.objects.get(number=2)
    _action(client, "releaseversion", "apply", [version.pk])
    assert not Job.objects.filter(release=populated, status=JobStatus.PENDING).exists()


def test_deleting_a_release_in_the_admin_removes_versions_jobs_and_files(
    client_as, su, populated, media_root, django_capture_on_commit_callbacks
):
    files = [Path(media_root) / name for name in Artefact.objects.values_list("file", flat=True)]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_as(su).post(
            reverse("admin:releases_release_delete", args=[populated.pk]), {"post": "yes"}
        )
    assert response.status_code == 302
    assert not Release.objects.exists() and not ReleaseVersion.objects.exists()
    assert not Job.objects.exists()
    assert not any(f.exists() for f in files)


def test_deleting_a_release_with_a_running_job_is_refused_in_the_admin(client_as, su, populated):
    job = Job.objects.get(release=populated)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, lock_slot=0)
    client = client_as(su)
    response = client.post(
        reverse("admin:releases_release_delete", args=[populated.pk]), {"post": "yes"}, follow=True
    )
    assert "is running on it" in response.content.decode()
    assert Release.objects.filter(pk=populated.pk).exists()
    bulk = _action(client, "release", "delete_selected", [populated.pk])
    assert bulk.status_code == 200
    client.post(
        reverse("admin:releases_release_changelist"),
        {"action": "delete_selected", "_selected_action": [populated.pk], "post": "yes"},
    )
    assert Release.objects.filter(pk=populated.pk).exists()
