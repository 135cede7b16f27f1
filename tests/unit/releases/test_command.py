"""`manage.py releases …`: the same operations from the shell, one line on bad input."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from releases.models import Release, ReleaseVersion
from tests.support.release_factories import make_version, run

pytestmark = pytest.mark.django_db


def releases(*args: str) -> str:
    out = io.StringIO()
    call_command("releases", *args, stdout=out)
    return out.getvalue()


def test_create_and_list_releases(user):
    assert "created release web" in releases("--user", "alice", "create", "web", "--name", "Web")
    assert Release.objects.get(slug="web").created_by == user
    assert "web" in releases("list")


def test_a_version_is_uploaded_from_a_directory_and_listed(release, tmp_path):
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "README").write_bytes(b"hi")
    (src / "docs" / "guide.txt").write_bytes(b"guide")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": ["README", "docs/guide.txt"]}))
    out = releases("versions", "app", "--upload", str(src), "--manifest", str(manifest))
    assert "created app v1 with 2 files" in out
    version = ReleaseVersion.objects.get()
    assert sorted(version.files.values_list("path", flat=True)) == ["README", "docs/guide.txt"]
    assert "v1" in releases("versions", "app") and "2 files" in releases("versions", "app")


def test_a_directory_containing_a_symlink_is_refused(release, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "real.txt").write_bytes(b"x")
    (src / "link.txt").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CommandError, match="symlink"):
        releases("versions", "app", "--upload", str(src))
    assert not ReleaseVersion.objects.exists()


def test_apply_package_verify_and_rollback_queue_jobs(release):
    make_version(release, {"a": b"1"})
    make_version(release, {"a": b"2"})
    for args in (("apply", "app", "1"), ("apply", "app", "2")):
        assert "queued job" in releases(*args)
        run(Job.objects.get(status="pending"))
    assert "release.package" in releases("package", "app", "--format", "zip")
    assert "release.verify" in releases("verify", "app", "1", "--package")
    Job.objects.filter(status="pending").delete()
    assert "release.apply" in releases("rollback", "app")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("apply", "nope", "1"), "no release with slug 'nope'"),
        (("apply", "app", "3"), "version: Release 'app' has no version 3."),
        (("rollback", "app"), "no applied version"),
        (("create", "app"), "slug"),
        (("versions", "app", "--upload", "/does/not/exist"), "is not a directory"),
        (("--user", "ghost", "list"), "no user named 'ghost'"),
    ],
)
def test_bad_input_is_one_readable_command_error(release, args, message):
    with pytest.raises(CommandError) as exc:
        releases(*args)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_bad_argument_type_is_one_line(release):
    with pytest.raises(CommandError, match="must be 1 or more"):
        releases("apply", "app", "0")
