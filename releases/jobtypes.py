"""Built-in release job types: inspect, package, verify and apply (real work on real files).

Each acts on one version of the job's release: `config["version"]`, or when that
is null the current version, else the latest. Files are read through Django's
storage API; a stored file that has become a symlink counts as a problem.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import re
import tarfile
import tempfile
import zipfile
from collections import Counter
from datetime import UTC
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework import serializers

from jobs.models import Job, Task
from jobs.registry import JobType, register
from jobs.worker.context import JobContext

from . import selectors, services
from .models import Artefact, ArtefactKind, Release, ReleaseVersion

SUMS_NAME = "SHA256SUMS"
_INFO_FILE = re.compile(r"^(readme(\.[a-z0-9]+)?|.*\.nfo)$", re.IGNORECASE)
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
MAX_DEPTH = 8


class ReleaseJobFailed(Exception):
    """A release job found problems; the message lists each one."""


# --- shared helpers ------------------------------------------------------------------


def _version(ctx_release: Release | None, number: int | None) -> ReleaseVersion:
    if ctx_release is None:
        raise ReleaseJobFailed("this job has no release")
    release = Release.objects.get(pk=ctx_release.pk)
    if number is None:
        version = selectors.default_version(release)
        if version is None:
            raise ReleaseJobFailed(f"release {release.slug!r} has no versions")
        return version
    try:
        return services.version_get(release, number)
    except ValidationError as exc:
        raise ReleaseJobFailed(exc.message_dict["version"][0]) from None


def _files(version: ReleaseVersion, kind: str = ArtefactKind.FILE) -> list[Artefact]:
    return list(Artefact.objects.filter(version=version, kind=kind).order_by("path"))


def _stored_problem(artefact: Artefact) -> str | None:
    """'missing' / 'a symlink' when the stored file cannot be trusted, else None."""
    name = artefact.stored_name
    try:
        local = default_storage.path(name)
    except NotImplementedError:  # remote storage: no links to worry about
        return None if default_storage.exists(name) else "missing"
    if os.path.islink(local):
        return "a symlink"
    if not os.path.isfile(local):
        return "missing"
    return None


def _rehash(artefact: Artefact) -> tuple[int, str]:
    with default_storage.open(artefact.stored_name, "rb") as fh:
        return services.hash_stream(fh)


def check_files(ctx: JobContext | None, files: list[Artefact]) -> list[str]:
    """Re-hash each file against its recorded size and SHA-256; the problems found."""
    problems: list[str] = []
    for i, artefact in enumerate(files, start=1):
        problem = _stored_problem(artefact)
        if problem:
            problems.append(f"{artefact.path}: {problem}")
        else:
            size, sha = _rehash(artefact)
            if sha != artefact.sha256 or size != artefact.size:
                problems.append(
                    f"{artefact.path}: checksum mismatch (recorded {artefact.sha256[:12]}… "
                    f"{artefact.size} bytes, found {sha[:12]}… {size} bytes)"
                )
        if ctx is not None:
            ctx.progress(i, len(files))
            if i % 50 == 0:
                ctx.check_cancelled()
    return problems


def _fail(ctx: JobContext, what: str, problems: list[str]) -> None:
    for problem in problems:
        ctx.warning(problem)
    raise ReleaseJobFailed(f"{what}: {len(problems)} problem(s): " + "; ".join(problems))


def _previous_result(ctx: JobContext, name: str) -> Any:
    return (
        Task.objects.filter(job_id=ctx.job.pk, name=name).values_list("result", flat=True).first()
    )


class VersionConfig(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=1,
        allow_null=True,
        required=False,
        default=None,
        help_text="Version number; empty = the current version, else the latest.",
    )


class ReleaseJobType(JobType):
    """A job acting on a version of its release.

    Creating one needs the right the release's apply and rollback endpoints need
    (services.APPLY_PERMISSION); the version it names must exist when it is created.
    """

    requires_release = True
    create_permission = services.APPLY_PERMISSION

    def validate(self, config: dict, release) -> dict:
        number = config.get("version")
        if number is not None:
            services.version_get(release, number)  # ValidationError under `version`
        elif selectors.default_version(release) is None:
            raise ValidationError({"release": [f"Release {release.slug!r} has no versions."]})
        return config


# --- release.inspect -------------------------------------------------------------------


def inspect_version(version: ReleaseVersion) -> dict:
    """Files, sizes, total, the info file and naming problems of a version (DB only)."""
    files = _files(version)
    problems: list[str] = []
    paths = [a.path for a in files]
    for path in paths:
        segments = path.split("/")
        bad = [s for s in segments if not _SAFE_SEGMENT.match(s)]
        if bad:
            problems.append(
                f"{path}: name {bad[0]!r} should use only letters, digits, '.', '_', '+', '-' "
                "and not start with a dot or a sign"
            )
        if len(segments) > MAX_DEPTH:
            problems.append(f"{path}: nested {len(segments)} levels deep (max {MAX_DEPTH})")
    folded = Counter(p.casefold() for p in paths)
    for key, count in sorted(folded.items()):
        if count > 1:
            same = sorted(p for p in paths if p.casefold() == key)
            problems.append(f"names differing only by case: {', '.join(same)}")
    dirs = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    for path in sorted(set(paths) & dirs):
        problems.append(f"{path}: is both a file and a directory")
    info = sorted((p for p in paths if _INFO_FILE.match(p.rsplit("/", 1)[-1])), key=_info_rank)
    if not info:
        problems.append("no info file (README or .nfo)")
    return {
        "version": version.number,
        "files": [{"path": a.path, "size": a.size} for a in files],
        "count": len(files),
        "total_size": sum(a.size for a in files),
        "info_file": info[0] if info else None,
        "problems": problems,
    }


def _info_rank(path: str) -> tuple[int, int, str]:
    # Prefer a top-level README, then any top-level info file, then deeper ones.
    return (path.count("/"), 0 if path.lower().startswith("readme") else 1, path)


class InspectConfig(VersionConfig):
    strict = serializers.BooleanField(default=False, help_text="Fail if problems are found.")


@register
class ReleaseInspect(ReleaseJobType):
    """Lists a version's files and checks its naming rules."""

    name = services.INSPECT
    label = "Release: inspect a version"
    description = "Lists files and sizes, finds the info file, checks naming rules."
    config_serializer = InspectConfig

    def run(self, ctx: JobContext) -> dict:
        version = _version(ctx.release, ctx.config.get("version"))
        report = inspect_version(version)
        ctx.log(
            f"version {version.number}: {report['count']} files, {report['total_size']} bytes, "
            f"info file {report['info_file'] or 'none'}"
        )
        for problem in report["problems"]:
            ctx.warning(problem)
        if report["problems"] and ctx.config.get("strict"):
            raise ReleaseJobFailed(
                f"{len(report['problems'])} problem(s): " + "; ".join(report["problems"])
            )
        return report

    def analyze(self, config: dict, release=None) -> dict:
        version = _version(release, config.get("version"))
        report = inspect_version(version)
        return {"tasks": self.tasks(config), "warnings": report["problems"], "inspection": report}


