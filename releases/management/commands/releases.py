"""`manage.py releases list|create|versions|apply|rollback|package|verify` — the shell's
front door to releases; a thin caller of releases.services (via="cli")."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import CommandError
from django.db.models import QuerySet

from jobs.cli import ActionCommand, job_json, positive_int
from jobs.models import Job
from releases import services
from releases.api.serializers import ReleaseSerializer, VersionSerializer
from releases.models import Release, ReleaseVersion

VIA = "cli"


def collect_dir(root: Path) -> list[tuple[str, Path]]:
    """(relative path, file) for every file under `root`; a symlink anywhere is refused."""
    if not root.is_dir():
        raise CommandError(f"{root} is not a directory")
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            if full.is_symlink():
                raise CommandError(f"{full} is a symlink; links are not allowed in a release")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            found.append((full.relative_to(root).as_posix(), full))
    return sorted(found)


class Command(ActionCommand):
    help = (
        "Releases: list, create, versions (list, or --upload DIR to add one), apply, "
        "rollback, package, verify. Jobs are queued; follow them with `manage.py jobs`. "
        "--json (the API's shapes; jobs as `jobs status --json`) and --user NAME go before "
        "or after the action."
    )

    def add_actions(self, sub) -> None:
        sub.add_parser("list", help="list releases")

        p = sub.add_parser("create", help="create a release")
        p.add_argument("slug")
        p.add_argument("--name", help="display name (default: the slug)")
        p.add_argument("--description", default="")

        p = sub.add_parser("versions", help="list a release's versions, or add one")
        p.add_argument("slug")
        p.add_argument("--upload", type=Path, metavar="DIR", help="add a version from DIR's files")
        p.add_argument("--comment", default="")
        p.add_argument("--manifest", type=Path, metavar="FILE", help="JSON manifest file")
        p.add_argument("--parent", type=positive_int)

        p = sub.add_parser("apply", help="queue an apply of a version")
        p.add_argument("slug")
        p.add_argument("number", type=positive_int)

        p = sub.add_parser("rollback", help="queue an apply of the previous version")
        p.add_argument("slug")

        p = sub.add_parser("package", help="queue a package job")
        p.add_argument("slug")
        p.add_argument("number", type=positive_int, nargs="?")
        p.add_argument("--format", choices=services.PACKAGE_FORMATS, default="tar.gz")

        p = sub.add_parser("verify", help="queue a verify job")
        p.add_argument("slug")
        p.add_argument("number", type=positive_int, nargs="?")
        p.add_argument("--package", action="store_true", help="verify the packages instead")

    # --- plumbing ------------------------------------------------------------

    def _release(self, slug: str) -> Release:
        release = Release.objects.select_related("current_version").filter(slug=slug).first()
        if release is None:
            raise CommandError(f"no release with slug {slug!r}")
        return release

    def _queued(self, job: Job) -> None:
        self.emit(
            job_json(job),
            f"queued job #{job.pk} ({job.job_type}, config {json.dumps(job.config)})",
        )

    @staticmethod
    def _versions_of(release: Release) -> QuerySet[ReleaseVersion]:
        return (
            ReleaseVersion.objects.filter(release=release)
            .select_related("parent", "created_by")
            .prefetch_related("files")
            .order_by("number")
        )

    # --- actions ---------------------------------------------------------------

    def do_list(self, o: dict) -> None:
        rows = Release.objects.select_related("current_version", "created_by").order_by("slug")
        if self.as_json:
            self.write_json(ReleaseSerializer(rows, many=True).data)
            return
        for r in rows:
            current = f"v{r.current_version.number}" if r.current_version is not None else "-"
            self.stdout.write(f"{r.slug:30} {current:>6}  {r.name}")

    def do_create(self, o: dict) -> None:
        release = services.release_create(
            slug=o["slug"],
            name=o["name"] or o["slug"],
            description=o["description"],
            user=self.user,
            via=VIA,
        )
        self.emit(
            ReleaseSerializer(release).data, f"created release {release.slug} (#{release.pk})"
        )

    def do_versions(self, o: dict) -> None:
        release = self._release(o["slug"])
        if o["upload"] is not None:
            self._upload(release, o)
            return
        versions = list(self._versions_of(release))
        if self.as_json:
            self.write_json(VersionSerializer(versions, many=True).data)
            return
        for v in versions:
            files = [a for a in v.files.all() if a.kind == "file"]
            mark = "*" if v.pk == release.current_version_id else " "
            parent = f"v{v.parent.number}" if v.parent is not None else "-"
            self.stdout.write(
                f"{mark}v{v.number:<4} parent {parent:<6} {len(files):>5} files "
                f"{sum(a.size for a in files):>12} bytes  "
                f"{v.created_at:%Y-%m-%d %H:%M}  {v.comment}"
            )

    def _upload(self, release: Release, opts: dict) -> None:
        manifest: Any = {}
        if opts["manifest"] is not None:
            try:
                manifest = json.loads(Path(opts["manifest"]).read_text())
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot read manifest {opts['manifest']}: {exc}") from None
        entries = collect_dir(opts["upload"])
        handles = [path.open("rb") for _, path in entries]
        try:
            version = services.version_create(
                release=release,
                files=[File(h, name=rel) for h, (rel, _) in zip(handles, entries, strict=True)],
                paths=[rel for rel, _ in entries],
                manifest=manifest,
                comment=opts["comment"],
                parent=opts["parent"],
                user=self.user,
                via=VIA,
            )
        finally:
            for h in handles:
                h.close()
        version = self._versions_of(release).get(pk=version.pk)
        self.emit(
            VersionSerializer(version).data,
            f"created {release.slug} v{version.number} with {len(entries)} files",
        )

    def do_apply(self, o: dict) -> None:
        release = self._release(o["slug"])
        self._queued(
            services.release_apply(release=release, number=o["number"], user=self.user, via=VIA)
        )

    def do_rollback(self, o: dict) -> None:
        release = self._release(o["slug"])
        self._queued(services.release_rollback(release=release, user=self.user, via=VIA))

    def do_package(self, o: dict) -> None:
        job = services.release_package(
            release=self._release(o["slug"]),
            number=o["number"],
            format=o["format"],
            user=self.user,
            via=VIA,
        )
        self._queued(job)

    def do_verify(self, o: dict) -> None:
        job = services.release_verify(
            release=self._release(o["slug"]),
            number=o["number"],
            package=o["package"],
            user=self.user,
            via=VIA,
        )
        self._queued(job)
