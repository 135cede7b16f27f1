"""Releases and versions: creation, immutability, uploads, deletion."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs import services as job_services
from jobs.models import Job, JobLog, JobStatus, Task
from releases import services
from releases.models import Artefact, ImmutableError, Release, ReleaseVersion
from tests.support.release_factories import make_release, make_version, run

pytestmark = pytest.mark.django_db


def test_a_release_is_created_with_its_owner_and_a_unique_slug(user):
    release = services.release_create(slug="web", name="Web", user=user)
    assert release.created_by == user and release.current_version is None
    with pytest.raises(ValidationError) as exc:
        services.release_create(slug="web", name="Again")
    assert "slug" in exc.value.message_dict


def test_a_bad_slug_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as exc:
        services.release_create(slug="not a slug!", name="x")
    assert "slug" in exc.value.message_dict
    assert not Release.objects.exists()


def test_updating_a_release_changes_only_its_name_slug_or_description(release):
    services.release_update(release=release, name="New name", description="d")
    release.refresh_from_db()
    assert (release.name, release.description) == ("New name", "d")
    with pytest.raises(ValidationError) as exc:
        services.release_update(release=release, current_version=None)
    assert "current_version" in exc.value.message_dict


def test_versions_are_numbered_per_release_and_link_their_parent(release):
    v1 = make_version(release, {"a.txt": b"1"})
    v2 = make_version(release, {"a.txt": b"2"})
    v3 = make_version(release, {"a.txt": b"3"}, parent=1)
    other = make_version(make_release("other"), {"a.txt": b"x"})
    assert [v1.number, v2.number, v3.number, other.number] == [1, 2, 3, 1]
    assert v1.parent is None and v2.parent == v1 and v3.parent == v1


def test_an_unknown_parent_is_refused(release):
    with pytest.raises(ValidationError) as exc:
        make_version(release, {"a.txt": b"1"}, parent=7)
    assert "parent" in exc.value.message_dict
    assert not ReleaseVersion.objects.exists()


def test_uploaded_files_are_stored_with_size_and_sha256_under_the_media_root(release, media_root):
    data = b"hello world\n" * 1000
    version = make_version(release, {"docs/readme.txt": data, "bin/app": b"\x00\x01"})
    files = {a.path: a for a in version.files.all()}
    assert set(files) == {"docs/readme.txt", "bin/app"}
    readme = files["docs/readme.txt"]
    assert readme.size == len(data)
    assert readme.sha256 == hashlib.sha256(data).hexdigest()
    stored = Path(media_root) / readme.file.name
    assert stored.read_bytes() == data
    assert stored.resolve().is_relative_to(Path(media_root).resolve())


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/passwd", "a/../../b", "C:\\x", "..\\x"])
def test_an_uploaded_name_that_could_escape_is_refused_and_nothing_is_stored(
    release, media_root, name
):
    with pytest.raises(ValidationError):
        services.version_create(
            release=release, files=[SimpleUploadedFile("x", b"1")], paths=[name]
        )
    # A File named by its caller (the CLI, a script) is checked by that name.
    with pytest.raises(ValidationError):
        services.version_create(release=release, files=[File(io.BytesIO(b"1"), name=name)])
    assert not ReleaseVersion.objects.exists()
    assert not Path(media_root).exists() or not any(Path(media_root).rglob("*.*"))


def test_a_manifest_with_path_traversal_is_refused(release):
    with pytest.raises(ValidationError) as exc:
        make_version(release, {"a.txt": b"1"}, manifest={"files": ["../a.txt"]})
    assert "manifest" in exc.value.message_dict
    assert not ReleaseVersion.objects.exists()


def test_the_manifest_must_list_exactly_the_uploaded_files_with_matching_checksums(release):
    with pytest.raises(ValidationError, match="not uploaded"):
        make_version(release, {"a.txt": b"1"}, manifest={"files": ["a.txt", "b.txt"]})
    with pytest.raises(ValidationError, match="not in the manifest"):
        make_version(release, {"a.txt": b"1", "c.txt": b"3"}, manifest={"files": ["a.txt"]})
    wrong = {"files": [{"path": "a.txt", "sha256": "0" * 64}]}
    with pytest.raises(ValidationError, match="sha256"):
        make_version(release, {"a.txt": b"1"}, manifest=wrong)
    good = {"files": [{"path": "a.txt", "size": 1, "sha256": hashlib.sha256(b"1").hexdigest()}]}
    assert make_version(release, {"a.txt": b"1"}, manifest=good).manifest == good


def test_a_failed_upload_leaves_no_files_behind(release, media_root):
    with pytest.raises(ValidationError):
        make_version(
            release,
            {"a.txt": b"1", "b.txt": b"2"},
            manifest={"files": ["a.txt", {"path": "b.txt", "size": 99}]},
        )
    assert not any(p.is_file() for p in Path(media_root).rglob("*"))


def test_the_same_path_uploaded_twice_is_refused(release):
    with pytest.raises(ValidationError, match="twice"):
        services.version_create(
            release=release,
            files=[SimpleUploadedFile("a", b"1"), SimpleUploadedFile("b", b"2")],
            paths=["x/a", "./x/a"],
        )


def test_a_path_used_both_as_a_file_and_as_a_folder_is_refused(release):
    with pytest.raises(ValidationError, match="both a file and a folder"):
        make_version(release, {"lib": b"1", "lib/inner.so": b"2"})


def test_a_saved_version_cannot_be_changed_or_deleted_through_the_model(release):
    version = make_version(release, {"a.txt": b"1"})
    version.comment = "changed"
    with pytest.raises(ImmutableError):
        version.save()
    with pytest.raises(ImmutableError):
        ReleaseVersion.objects.filter(pk=version.pk).update(comment="changed")
    with pytest.raises(ImmutableError):
        version.delete()
    with pytest.raises(ImmutableError):
        ReleaseVersion.objects.filter(pk=version.pk).delete()
    assert ReleaseVersion.objects.get(pk=version.pk).comment == ""


def test_a_saved_artefact_cannot_be_changed_or_deleted_through_the_model(release):
    artefact = make_version(release, {"a.txt": b"1"}).files.get()
    artefact.sha256 = "0" * 64
    with pytest.raises(ImmutableError):
        artefact.save()
    with pytest.raises(ImmutableError):
        Artefact.objects.update(size=0)
    with pytest.raises(ImmutableError):
        artefact.delete()
    with pytest.raises(ImmutableError):
        Artefact.objects.all().delete()


def test_deleting_a_release_deletes_its_versions_files_and_jobs(
    release, media_root, django_capture_on_commit_callbacks
):
    make_version(release, {"a.txt": b"1"})
    make_version(release, {"b/c.txt": b"2"})  # child of v1: both go together
    done = run(services.release_package(release=release))
    assert done.status == JobStatus.COMPLETED, done.error
    pending = job_services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release
    )
    stored = [Path(media_root) / n for n in Artefact.objects.values_list("file", flat=True)]
    assert len(stored) == 3 and all(p.is_file() for p in stored)

    with django_capture_on_commit_callbacks(execute=True):
        counts = services.release_delete(release=release)

    assert counts == {"versions": 2, "files": 3, "jobs": 2}
    assert not Release.objects.exists() and not ReleaseVersion.objects.exists()
    assert not Artefact.objects.exists()
    assert not Job.objects.filter(pk__in=[done.pk, pending.pk]).exists()
    assert not Task.objects.exists() and not JobLog.objects.exists()
    assert not any(p.exists() for p in stored)


def test_deleting_a_release_is_refused_while_one_of_its_jobs_is_running(release, media_root):
    make_version(release, {"a.txt": b"1"})
    job = job_services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release
    )
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, lock_slot=0)
    with pytest.raises(services.ReleaseBusy, match=f"job #{job.pk} is running"):
        services.release_delete(release=release)
    assert Release.objects.filter(pk=release.pk).exists()
    assert all((Path(media_root) / a.file.name).exists() for a in Artefact.objects.all())


def test_jobs_on_a_release_need_an_existing_version(release):
    with pytest.raises(ValidationError) as exc:
        services.release_apply(release=release, number=1)
    assert "version" in exc.value.message_dict
    with pytest.raises(ValidationError):
        services.release_package(release=release)
    assert not Job.objects.exists()