# --- release.package -------------------------------------------------------------------


class PackageConfig(VersionConfig):
    format = serializers.ChoiceField(choices=services.PACKAGE_FORMATS, default="tar.gz")


def package_name(version: ReleaseVersion, fmt: str) -> str:
    return f"{version.release.slug}-v{version.number}.{fmt}"


def sums_text(entries: list[tuple[str, str]]) -> str:
    """SHA256SUMS in `sha256sum` format (`sha  path`), so `sha256sum -c` checks it."""
    return "".join(f"{sha}  {path}\n" for path, sha in entries)


def build_archive(version: ReleaseVersion, fmt: str, files: list[Artefact], out, ctx=None) -> None:
    """Write a deterministic archive of `files` plus SHA256SUMS under one top folder.

    Same version → same bytes (fixed times, owners and modes; sorted members), so
    packaging twice records one package.
    """
    top = f"{version.release.slug}-v{version.number}"
    sums = sums_text([(a.path, a.sha256) for a in files]).encode()
    stamp = int(version.created_at.timestamp())
    if fmt == "zip":
        when = version.created_at.astimezone(UTC).timetuple()[:6]
        when = max(when, (1980, 1, 1, 0, 0, 0))  # the zip format starts in 1980
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for i, artefact in enumerate(files, start=1):
                info = zipfile.ZipInfo(f"{top}/{artefact.path}", date_time=when)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with (
                    default_storage.open(artefact.stored_name, "rb") as src,
                    zf.open(info, "w") as dst,
                ):
                    for chunk in iter(functools.partial(src.read, services.CHUNK), b""):
                        dst.write(chunk)
                if ctx is not None:
                    ctx.progress(i, len(files) + 1)
            info = zipfile.ZipInfo(f"{top}/{SUMS_NAME}", date_time=when)
            info.external_attr = 0o644 << 16
            zf.writestr(info, sums, compress_type=zipfile.ZIP_DEFLATED)
        return
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for i, artefact in enumerate(files, start=1):
            with default_storage.open(artefact.stored_name, "rb") as src:
                tar.addfile(_tarinfo(f"{top}/{artefact.path}", artefact.size, stamp), src)
            if ctx is not None:
                ctx.progress(i, len(files) + 1)
        tar.addfile(_tarinfo(f"{top}/{SUMS_NAME}", len(sums), stamp), io.BytesIO(sums))


