"""Writes and workflows on releases: the one place for their rules.

The admin, the API and the `releases` command call these functions. Versions and
artefacts are insert-only; applying, rolling back, packaging and verifying are
jobs of the release (so they queue FIFO behind its other jobs and keep history).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import IO, Any

from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from jobs import services as job_services
from jobs.exceptions import JobError
from jobs.models import AuditAction, Job, JobStatus

from . import selectors
from .models import Artefact, ArtefactKind, Release, ReleaseVersion
from .paths import clean_path, manifest_files

logger = logging.getLogger(__name__)

INSPECT = "release.inspect"
PACKAGE = "release.package"
VERIFY = "release.verify"
APPLY = "release.apply"
PACKAGE_FORMATS = ("tar.gz", "zip")
# Applying, rolling back, packaging, verifying and inspecting (the release.* job types,
# their endpoints and admin actions) all need this right.
APPLY_PERMISSION = "releases.change_release"
CHUNK = 1024 * 1024


class ReleaseBusy(JobError):
    """The release has a running (or conflicting) job (HTTP 409)."""


# --- helpers ----------------------------------------------------------------------


def hash_stream(stream: IO[bytes] | Any) -> tuple[int, str]:
    """(size, sha256 hex) of a binary stream or Django File, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    chunks = (
        stream.chunks(CHUNK) if hasattr(stream, "chunks") else iter(lambda: stream.read(CHUNK), b"")
    )
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def version_get(release: Release, number: Any) -> ReleaseVersion:
    """Version `number` of `release`, or ValidationError under `version`."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        try:
            number = int(str(number))
        except ValueError:
            raise ValidationError(
                {"version": ["A version number is a positive integer."]}
            ) from None
    version = ReleaseVersion.objects.filter(release=release, number=number).first()
    if version is None:
        raise ValidationError({"version": [f"Release {release.slug!r} has no version {number}."]})
    return version


def storable_path(raw: Any) -> str:
    """clean_path(), and a name the storage can store the file under: its storage
    makes a file name of letters, digits, '-', '_' and '.', and refuses one that
    reduces to nothing ('💾', '@@'); that is a 400 here, before anything is written."""
    path = clean_path(raw)
    try:
        default_storage.get_valid_name(path.rsplit("/", 1)[-1])
    except SuspiciousFileOperation:
        raise ValidationError(
            f"Path {path!r} reduces to no file name the storage can keep "
            "(use letters, digits, '-', '_' or '.')."
        ) from None
    return path


def _clean_release(release: Release) -> None:
    try:
        release.full_clean(exclude=["current_version", "created_by"])
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from None


# --- releases -----------------------------------------------------------------------


@transaction.atomic
def release_create(
    *, slug: str, name: str, description: str = "", user=None, via: str = "system"
) -> Release:
    """Create a release; ValidationError naming the field (bad or taken slug, …)."""
    release = Release(
        slug=slug,
        name=name,
        description=description or "",
        created_by=user if user is not None and user.is_authenticated else None,
    )
    _clean_release(release)
    release.save()
    job_services.audit(job=None, user=user, via=via, action=AuditAction.CREATED, target=release)
    return release


@transaction.atomic
def release_update(*, release: Release, user=None, via: str = "system", **fields: Any) -> Release:
    """Change a release's slug, name or description (never its current version)."""
    allowed = {"slug", "name", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({name: ["This field cannot be changed here."] for name in unknown})
    before = {name: getattr(release, name) for name in fields}
    for name, value in fields.items():
        setattr(release, name, value)
    _clean_release(release)
    release.save(update_fields=[*fields, "updated_at"])
    changes = {n: {"old": before[n], "new": v} for n, v in fields.items() if before[n] != v}
    if changes:
        job_services.audit(
            job=None,
            user=user,
            via=via,
            action=AuditAction.CHANGED,
            target=release,
            detail={"changes": changes},
        )
    return release


@transaction.atomic
def release_delete(*, release: Release, user=None, via: str = "system") -> dict[str, int]:
    """Delete a release with its versions, artefact files and jobs.

    Refused (ReleaseBusy) while one of its jobs is running. The release's job rows
    are locked first, so a worker cannot claim one of them meanwhile (claimers use
    SKIP LOCKED and pass over them); files go only once the rows are gone for good.
    """
    jobs = list(Job.objects.select_for_update().filter(release=release).values_list("pk", "status"))
    running = [pk for pk, status in jobs if status == JobStatus.RUNNING]
    if running:
        raise ReleaseBusy(
            f"cannot delete release {release.slug!r}: job #{running[0]} is running on it"
        )
    names = list(Artefact.objects.filter(version__release=release).values_list("file", flat=True))
    versions = ReleaseVersion.objects.filter(release=release).count()
    summary = {"versions": versions, "files": len(names), "jobs": len(jobs)}
    job_services.audit(
        job=None, user=user, via=via, action=AuditAction.DELETED, target=release, detail=summary
    )
    release.delete()  # cascades: versions, artefacts, jobs (with their tasks and logs)
    transaction.on_commit(lambda: _delete_files(names))
    return summary


def _delete_files(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # a file already gone must not stop the others going
            logger.warning("could not delete stored file %s", name, exc_info=True)


# --- versions ---------------------------------------------------------------------


def version_create(
    *,
    release: Release,
    files: Sequence[File] = (),
    paths: Sequence[str] | None = None,
    manifest: Any = None,
    comment: str = "",
    parent: int | None = None,
    user=None,
    via: str = "system",
) -> ReleaseVersion:
    """Create the next version of `release` from uploaded files.

    Each file is stored under its clean relative path (`paths[i]`, else the file's
    name) with its size and SHA-256 computed while reading it. A manifest listing
    files must list exactly the uploaded ones (and match any size/sha256 it gives).
    `parent` defaults to the latest version. ValidationError names the field.
    """
    manifest = {} if manifest is None else manifest
    declared = manifest_files(manifest)
    if paths is not None and len(paths) != len(files):
        raise ValidationError({"paths": ["Give one path per uploaded file, in the same order."]})
    names: list[str] = []
    errors: list[str] = []
    for i, upload in enumerate(files):
        raw = paths[i] if paths is not None else getattr(upload, "name", None)
        try:
            names.append(storable_path(raw))
        except ValidationError as exc:
            errors.append(f"file {i + 1}: {exc.messages[0]}")
    if errors:
        raise ValidationError({"paths" if paths is not None else "files": errors})
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError({"files": [f"{n!r} is uploaded twice." for n in dupes]})
    # A path used both as a file and as a folder cannot be stored (or unpacked).
    folders = {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)}
    clashes = sorted(set(names) & folders)
    if clashes:
        raise ValidationError(
            {"files": [f"{n!r} is both a file and a folder of other files." for n in clashes]}
        )
    if declared and set(declared) != set(names):
        missing = sorted(set(declared) - set(names))
        extra = sorted(set(names) - set(declared))
        msgs = [f"{p!r} is in the manifest but was not uploaded." for p in missing]
        msgs += [f"{p!r} was uploaded but is not in the manifest." for p in extra]
        raise ValidationError({"manifest": msgs})
    if not isinstance(comment, str):
        raise ValidationError({"comment": ["Must be a string."]})

    stored: list[str] = []
    try:
        with transaction.atomic():
            version = _version_insert(
                release=release,
                uploads=list(zip(names, files, strict=True)),
                declared=declared,
                manifest=manifest,
                comment=comment,
                parent=parent,
                user=user,
                stored=stored,
            )
            job_services.audit(
                job=None,
                user=user,
                via=via,
                action=AuditAction.CREATED,
                target=release,
                detail={"version": version.number, "files": len(names)},
            )
            return version
    except BaseException:
        # The rows rolled back; the files written meanwhile must not be left behind.
        _delete_files(stored)
        raise


def _version_insert(
    *,
    release: Release,
    uploads: list[tuple[str, File]],
    declared: dict[str, dict],
    manifest: dict,
    comment: str,
    parent: int | None,
    user,
    stored: list[str],
) -> ReleaseVersion:
    # Lock the release row: two concurrent uploads then take numbers n and n+1
    # instead of colliding on the unique (release, number).
    Release.objects.select_for_update().filter(pk=release.pk).first()
    latest = ReleaseVersion.objects.filter(release=release).aggregate(n=Max("number"))["n"] or 0
    parent_version = None
    if parent is not None:
        try:
            parent_version = version_get(release, parent)
        except ValidationError as exc:
            raise ValidationError({"parent": exc.message_dict["version"]}) from None
    elif latest:
        parent_version = ReleaseVersion.objects.get(release=release, number=latest)
    version = ReleaseVersion.objects.create(
        release=release,
        number=latest + 1,
        parent=parent_version,
        manifest=manifest,
        comment=comment,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    version.release = release
    for path, upload in uploads:
        if hasattr(upload, "seek"):
            upload.seek(0)
        size, sha = hash_stream(upload)
        expect = declared.get(path, {})
        if expect.get("size") is not None and expect["size"] != size:
            raise ValidationError(
                {"manifest": [f"{path!r} is {size} bytes, the manifest says {expect['size']}."]}
            )
        if expect.get("sha256") and expect["sha256"] != sha:
            raise ValidationError({"manifest": [f"{path!r} does not match its manifest sha256."]})
        upload.seek(0)
        artefact = Artefact(
            version=version, kind=ArtefactKind.FILE, path=path, size=size, sha256=sha
        )
        artefact.file.save(path, upload, save=False)
        stored.append(artefact.stored_name)
        artefact.save()
    return version


def package_record(*, version: ReleaseVersion, path: str, stream: File) -> Artefact:
    """Store a package built from `version` as an artefact of kind package.

    Artefacts are insert-only: if one with this path exists and has the same bytes
    it is returned (packaging is deterministic), else ValidationError.
    """
    size, sha = hash_stream(stream)
    existing = Artefact.objects.filter(
        version=version, kind=ArtefactKind.PACKAGE, path=path
    ).first()
    if existing is not None:
        if existing.sha256 != sha:
            raise ValidationError(
                {"package": [f"a different package {path!r} is already recorded on this version"]}
            )
        return existing
    stream.seek(0)
    artefact = Artefact(
        version=version, kind=ArtefactKind.PACKAGE, path=path, size=size, sha256=sha
    )
    artefact.file.save(path, stream, save=False)
    try:
        artefact.save()
    except BaseException:
        _delete_files([artefact.stored_name])
        raise
    return artefact


# --- jobs of a release -------------------------------------------------------------


def _job(*, job_type: str, release: Release, config: dict, user, via: str) -> Job:
    job = job_services.job_create(
        job_type=job_type, config=config, user=user, release=release, via=via
    )
    logger.info("%s job #%s on %s created via %s", job_type, job.pk, release.slug, via)
    return job


def release_inspect(
    *, release: Release, number: int | None = None, user=None, via: str = "system"
) -> Job:
    if number is not None:
        version_get(release, number)
    return _job(job_type=INSPECT, release=release, config={"version": number}, user=user, via=via)


def _check_version(release: Release, number: int | None) -> None:
    """Version `number` exists, or (None) the release has a default version to act on."""
    if number is not None:
        version_get(release, number)
    elif selectors.default_version(release) is None:
        raise ValidationError({"version": [f"Release {release.slug!r} has no versions."]})


def release_package(
    *,
    release: Release,
    number: int | None = None,
    format: str = "tar.gz",
    user=None,
    via: str = "system",
) -> Job:
    """Queue a release.package job for version `number` (default: current, else latest)."""
    _check_version(release, number)
    config = {"version": number, "format": format}
    return _job(job_type=PACKAGE, release=release, config=config, user=user, via=via)


def release_verify(
    *,
    release: Release,
    number: int | None = None,
    package: bool = False,
    user=None,
    via: str = "system",
) -> Job:
    """Queue a release.verify job (the version's files, or its packages)."""
    _check_version(release, number)
    config = {"version": number, "package": package}
    return _job(job_type=VERIFY, release=release, config=config, user=user, via=via)


@transaction.atomic
def release_apply(*, release: Release, number: int, user=None, via: str = "system") -> Job:
    """Queue a release.apply job making version `number` current once verified."""
    # The same row lock as release_rollback: a rollback deciding its target cannot
    # interleave with a new apply.
    Release.objects.select_for_update().filter(pk=release.pk).first()
    version_get(release, number)
    return _job(
        job_type=APPLY, release=release, config={"version": int(number)}, user=user, via=via
    )


@transaction.atomic
def release_rollback(*, release: Release, user=None, via: str = "system") -> Job:
    """Queue an apply of the version that was current before the current one.

    Walks back through earlier rollbacks, so rolling back twice goes two steps back.
    Refused (409) while another apply of this release is still queued or running,
    because "the previous version" would not be known until that one ends.
    """
    Release.objects.select_for_update().filter(pk=release.pk).first()
    release.refresh_from_db(fields=["current_version"])
    active = (
        Job.objects.filter(release=release, job_type=APPLY)
        .active()
        .values_list("pk", flat=True)
        .first()
    )
    if active is not None:
        raise ReleaseBusy(
            f"cannot roll back release {release.slug!r}: apply job #{active} has not finished"
        )
    applier = selectors.current_applier(release)
    if applier is None:
        raise ValidationError(
            {"release": [f"Release {release.slug!r} has no applied version to roll back from."]}
        )
    result = applier.result or {}
    target = result.get("previous_version")
    if target is None:
        raise ValidationError(
            {"release": [f"Release {release.slug!r} has no earlier version to roll back to."]}
        )
    version_get(release, target)
    last = selectors.last_applier(release)
    if last is None:  # current_applier found one a moment ago: gone since (cleaned up)
        raise ValidationError(
            {"release": [f"Release {release.slug!r} has no applied version to roll back from."]}
        )
    config = {
        "version": target,
        "rollback_of": last.pk,
        "restores": result.get("previous_job"),
    }
    return _job(job_type=APPLY, release=release, config=config, user=user, via=via)
