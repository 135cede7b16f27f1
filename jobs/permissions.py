"""Who may do what with jobs: the one module for Jobdeck's access rules.

Every front door (admin, API, management commands, schedules, the django.tasks
backend) asks these functions; the job-creation services call `require_create`
themselves, so no door can go around it.

- Seeing a job: its owner, holders of `jobs.view_all_jobs` or `jobs.manage_all_jobs`,
  superusers (`visible_jobs`). A job one may not see is a 404, never a 403.
- Acting on a job (cancel, retry, submit, discard, delete): its owner, holders of
  `jobs.manage_all_jobs`, superusers (`may_act`).
- Creating a job of a type (and submitting, retrying or scheduling it): what the type
  declares, `JobType.create_permission` and `JobType.may_create()` (`may_create`).
  `user=None` is Jobdeck itself: the shell without --user, a schedule without an
  owner, the django.tasks backend.
- Deleting everyone's finished jobs (cleanup): `jobs.cleanup_jobs` (`may_clean_up`).
- Pausing, resuming and limiting queues and job types: `jobs.manage_queues`
  (`may_manage_queues`); seeing the queues' figures: that, or seeing all jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied

from . import registry

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .models import Job

VIEW_ALL_JOBS = "jobs.view_all_jobs"
MANAGE_ALL_JOBS = "jobs.manage_all_jobs"
MANAGE_QUEUES = "jobs.manage_queues"
CLEANUP_JOBS = "jobs.cleanup_jobs"


class JobTypeDenied(PermissionDenied):
    """The user may not create (submit, retry, schedule) jobs of this type: HTTP 403."""

    def __init__(self, job_type: registry.JobType, reason: str = "") -> None:
        self.job_type = job_type.name
        needs = f" (it needs the {job_type.create_permission} permission)"
        message = f"you may not run {job_type.name!r} jobs" + (
            f": {reason}" if reason else needs if job_type.create_permission else ""
        )
        super().__init__(message)


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


# --- seeing and acting ----------------------------------------------------------------


def visible_jobs[QS: QuerySet[Job]](jobs: QS, user: Any) -> QS:
    """The jobs of `jobs` that `user` may see: their own, or all with view_all_jobs."""
    if user is None or not user.is_authenticated:
        return jobs.none()
    if sees_all_jobs(user):
        return jobs
    return jobs.filter(created_by=user)


def may_see(user: Any, job: Job) -> bool:
    """visible_jobs() for one job already loaded: may `user` see `job`?"""
    if user is None or not user.is_authenticated:
        return False
    if sees_all_jobs(user):
        return True
    return job.created_by_id is not None and job.created_by_id == user.pk


def sees_all_jobs(user: Any) -> bool:
    return _active(user) and (user.has_perm(VIEW_ALL_JOBS) or user.has_perm(MANAGE_ALL_JOBS))


def may_manage_queues(user: Any) -> bool:
    """Pausing, resuming and limiting queues and job types (flow control) needs
    jobs.manage_queues; None is Jobdeck itself (a command run by the operator)."""
    return user is None or (_active(user) and user.has_perm(MANAGE_QUEUES))


def may_act(user: Any, job: Job) -> bool:
    """May `user` cancel, retry, submit, discard or delete `job`? Owner, manager, superuser."""
    if not _active(user):
        return False
    return user.has_perm(MANAGE_ALL_JOBS) or (
        job.created_by_id is not None and job.created_by_id == user.pk
    )


def may_clean_up(user: Any) -> bool:
    """May `user` delete every user's finished jobs (the cleanup endpoint, the
    maintenance.cleanup job type)? Holders of jobs.cleanup_jobs; None is Jobdeck itself."""
    return user is None or (_active(user) and user.has_perm(CLEANUP_JOBS))


# --- creating -------------------------------------------------------------------------------


def may_create(
    user: Any, job_type: registry.JobType, *, release: Any = None, config: dict | None = None
) -> bool:
    """May `user` create jobs of `job_type` (on `release`, with the clean `config`)?

    With `config=None` the question is about the type as a whole (listings, and the
    check made before a config is validated); the type's own may_create() rule is
    asked once the config is known.
    """
    if user is None:
        return True  # Jobdeck itself
    if not job_type.user_creatable or not _active(user):
        return False
    if job_type.create_permission and not user.has_perm(job_type.create_permission):
        return False
    return config is None or bool(job_type.may_create(user, release, config))


def require_create(
    user: Any, job_type: registry.JobType, *, release: Any = None, config: dict | None = None
) -> None:
    """may_create(), or JobTypeDenied (403 in the API, a message in the admin)."""
    if not may_create(user, job_type, release=release, config=config):
        raise JobTypeDenied(job_type)


def creatable_types(user: Any) -> list[registry.JobType]:
    """The registered types `user` may create (GET /api/job-types/, "Run a job")."""
    return [jt for jt in registry.all_types() if may_create(user, jt)]
