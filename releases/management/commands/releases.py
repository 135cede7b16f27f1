"""`manage.py releases list|create|versions|apply|rollback|package|verify` — the shell's
front door to releases; a thin caller of releases.services (via="cli")."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.cli import OneLineParser, positive_int
from jobs.exceptions import JobError, one_line
from jobs.models import Job
from releases import services
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


class Command(BaseCommand):
    help = (
        "Releases: list, create, versions (list, or --upload DIR to add one), apply, "
        "rollback, package, verify. Jobs are queued; follow them with `manage.py jobs`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="act as this username")
        sub = parser.add_subparsers(dest="action", required=True, parser_class=OneLineParser)
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

    def handle(self, *args: Any, **opts: Any) -> None:
        user = self._user(opts.get("user"))
        action = opts["action"]
        try:
            if action == "list":
                return self._list()
            if action == "create":
                release = services.release_create(
                    slug=opts["slug"],
                    name=opts["name"] or opts["slug"],
                    description=opts["description"],
                    user=user,
                )
                self.stdout.write(f"created release {release.slug} (#{release.pk})")
                return None
            release = self._release(opts["slug"])
            if action == "versions":
                if opts["upload"] is None:
                    return self._versions(release)
                return self._upload(release, opts, user)
            if action == "apply":
                job = services.release_apply(
                    release=release, number=opts["number"], user=user, via=VIA
                )
            elif action == "rollback":
                job = services.release_rollback(release=release, user=user, via=VIA)
            elif action == "package":
                job = services.release_package(
                    release=release,
                    number=opts["number"],
                    format=opts["format"],
                    user=user,
                    via=VIA,
                )
            else:
                job = services.release_verify(
                    release=release,
                    number=opts["number"],
                    package=opts["package"],
                    user=user,
                    via=VIA,
                )
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        except (JobError, PermissionDenied) as exc:
            raise CommandError(str(exc)) from None
        self._queued(job)
        return None

    def _user(self, username: str | None):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        return user

    def _release(self, slug: str) -> Release:
        release = Release.objects.filter(slug=slug).first()
        if release is None:
            raise CommandError(f"no release with slug {slug!r}")
        return release

    def _queued(self, job: Job) -> None:
        self.stdout.write(f"queued job #{job.pk} ({job.job_type}, config {json.dumps(job.config)})")

    def _list(self) -> None:
        rows = Release.objects.select_related("current_version").order_by("slug")
        for r in rows:
            current = f"v{r.current_version.number}" if r.current_version_id else "-"
            self.stdout.write(f"{r.slug:30} {current:>6}  {r.name}")

    def _versions(self, release: Release) -> None:
        versions = ReleaseVersion.objects.filter(release=release).select_related("parent")
        for v in versions.order_by("number").prefetch_related("files"):
            files = [a for a in v.files.all() if a.kind == "file"]
            mark = "*" if v.pk == release.current_version_id else " "
            parent = f"v{v.parent.number}" if v.parent_id else "-"
            self.stdout.write(
                f"{mark}v{v.number:<4} parent {parent:<6} {len(files):>5} files "
                f"{sum(a.size for a in files):>12} bytes  "
                f"{v.created_at:%Y-%m-%d %H:%M}  {v.comment}"
            )

    def _upload(self, release: Release, opts: dict, user) -> None:
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
                user=user,
            )
        finally:
            for h in handles:
                h.close()
        self.stdout.write(f"created {release.slug} v{version.number} with {len(entries)} files")
