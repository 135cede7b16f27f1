"""The job-type axis of the permission matrices: who may run which job type, by role.

Shared by tests/api/test_permission_matrix.py, tests/admin/test_permission_matrix.py
and tests/jobs/test_permission_matrix.py, which each try every job type through
their front doors as every role:

- anonymous: nobody signed in;
- owner: an ordinary user (for a door with its own model permissions, such as
  schedules or the admin, one holding just those: an ordinary operator);
- other: the same kind of user, acting on the owner's job where the door acts on one;
- staff: is_staff and no permission at all;
- viewer: is_staff with every view_* permission there is (view_all_jobs included);
- holder: an owner who also holds the job type's own right;
- superuser.

A job type is run by whoever it declares (TYPE_RIGHT): anyone signed in, the holder
of its permission (and superusers), or Jobdeck alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from jobs import services
from jobs.models import Job, JobStatus
from releases.models import Release
from tests.support.release_factories import make_release, make_version

ROLES = ("anonymous", "owner", "other", "staff", "viewer", "holder", "superuser")
JOBDECK_ONLY = "Jobdeck only"

# Each job type and the right its creation needs (app_label.codename).
TYPE_RIGHT: dict[str, str | None] = {
    "demo.steps": None,
    "maintenance.cleanup": "jobs.cleanup_jobs",
    "release.inspect": "releases.change_release",
    "release.package": "releases.change_release",
    "release.verify": "releases.change_release",
    "release.apply": "releases.change_release",
    "tasks.call": JOBDECK_ONLY,
}
JOB_TYPES = tuple(TYPE_RIGHT)

CONFIG = {
    "demo.steps": {"steps": 1, "delay": 0},
    "maintenance.cleanup": {"older_than_days": 30, "dry_run": True},
    "release.inspect": {},
    "release.package": {},
    "release.verify": {},
    "release.apply": {"version": 1},
    "tasks.call": {"task_path": "tests.support.django_tasks.add", "args": [1, 2]},
}


def needs_release(job_type: str) -> bool:
    return job_type.startswith("release.")


def type_allows(role: str, job_type: str) -> bool:
    """May `role` create jobs of `job_type` (the door aside)?"""
    right = TYPE_RIGHT[job_type]
    if right == JOBDECK_ONLY or role == "anonymous":
        return False
    return right is None or role in ("holder", "superuser")


@dataclass(frozen=True)
class Door:
    """What a front door itself asks before the job type is considered."""

    staff: bool = False  # the admin: is_staff
    perms: tuple[str, ...] = ()  # codenames the door's own model permissions need
    viewer_reaches: bool = True  # whether every view_* permission is enough for it
    acts_on_own_job: bool = False  # submit and retry: "other" tries the owner's job


def reaches(door: Door, role: str) -> bool:
    """Does `role` get past the door to the job-type check?"""
    if role == "anonymous":
        return False
    if role == "superuser":
        return True
    if role == "other" and door.acts_on_own_job:
        return False  # the owner's job is invisible to them: a 404
    if role == "staff":
        return not door.perms and not door.staff
    if role == "viewer":
        return door.viewer_reaches
    return True


def expected(door: Door, role: str, job_type: str) -> str:
    """ "ok" (done), "denied" (the job type refused), "door" (refused before it) or
    "invalid" (a 400: a type only Jobdeck may create)."""
    if not reaches(door, role):
        return "door"
    if TYPE_RIGHT[job_type] == JOBDECK_ONLY:
        # A carrier job Jobdeck made runs again for whoever may act on it (its config
        # cannot change); nobody may create one.
        return "ok" if door.acts_on_own_job else "invalid"
    return "ok" if type_allows(role, job_type) else "denied"


def make_role(role: str, door: Door, job_type: str):
    """The user acting as `role` at `door` (None for anonymous)."""
    User = get_user_model()
    if role == "anonymous":
        return None
    if role == "superuser":
        return User.objects.create_superuser("root", "root@example.com", "root-pass-1")
    staff = door.staff or role in ("staff", "viewer")
    user = User.objects.create_user(role, password=f"{role}-pass-1", is_staff=staff)
    codenames: list[str] = []
    if role in ("owner", "other", "holder"):
        codenames += door.perms
    if role == "holder" and TYPE_RIGHT[job_type] not in (None, JOBDECK_ONLY):
        codenames.append(TYPE_RIGHT[job_type].split(".", 1)[1])
    if role == "viewer":
        user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)


def the_release() -> Release:
    """A release with one version, for the release.* types."""
    release = Release.objects.filter(slug="app").first()
    if release is None:
        release = make_release("app")
        make_version(release, {"README.txt": b"hello\n"})
    return release


def spec(job_type: str) -> dict:
    """The API body of a valid job of `job_type`."""
    body = {"job_type": job_type, "config": CONFIG[job_type]}
    if needs_release(job_type):
        body["release"] = the_release().pk
    return body


def job_of(job_type: str, owner, status: str) -> Job:
    """A job of `job_type` owned by `owner`, forced into `status` (made as Jobdeck)."""
    job = services.job_create(
        job_type=job_type,
        config=CONFIG[job_type],
        release=the_release() if needs_release(job_type) else None,
        draft=status == JobStatus.DRAFT,
        allow_internal=True,
    )
    fields = {"status": status, "created_by": owner}
    if status == JobStatus.FAILED:
        fields.update(attempts=1, error="boom")
    Job.objects.filter(pk=job.pk).update(**fields)
    return Job.objects.get(pk=job.pk)


def jobs_of(job_type: str) -> int:
    return Job.objects.filter(job_type=job_type).count()
