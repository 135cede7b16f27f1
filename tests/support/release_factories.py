"""Helpers that build releases and versions and run release jobs in-process."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from jobs import runner
from jobs.models import Job
from releases import services
from releases.models import Release, ReleaseVersion


def make_release(slug: str = "app", user=None, name: str | None = None) -> Release:
    return services.release_create(slug=slug, name=name or slug.title(), user=user)


def uploads(files: dict[str, bytes]) -> tuple[list[SimpleUploadedFile], list[str]]:
    """Uploaded files and their relative paths, in one order."""
    paths = list(files)
    return [SimpleUploadedFile(p.rsplit("/", 1)[-1], files[p]) for p in paths], paths


def make_version(release: Release, files: dict[str, bytes], **kwargs) -> ReleaseVersion:
    upload_list, paths = uploads(files)
    return services.version_create(release=release, files=upload_list, paths=paths, **kwargs)


def many_files(n: int) -> dict[str, bytes]:
    """`n` files of varied sizes and content in a few folders, plus a README."""
    files = {"README.txt": b"Demo release\n"}
    for i in range(n - 1):
        files[f"dir{i % 7}/sub{i % 3}/file-{i:04d}.bin"] = bytes(
            (i * 31 + j) % 256 for j in range((i * 97) % 3000)
        )
    return files


def run(job: Job) -> Job:
    """Claim and execute `job` in this process, as a worker would; the job refreshed."""
    claimed = runner.claim(worker="test:0", job_id=job.pk)
    assert claimed is not None, f"job #{job.pk} was not runnable"
    runner.execute(claimed)
    job.refresh_from_db()
    return job