def _tarinfo(name: str, size: int, stamp: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, stamp, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def read_archive(path_or_file, fmt: str) -> dict[str, bytes]:
    """Every regular member of an archive by name (for verification and tests).

    Raises ReleaseJobFailed on links or non-regular members: a package never has any.
    """
    members: dict[str, bytes] = {}
    if fmt == "zip":
        with zipfile.ZipFile(path_or_file) as zf:
            for info in zf.infolist():
                if info.is_dir() or (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise ReleaseJobFailed(f"package member {info.filename!r} is not a file")
                members[info.filename] = zf.read(info)
        return members
    with tarfile.open(fileobj=path_or_file, mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isreg():
                raise ReleaseJobFailed(f"package member {member.name!r} is not a regular file")
            extracted = tar.extractfile(member)
            assert extracted is not None
            members[member.name] = extracted.read()
    return members


def check_package(version: ReleaseVersion, package: Artefact) -> list[str]:
    """Problems of a package: its own checksum, then each member against SHA256SUMS
    and against the version's recorded files."""
    problem = _stored_problem(package)
    if problem:
        return [f"{package.path}: {problem}"]
    size, sha = _rehash(package)
    if sha != package.sha256 or size != package.size:
        return [
            f"{package.path}: checksum mismatch "
            f"(recorded {package.sha256[:12]}…, found {sha[:12]}…)"
        ]
    fmt = "zip" if package.path.endswith(".zip") else "tar.gz"
    top = f"{version.release.slug}-v{version.number}/"
    with default_storage.open(package.stored_name, "rb") as fh:
        try:
            members = read_archive(fh, fmt)
        except ReleaseJobFailed as exc:
            return [str(exc)]
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            return [f"{package.path}: unreadable archive ({exc})"]
    problems: list[str] = []
    sums_raw = members.pop(top + SUMS_NAME, None)
    if sums_raw is None:
        return [f"{package.path}: no {SUMS_NAME}"]
    listed: dict[str, str] = {}
    for line in sums_raw.decode("utf-8", "replace").splitlines():
        sha_, _, path = line.partition("  ")
        listed[path] = sha_
    recorded = {a.path: a.sha256 for a in _files(version)}
    if listed != recorded:
        problems.append(f"{package.path}: {SUMS_NAME} does not match the version's files")
    for path in sorted(set(recorded) | {m.removeprefix(top) for m in members}):
        data = members.get(top + path)
        if data is None:
            problems.append(f"{path}: missing from {package.path}")
        elif path not in recorded:
            problems.append(f"{path}: in {package.path} but not in the version")
        elif hashlib.sha256(data).hexdigest() != recorded[path]:
            problems.append(f"{path}: checksum mismatch in {package.path}")
    return problems


@register
class ReleasePackage(ReleaseJobType):
    """Builds a .tar.gz or .zip of a version's files plus SHA256SUMS, and records it."""

    name = services.PACKAGE
    label = "Release: package a version"
    description = "Archive (.tar.gz or .zip) of a version's files with a SHA256SUMS manifest."
    config_serializer = PackageConfig

    def tasks(self, config: dict) -> list[str]:
        return ["collect", "checksum", "archive", "verify"]

    def run_task(self, ctx: JobContext, task: Task) -> Any:
        version = _version(ctx.release, ctx.config.get("version"))
        files = _files(version)
        if task.name == "collect":
            problems = [f"{a.path}: {p}" for a in files if (p := _stored_problem(a))]
            if problems:
                _fail(ctx, "collect", problems)
            total = sum(a.size for a in files)
            ctx.log(f"version {version.number}: {len(files)} files, {total} bytes")
            return {"version": version.number, "files": len(files), "bytes": total}
        if task.name == "checksum":
            # Hash before archiving: a file corrupted in storage must not be shipped.
            problems = check_files(ctx, files)
            if problems:
                _fail(ctx, "checksum", problems)
            ctx.log(f"{len(files)} files match their recorded SHA-256")
            return {"version": version.number, "files": len(files)}
        if task.name == "archive":
            fmt = ctx.config.get("format") or "tar.gz"
            name = package_name(version, fmt)
            with tempfile.TemporaryFile() as tmp:
                build_archive(version, fmt, files, tmp, ctx)
                tmp.seek(0)
                artefact = services.package_record(version=version, path=name, stream=File(tmp))
            ctx.progress(len(files) + 1, len(files) + 1)
            ctx.log(f"packaged {name}: {artefact.size} bytes, sha256 {artefact.sha256}")
            return {
                "package": name,
                "artefact": artefact.pk,
                "size": artefact.size,
                "sha256": artefact.sha256,
            }
        if task.name == "verify":
            archived = _previous_result(ctx, "archive") or {}
            artefact_id = archived.get("artefact")
            package = (
                Artefact.objects.filter(pk=artefact_id).first() if artefact_id is not None else None
            )
            if package is None:
                raise ReleaseJobFailed("the archive task recorded no package")
            problems = check_package(version, package)
            if problems:
                _fail(ctx, "verify", problems)
            ctx.log(f"{package.path} verified: {len(files)} files and {SUMS_NAME} match")
            return {**archived, "version": version.number, "files": len(files), "verified": True}
        raise ReleaseJobFailed(f"unknown task {task.name!r}")

    def analyze(self, config: dict, release=None) -> dict:
        version = _version(release, config.get("version"))
        files = _files(version)
        return {
            "tasks": self.tasks(config),
            "version": version.number,
            "package": package_name(version, config.get("format") or "tar.gz"),
            "files": len(files),
            "bytes": sum(a.size for a in files),
            "warnings": [] if files else ["the version has no files"],
        }


# --- release.verify --------------------------------------------------------------------


class VerifyConfig(VersionConfig):
    package = serializers.BooleanField(
        default=False, help_text="Verify the version's packages instead of its files."
    )


@register
class ReleaseVerify(ReleaseJobType):
    """Re-hashes a version's files (or packages) against their recorded checksums."""

    name = services.VERIFY
    label = "Release: verify a version"
    description = "Fails listing each file (or package member) that is missing or changed."
    config_serializer = VerifyConfig

    def run(self, ctx: JobContext) -> dict:
        version = _version(ctx.release, ctx.config.get("version"))
        if ctx.config.get("package"):
            packages = _files(version, ArtefactKind.PACKAGE)
            if not packages:
                raise ReleaseJobFailed(f"version {version.number} has no package to verify")
            problems = [p for package in packages for p in check_package(version, package)]
            what = f"{len(packages)} package(s)"
        else:
            files = _files(version)
            problems = check_files(ctx, files)
            what = f"{len(files)} files"
        if problems:
            _fail(ctx, f"version {version.number}", problems)
        ctx.log(f"version {version.number}: {what} verified")
        return {"version": version.number, "verified": what, "problems": []}

    def analyze(self, config: dict, release=None) -> dict:
        version = _version(release, config.get("version"))
        kind = ArtefactKind.PACKAGE if config.get("package") else ArtefactKind.FILE
        files = _files(version, kind)
        return {
            "tasks": self.tasks(config),
            "version": version.number,
            "files": len(files),
            "bytes": sum(a.size for a in files),
            "warnings": [] if files else [f"the version has no {kind}s"],
        }


# --- release.apply ---------------------------------------------------------------------


class ApplyConfig(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version to make current.")
    rollback_of = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="The apply job rolled back."
    )
    restores = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The earlier apply job whose state a rollback restores.",
    )


@register
class ReleaseApply(ReleaseJobType):
    """Verifies a version, then makes it the release's current version."""

    name = services.APPLY
    label = "Release: apply a version"
    description = (
        "Makes a version current after verifying its files; rollback applies the previous one."
    )
    config_serializer = ApplyConfig

    def tasks(self, config: dict) -> list[str]:
        return ["verify", "apply"]

    def validate(self, config: dict, release) -> dict:
        """The version must exist; a rollback names apply jobs of the same release."""
        config = super().validate(config, release)
        for name in ("rollback_of", "restores"):
            pk = config.get(name)
            if pk is not None and not (
                Job.objects.filter(pk=pk, release=release, job_type=self.name).exists()
            ):
                raise ValidationError(
                    {name: [f"No {self.name} job #{pk} on release {release.slug!r}."]}
                )
        return config

    def run_task(self, ctx: JobContext, task: Task) -> Any:
        version = _version(ctx.release, ctx.config["version"])
        if task.name == "verify":
            files = _files(version)
            problems = check_files(ctx, files)
            if problems:
                _fail(ctx, f"version {version.number}", problems)
            ctx.log(f"version {version.number}: {len(files)} files verified")
            return {"version": version.number, "files": len(files)}
        # One running job per release, so no other apply can interleave from here on.
        release = Release.objects.select_related("current_version").get(pk=version.release_id)
        previous = release.current_version.number if release.current_version else None
        previous_job = selectors.current_applier(release)
        Release.objects.filter(pk=release.pk).update(
            current_version=version, updated_at=timezone.now()
        )
        verb = "rolled back to" if ctx.config.get("rollback_of") else "applied"
        ctx.log(f"{verb} version {version.number} (was {previous or 'none'})")
        return {
            "version": version.number,
            "previous_version": previous,
            "previous_job": previous_job.pk if previous_job else None,
            "rollback_of": ctx.config.get("rollback_of"),
        }

    def analyze(self, config: dict, release=None) -> dict:
        version = _version(release, config["version"])
        current = release.current_version.number if release and release.current_version else None
        warnings = (
            [] if current != version.number else [f"version {version.number} is already current"]
        )
        return {
            "tasks": self.tasks(config),
            "version": version.number,
            "current_version": current,
            "warnings": warnings,
        }
