"""The release page: Apply / Roll back naming their target, the current version marked,
a warning before re-applying it, versions created in the admin, labels by slug."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs import services as job_services
from jobs.models import Job
from releases.models import Release, ReleaseVersion
from tests.support.release_factories import make_version, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def su(django_user_model, client):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(user)
    return user


@pytest.fixture
def applied(release):
    """v1 applied then v2 applied: v2 current, a rollback goes to v1."""
    make_version(release, {"README": b"one"})
    make_version(release, {"README": b"two"})
    for n in (1, 2):
        run(
            job_services.job_create(
                job_type="release.apply", config={"version": n}, release=release
            )
        )
    release.refresh_from_db()
    return release


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_release_page_names_the_targets_and_marks_the_current_version(client, su, applied):
    html = client.get(f"/admin/releases/release/{applied.pk}/change/").content.decode()
    assert "Re-apply v2 (current)" in html
    assert "Roll back to v1" in html
    assert f"<strong>{applied.slug} v2</strong>" in html
    assert html.count('jd-current">current</span>') == 1
    # the history shows the version of each job
    assert "<th>version</th>" in html and "<td>v1</td>" in html and "<td>v2</td>" in html


def test_re_applying_the_current_version_asks_first(client, su, applied):
    url = f"/admin/releases/release/{applied.pk}/apply/"
    before = Job.objects.count()

    ask = client.post(url, {"number": 2})
    assert "already the current version" in ask.content.decode()
    assert Job.objects.count() == before

    done = client.post(url, {"number": 2, "reapply": "yes"}, follow=True)
    assert Job.objects.count() == before + 1
    assert any(f"Applying {applied.slug} v2 again: job #" in m for m in messages_of(done))


def test_applying_another_version_and_rolling_back_say_which_version(client, su, applied):
    applied_v1 = client.post(
        f"/admin/releases/release/{applied.pk}/apply/", {"number": 1}, follow=True
    )
    assert any(f"Applying {applied.slug} v1: job #" in m for m in messages_of(applied_v1))
    Job.objects.filter(job_type="release.apply", status="pending").delete()

    rolled = client.post(f"/admin/releases/release/{applied.pk}/rollback/", follow=True)
    assert any(f"Rolling back {applied.slug} to v1: job #" in m for m in messages_of(rolled))


def test_a_version_is_created_in_the_admin_with_files_manifest_and_comment(client, su, release):
    response = client.post(
        f"/admin/releases/release/{release.pk}/new-version/",
        {
            "uploads": [
                SimpleUploadedFile("a.txt", b"alpha"),
                SimpleUploadedFile("b.txt", b"beta"),
            ],
            "manifest": '{"files": ["a.txt", "b.txt"], "note": "hi"}',
            "comment": "from the admin",
        },
        follow=True,
    )
    version = ReleaseVersion.objects.get(release=release)
    assert (version.number, version.comment, version.manifest["note"]) == (
        1,
        "from the admin",
        "hi",
    )
    assert sorted(version.files.values_list("path", flat=True)) == ["a.txt", "b.txt"]
    assert f"Version {release.slug} v1 created (2 files)." in messages_of(response)


def test_a_bad_manifest_shows_the_error_and_creates_nothing(client, su, release):
    response = client.post(
        f"/admin/releases/release/{release.pk}/new-version/",
        {"uploads": [SimpleUploadedFile("a.txt", b"alpha")], "manifest": '{"files": ["z.txt"]}'},
    )
    assert response.status_code == 200
    assert "is in the manifest but was not uploaded" in response.content.decode()
    assert not ReleaseVersion.objects.exists()


def test_versions_are_labelled_by_the_release_slug(release):
    version = make_version(release, {"README": b"x"})
    assert str(ReleaseVersion.objects.select_related("release").get(pk=version.pk)) == (
        f"{release.slug} v1"
    )
    assert isinstance(release, Release)
