"""Writes and workflows on jobs: the one place for their rules.

Admin actions, API views, management commands, schedules and the django.tasks
backend all call these functions: validation, who did it (the audit trail), and
the wake-ups. Every status change itself is the engine's (jobs.engine), a
conditional write that two workers, a redelivered broker message and a person
clicking cancel can never both win.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import broker, engine, extensions, flow, permissions, queues, registry
from .engine import dependencies
from .exceptions import IllegalTransition, validation_errors
from .models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    AuditAction,
    AuditEvent,
    Job,
    JobLog,
    JobStatus,
    JobTag,
    LogLevel,
    Task,
)
from .queues import DEFAULT_QUEUE
from .tags import clean_tags

logger = logging.getLogger(__name__)

# The oldest finished jobs a cleanup may ask for (a hundred years; the API's limit too).
CLEANUP_MAX_DAYS = 36_500


def audit(
    *,
    job: Job | None,
    user: Any,
    via: str,
    action: str,
    detail: dict | None = None,
    target: Any = None,
) -> AuditEvent:
    """Record who did what through which front door (`via`): to a job, or to
    `target` (any model instance: a schedule, a release, …)."""
    actor = user if user is not None and user.is_authenticated else None
    subject = job if job is not None else target
    return AuditEvent.objects.create(
        job=job,
        actor=actor,
        via=via,
        action=action,
        detail=detail or {},
        **AuditEvent.describe(subject),
    )


def audited_value(name: str, values: dict[str, Any]) -> Any:
    """Field `name` of `values` (a schedule's or a template's, before or after a change)
    as the audit trail records it: a config with its secrets masked, a related object by
    its pk."""
    value = values[name]
    if name == "config":
        return registry.redact(values["job_type"], value)
    return value.pk if hasattr(value, "pk") else value


# --- creation -------------------------------------------------------------------


# The longest timeout a job may ask for (a day): longer work belongs in several jobs.
TIMEOUT_MAX_SECONDS = 86_400
TIMEOUT_ERROR = (
    f"timeout_seconds must be a whole number of seconds from 1 to {TIMEOUT_MAX_SECONDS}."
)


def timeout_is_valid(value: Any) -> bool:
    """Whether `value` is a timeout a job may carry: an int from 1 to TIMEOUT_MAX_SECONDS."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= TIMEOUT_MAX_SECONDS
    )


def resolved_timeout(job_type: registry.JobType, explicit: int | None) -> int | None:
    """The timeout a new job carries, worked out once at its creation (every front door
    comes through here): the job's own `explicit` value, else an operator's override for
    its type (jobs.flow), else its type's default, else None (no timeout of its own;
    django-q2's Q_CLUSTER timeout is the last resort)."""
    if explicit is not None:
        return explicit
    override = flow.timeout_override(job_type.name)
    return override if override is not None else job_type.timeout_seconds


def _validate_scheduling(
    *,
    priority: int,
    run_after: datetime | None,
    max_attempts: int | None,
    timeout_seconds: int | None = None,
) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(priority, int) or isinstance(priority, bool) or not -100 <= priority <= 100:
        errors["priority"] = ["Priority must be an integer between -100 and 100."]
    if run_after is not None and timezone.is_naive(run_after):
        errors["run_after"] = ["run_after must be timezone-aware."]
    if max_attempts is not None and not (
        isinstance(max_attempts, int) and 1 <= max_attempts <= 100
    ):
        errors["max_attempts"] = ["max_attempts must be an integer between 1 and 100."]
    if timeout_seconds is not None and not timeout_is_valid(timeout_seconds):
        errors["timeout_seconds"] = [TIMEOUT_ERROR]
    if errors:
        raise ValidationError(errors)


def validated_type_and_config(
    job_type: Any, config: Any, *, allow_internal: bool = False
) -> tuple[registry.JobType, dict]:
    """The registered type and its cleaned config; ValidationError naming the field."""
    jt = registry.get(job_type)
    if not jt.user_creatable and not allow_internal:
        raise ValidationError(
            {"job_type": [f"Jobs of type {job_type!r} can only be created by Jobdeck itself."]}
        )
    if jt.config_serializer is registry.EmptyConfig and (config is None or config == {}):
        return jt, {}  # what EmptyConfig's validation returns, without a serializer
    return jt, registry.validate_config(jt, config)


def job_build(
    *,
    job_type: str,
    config: Any = None,
    user: Any = None,
    release: Any = None,
    schedule: Any = None,
    priority: int = 0,
    run_after: datetime | None = None,
    max_attempts: int | None = None,
    timeout_seconds: int | None = None,
    queue: str = DEFAULT_QUEUE,
    draft: bool = False,
    allow_internal: bool = False,
    tags: Any = None,
    now: datetime | None = None,
    unique_key: str | None = None,
    depends_on: Any = None,
    on_parent_failure: Any = None,
) -> tuple[Job, list[str]]:
    """Validate everything and return an unsaved Job with its task names.

    Raises ValidationError naming the field, or JobTypeDenied when `user` may not
    create jobs of the type (jobs.permissions: the check every front door goes
    through); nothing is written.
    """
    jt = registry.get(job_type)
    if jt.user_creatable:  # one only Jobdeck may create is a 400 (just below)
        permissions.require_create(user, jt, release=release)
    jt, clean_config = validated_type_and_config(job_type, config, allow_internal=allow_internal)
    _validate_scheduling(
        priority=priority,
        run_after=run_after,
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
    )
    clean_tag_list = clean_tags(tags)
    if jt.requires_release and release is None:
        raise ValidationError({"release": [f"Job type {job_type!r} needs a release."]})
    if release is not None and release.pk is None:  # as save() refuses it
        raise ValueError(
            "save() prohibited to prevent data loss due to unsaved related object 'release'."
        )
    clean_config = registry.validate_for_release(jt, clean_config, release)
    permissions.require_create(user, jt, release=release, config=clean_config)
    if queue not in queues.known_queues():
        known = ", ".join(sorted(queues.known_queues()))
        raise ValidationError({"queue": [f"Unknown queue {queue!r}; known: {known}."]})
    unique_key = _valid_unique_key(unique_key)
    mode = valid_on_parent_failure(on_parent_failure)
    if draft and depends_on:
        raise ValidationError({"depends_on": ["A draft cannot wait for other jobs."]})
    parent_ids = valid_depends_on(depends_on, user)
    names = jt.tasks(clean_config)
    now = now or timezone.now()
    job = Job(
        job_type=jt.name,
        status=JobStatus.DRAFT if draft else JobStatus.PENDING,
        config=clean_config,
        release=release,
        schedule=schedule,
        created_by=user if user is not None and user.is_authenticated else None,
        priority=priority,
        run_after=run_after,
        max_attempts=max_attempts or jt.max_attempts,
        timeout_seconds=resolved_timeout(jt, timeout_seconds),
        queue=queue,
        created_at=now,
        queued_at=None if draft else now,
        progress_total=len(names),
        analysis={"state": "pending"} if draft else None,
        unique_key=unique_key,
        tags=clean_tag_list,
        on_parent_failure=mode,
    )
    job.lock, job.lock_limit = lock_of(jt, job)
    job.parent_ids = parent_ids
    return job, names


UNIQUE_KEY_MAX = 200


def _valid_unique_key(value: Any) -> str | None:
    """A unique key as given (None or "" for none), or ValidationError."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > UNIQUE_KEY_MAX or "\x00" in value:
        raise ValidationError(
            {"unique_key": [f"unique_key must be a string of at most {UNIQUE_KEY_MAX} characters."]}
        )
    return value


ON_PARENT_FAILURE = ("cancel", "run")
DEPENDS_ON_MAX = 1000


def valid_on_parent_failure(value: Any) -> str:
    """ "cancel" (the default: a parent that fails or is cancelled cancels the job) or
    "run" (the job runs once every parent ended, whatever happened); else ValidationError."""
    if value is None:
        return "cancel"
    if value not in ON_PARENT_FAILURE:
        raise ValidationError(
            {"on_parent_failure": ['on_parent_failure must be "cancel" or "run".']}
        )
    return value


def valid_depends_on(value: Any, user: Any) -> list[int]:
    """The ids of the existing jobs a new job waits for (None or [] for none), each one
    `user` may see (None: Jobdeck itself sees all); else ValidationError naming the
    first that does not exist or that `user` may not see (the two look alike)."""
    if value is None or value == []:
        return []
    if (
        not isinstance(value, list | tuple)
        or len(value) > DEPENDS_ON_MAX
        or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in value)
    ):
        raise ValidationError(
            {"depends_on": [f"depends_on must be a list of at most {DEPENDS_ON_MAX} job ids."]}
        )
    ids = sorted(set(value))
    jobs = Job.objects.filter(pk__in=ids)
    if user is not None:
        jobs = permissions.visible_jobs(jobs, user)
    found = dict(jobs.values_list("pk", "status"))
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({"depends_on": [f"There is no job #{missing[0]} that you may see."]})
    drafts = [i for i in ids if found[i] == JobStatus.DRAFT]
    if drafts:  # a draft may never run, and may be discarded
        raise ValidationError({"depends_on": [f"Job #{drafts[0]} is a draft: submit it first."]})
    return ids


@dataclasses.dataclass
class Parents:
    """The parents of new jobs, locked (engine.dependencies.parent_states): for each
    child, how many it waits for, its edges, and the parent that cancels it at once."""

    states: dict[int, str]

    def plan(
        self, parent_ids: Sequence[int], mode: str
    ) -> tuple[int, list[tuple[int, bool]], int | None]:
        """(waiting_on, [(parent, settled)], the failed or cancelled parent that
        cancels the child at birth, if any)."""
        edges = [(p, dependencies.settles(self.states[p], mode)) for p in parent_ids]
        blocking = [
            p for p, settled in edges if not settled and self.states[p] in dependencies.ENDED
        ]
        return sum(not settled for _, settled in edges), edges, (blocking[0] if blocking else None)


def lock_parents(parent_ids: Iterable[int]) -> Parents:
    """Lock the existing parents of new jobs for the creating transaction."""
    return Parents(dependencies.parent_states(set(parent_ids)))


def _link_new(
    child_id: int,
    edges: list[tuple[int, bool]],
    blocking: int | None,
    states: dict[int, str],
    now: datetime,
) -> None:
    """The edges of new job `child_id`; cancelled at once when a parent it needs
    already failed or was cancelled (retrying that parent puts it back to pending)."""
    dependencies.link((child_id, parent, settled) for parent, settled in edges)
    if blocking is not None:
        dependencies.cancel_at_birth({child_id: (blocking, states[blocking])}, now)


def _runs_at_once(plan: tuple[int, list[tuple[int, bool]], int | None]) -> bool:
    """Whether a new job with this Parents.plan is runnable as soon as it commits."""
    waiting_on, _, blocking = plan
    return waiting_on == 0 and blocking is None


def lock_of(jt: registry.JobType, job: Job) -> tuple[str | None, int]:
    """The lock key a new job takes and how many of its jobs may run at once: an app's
    key first (a release's, one at a time), else the type's concurrency_key formatted
    from the clean config. ValidationError when the config lacks what the key names."""
    key = extensions.lock_key(job)
    if key is not None or not jt.concurrency_key:
        return key, 1
    try:
        key = jt.concurrency_key.format_map(job.config)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValidationError(
            {"config": [f"The concurrency key {jt.concurrency_key!r} needs {exc}."]}
        ) from exc
    return key[:200], jt.concurrency_key_limit


def write_tags(job_ids: Sequence[int], tags: list[str]) -> None:
    """Give jobs `job_ids` the tags `tags`: the column shown with them and the rows
    `?tag=` finds them by (two statements; none for jobs without tags)."""
    if not tags or not job_ids:
        return
    Job.objects.filter(pk__in=job_ids).update(tags=tags)
    JobTag.objects.bulk_create(
        [JobTag(job_id=job_id, tag=tag) for job_id in job_ids for tag in tags], batch_size=2000
    )


def write_tag_sets(tagged: Iterable[tuple[int, Sequence[str]]]) -> None:
    """write_tags for many jobs, each (job id, its tags): one UPDATE and one INSERT per
    distinct tag set, not per job (bulk creation, workflows)."""
    by_set: dict[tuple[str, ...], list[int]] = {}
    for job_id, tags in tagged:
        if tags:
            by_set.setdefault(tuple(tags), []).append(job_id)
    for tag_set, job_ids in by_set.items():
        write_tags(job_ids, list(tag_set))


@transaction.atomic
def job_create(*, draft: bool = False, via: str = "system", **kwargs: Any) -> Job:
    """Create a job (pending, or a draft to analyse first) with its ordered tasks.

    A pending job is enqueued once the transaction commits; a rolled-back job never runs.
    With the ORM broker its wake-up is written in the same transaction (one commit for
    both, see broker.wake_with_commit), otherwise sent after the commit.
    A job a person creates is recorded in the audit trail with the front door used.
    """
    job, names = job_build(draft=draft, **kwargs)
    parents = lock_parents(job.parent_ids)
    plan = parents.plan(job.parent_ids, job.on_parent_failure)
    job.waiting_on, edges, blocking = plan
    if engine.insert(job, names) is None:
        return existing_job(job)
    job.existing = False
    _link_new(job.pk, edges, blocking, parents.states, job.created_at)
    write_tags([job.pk], job.tags)
    if job.created_by_id is not None:
        detail = {"depends_on": job.parent_ids} if job.parent_ids else {}
        audit(job=job, user=job.created_by, via=via, action=AuditAction.CREATED, detail=detail)
    if draft:
        job_id = job.pk
        transaction.on_commit(lambda: broker.enqueue_analysis(job_id), robust=True)
    elif _runs_at_once(plan):
        broker.wake_with_commit(job.pk, job.queue)
    if blocking is not None:
        job.refresh_from_db()
    return job


def existing_job(job: Job) -> Job:
    """The pending or running job holding `job`'s unique key, the one a create with
    that key returns (`existing` set): the insert just found it, so it is there unless
    it finished since, and then the key is free (ValidationError: try again)."""
    found = (
        Job.objects.filter(unique_key=job.unique_key, status__in=ACTIVE_STATUSES)
        .order_by("pk")
        .first()
    )
    if found is None:
        raise ValidationError(
            {"unique_key": [f"The job holding unique key {job.unique_key!r} just finished; retry."]}
        )
    found.existing = True
    return found


def job_analyze(*, job_id: int) -> dict:
    """Run the job type's analysis of a draft and store it on the job."""
    job = Job.objects.select_related("release").get(pk=job_id)
    try:
        analysis = registry.get(job.job_type).analyze(job.config, job.release)
        analysis = registry.redact_result(job.job_type, job.config, analysis)
        state = {"state": "ready", "analysis": analysis}
    except Exception as exc:  # an analysis that crashes is reported, not raised
        logger.exception("analysis of job %s failed", job_id)
        error = registry.redact_text(job.job_type, job.config, f"{type(exc).__name__}: {exc}")
        state = {"state": "failed", "analysis": {}, "error": error}
    Job.objects.filter(pk=job_id).update(analysis=state)
    return state


# --- human actions ------------------------------------------------------------


@transaction.atomic
def job_submit(*, job: Job, user: Any = None, via: str = "system") -> Job:
    """Turn a draft into a pending job that runs; the submitter must be allowed to
    create jobs of its type (jobs.permissions), whoever made the draft."""
    _require_create_again(job, user)
    with _unique_key_held(job):
        engine.submit(job.pk)
    audit(job=job, user=user, via=via, action=AuditAction.SUBMITTED)
    broker.wake_on_commit(job.pk, job.queue)
    job.refresh_from_db()
    return job


@transaction.atomic
def job_cancel(*, job: Job, user: Any = None, via: str = "system") -> Job:
    """Cancel a job: a pending one at once, a running one at its next task boundary."""
    was = engine.cancel(job.pk)
    audit(job=job, user=user, via=via, action=AuditAction.CANCELLED, detail={"was": was})
    job.refresh_from_db()
    return job


@transaction.atomic
def job_retry(*, job: Job, user: Any = None, via: str = "system", config: Any = None) -> Job:
    """Run a failed or cancelled job again: succeeded tasks are kept and skipped.

    With `config`, the job runs with that corrected config (validated; the change
    is recorded in the audit trail).
    """
    fields: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    names: list[str] | None = None
    if config is not None:
        jt = registry.get(job.job_type)
        if jt.user_creatable:  # a carrier's config cannot change at all (just below)
            permissions.require_create(user, jt, release=job.release)
        # A config copied from a masked display keeps the secrets it did not change.
        config = registry.unredact(job.job_type, config, job.config)
        clean = registry.validate_config(jt, config)
        clean = registry.validate_for_release(jt, clean, job.release)
        if clean != job.config and not jt.user_creatable:
            # A carrier job (tasks.call) names code to run: only Jobdeck may set that.
            raise ValidationError(
                {"config": [f"The config of {job.job_type!r} jobs cannot be changed."]}
            )
        if clean != job.config:
            fields["config"] = clean
            detail["config"] = {
                "old": registry.redact(job.job_type, job.config),
                "new": registry.redact(job.job_type, clean),
            }
            names = jt.tasks(clean)
    _require_create_again(job, user, fields.get("config"))
    if (held := dependencies.blocking_parent(job.pk)) is not None:
        # It would wait for that parent forever: the parent's retry brings it back.
        raise IllegalTransition(
            job.pk, "retry", f"held by parent #{held[0]}, which {held[1]}; retry that one"
        )
    with _unique_key_held(job):
        engine.retry(job.pk, fields=fields, task_names=names)
    audit(job=job, user=user, via=via, action=AuditAction.RETRIED, detail=detail)
    broker.wake_on_commit(job.pk, job.queue)
    job.refresh_from_db()
    return job


@contextlib.contextmanager
def _unique_key_held(job: Job) -> Iterator[None]:
    """Running a job again while another holds its unique key: a clear 400, not a 500
    (unique_active_key refuses the second active job of a key)."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        if job.unique_key is None or "unique" not in str(exc).lower():
            raise
        raise ValidationError(
            {
                "unique_key": [
                    f"Another job with unique key {job.unique_key!r} is pending or running."
                ]
            }
        ) from exc


@transaction.atomic
def job_run_now(*, job: Job, user: Any = None, via: str = "system") -> Job:
    """Start a delayed pending job now: its `run_after` is cleared by one conditional
    UPDATE (only while it is still pending and delayed), then a worker is woken."""
    if user is not None and not permissions.may_act(user, job):
        raise PermissionDenied(f"job #{job.pk}: you may only run your own jobs")
    now = timezone.now()
    current = Job.objects.filter(pk=job.pk).values("status", "run_after").first()
    moved = Job.objects.filter(pk=job.pk, status=JobStatus.PENDING, run_after__gt=now).update(
        run_after=None
    )
    if not moved:
        status = current["status"] if current else None
        if status == JobStatus.PENDING:
            status = "pending and not delayed"  # a worker starts it as soon as one is free
        raise IllegalTransition(job.pk, "run now", status)
    assert current is not None  # the UPDATE matched the row
    audit(
        job=job,
        user=user,
        via=via,
        action=AuditAction.RAN,
        detail={"run_after": {"old": current["run_after"], "new": None}},
    )
    broker.wake_on_commit(job.pk, job.queue)
    job.refresh_from_db()
    return job


def job_discard(*, job: Job, user: Any = None, via: str = "system") -> None:
    """Throw a draft away (it never ran): job_delete limited to drafts, recorded as
    "discarded"."""
    if user is not None and not permissions.may_act(user, job):
        raise PermissionDenied(f"job #{job.pk}: you may only discard your own drafts")
    job_delete(
        job=job,
        user=user,
        via=via,
        statuses=(JobStatus.DRAFT,),
        action="discard",
        audit_action=AuditAction.DISCARDED,
    )


def _require_create_again(job: Job, user: Any, config: dict | None = None) -> None:
    """Running a job again (submit, retry) needs the right to create one of its type,
    checked for whoever acts now: the right may have been withdrawn since."""
    try:
        jt = registry.get(job.job_type)
    except ValidationError:
        return  # its type is gone: the runner fails it with that reason
    if not jt.user_creatable:
        return  # Jobdeck made it (tasks.call) and its config cannot change: may_act decides
    permissions.require_create(
        user, jt, release=job.release, config=job.config if config is None else config
    )


@transaction.atomic
def job_delete(
    *,
    job: Job,
    user: Any = None,
    via: str = "system",
    statuses: Iterable[str] = (*FINISHED_STATUSES, JobStatus.DRAFT),
    action: str = "delete",
    audit_action: str = AuditAction.DELETED,
) -> None:
    """Delete a job in one of `statuses` (by default finished jobs and drafts) with its
    tasks and logs; active jobs are always refused. The status check and the delete
    happen under one row lock, so a job cannot change status in between."""
    deletable = tuple(s for s in statuses if s not in ACTIVE_STATUSES)
    locked = Job.objects.select_for_update().filter(pk=job.pk, status__in=deletable)
    if not locked.exists():
        current = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        raise IllegalTransition(job.pk, action, current, allowed=deletable)
    audit(
        job=None,
        user=user,
        via=via,
        action=audit_action,
        detail={"job": job.pk, "job_type": job.job_type},
        target=job,
    )
    _delete_jobs([job.pk])


# --- logs ---------------------------------------------------------------------------


def job_log(
    *, job_id: int, message: str, level: int = LogLevel.INFO, task_id: int | None = None
) -> JobLog:
    """Append one log line (one INSERT; the id is the follow cursor)."""
    return engine.append_log(job_id, message, level=level, task_id=task_id)


# --- cleanup and recovery -----------------------------------------------------------


def _delete_jobs(ids: list[int]) -> dict[str, int]:
    """Delete jobs `ids` and what hangs off them; returns the counts.

    Call it inside a transaction holding the jobs' row locks. Every foreign key to a
    job has a database-level rule (ON DELETE CASCADE for tasks and logs, SET NULL for
    audit events, schedules and occurrences), so this is one DELETE however much hangs
    off the jobs; the tasks and log lines going with them are counted first.
    """
    if not ids:
        return {"jobs": 0, "tasks": 0, "logs": 0}
    counts = {
        "tasks": Task.objects.filter(job_id__in=ids).count(),
        "logs": JobLog.objects.filter(job_id__in=ids).count(),
    }
    deleted, _ = Job.objects.filter(pk__in=ids).delete()
    return {"jobs": deleted, **counts}


def job_cleanup(
    *,
    older_than: timedelta,
    dry_run: bool = False,
    user: Any = None,
    via: str = "system",
    batch_size: int | None = None,
    pause: float | None = None,
) -> dict[str, Any]:
    """Delete finished jobs (with tasks and logs) that finished before now - `older_than`.

    Never touches draft, pending or running jobs. Works in batches (per status, oldest
    finish first), each in its own short transaction with the batch's rows locked, so a
    concurrent retry either happens first (and the job is kept) or finds the job gone;
    a job locked by
    someone else is skipped (SKIP LOCKED) and left for the next cleanup. `pause`
    (default JOBDECK_CLEANUP_PAUSE_SECONDS) sleeps between batches, leaving the
    database and the cores to the workers: a slower cleanup, a steadier drain.
    """
    if not permissions.may_clean_up(user):
        raise PermissionDenied(f"cleanup needs the {permissions.CLEANUP_JOBS} permission")
    if older_than < timedelta(0):
        raise ValidationError({"older_than_days": ["Must be zero or more."]})
    if older_than > timedelta(days=CLEANUP_MAX_DAYS):
        raise ValidationError({"older_than_days": [f"At most {CLEANUP_MAX_DAYS}."]})
    cutoff = timezone.now() - older_than
    candidates = Job.objects.filter(status__in=FINISHED_STATUSES, finished_at__lt=cutoff)
    if dry_run:
        return {
            "dry_run": True,
            "cutoff": cutoff.isoformat(),
            "jobs": candidates.count(),
            "tasks": Task.objects.filter(job__in=candidates).count(),
            "logs": JobLog.objects.filter(job__in=candidates).count(),
        }
    batch_size = batch_size or settings.JOBDECK_CLEANUP_BATCH_SIZE
    pause = settings.JOBDECK_CLEANUP_PAUSE_SECONDS if pause is None else pause
    totals = {"jobs": 0, "tasks": 0, "logs": 0}
    more = False  # the last batch was full: the next one follows it, after the pause
    # One keyset walk per finished status along job_status_finished_idx (status,
    # finished_at), in (finished_at, id) order: each batch starts after the previous one
    # (not over its dead rows), and the walk ends at the cutoff, never reading the jobs
    # it keeps (walking the primary key, the last batch read all of them).
    for status in FINISHED_STATUSES:
        after: tuple[datetime | None, int] | None = None  # finished_at is set on these
        while True:
            if more and pause > 0:
                time.sleep(pause)
            with transaction.atomic():
                rows = candidates.filter(status=status)
                if after is not None:  # the lower bound gives the index its start
                    rows = rows.filter(finished_at__gte=after[0]).filter(
                        Q(finished_at__gt=after[0]) | Q(finished_at=after[0], pk__gt=after[1])
                    )
                batch = list(
                    rows.select_for_update(skip_locked=True)
                    .order_by("finished_at", "pk")
                    .values_list("finished_at", "pk")[:batch_size]
                )
                more = len(batch) == batch_size
                if not batch:
                    break
                after = batch[-1]
                for key, value in _delete_jobs([pk for _, pk in batch]).items():
                    totals[key] += value
            if not more:  # the rest is locked by others (skipped) or none
                break
    summary = {"dry_run": False, "cutoff": cutoff.isoformat(), **totals}
    audit(job=None, user=user, via=via, action=AuditAction.CLEANUP, detail=summary)
    return summary


def sweep_stale_jobs(
    *, now: datetime | None = None, workers: Collection[str] | None = None
) -> dict[str, int]:
    """Recover running jobs whose worker stopped heartbeating (engine.sweep) and wake
    the re-queued ones. With `workers` ("host:pid" names the caller knows to be dead:
    `manage.py serve` after killing its cluster), their running jobs are recovered by
    the same rules at once, whatever their last heartbeat."""
    swept = engine.sweep(
        now=now or timezone.now(),
        stale_after=timedelta(seconds=settings.JOBDECK_STALE_SECONDS),
        workers=workers,
    )
    for job_id, queue in swept.requeued:
        broker.wake_on_commit(job_id, queue)
    return swept.counts


# --- bulk creation ------------------------------------------------------------------

BULK_MAX_JOBS = 10_000


class BulkValidationError(ValidationError):
    """Bulk creation refused; `errors` maps each bad item's index (a workflow's: each
    bad node's name) to its field errors."""

    def __init__(
        self, errors: Mapping[int, dict[str, list[str]]] | Mapping[str, dict[str, list[str]]]
    ):
        self.errors = errors
        # A readable summary for front doors that only print messages (commands).
        summary = [
            f"job {index}: {field}: {'; '.join(messages)}"
            for index, fields in list(errors.items())[:20]
            for field, messages in fields.items()
        ]
        super().__init__({"jobs": summary})


_BulkCacheEntry = tuple[registry.JobType, dict, list[str]] | ValidationError


def _bulk_validated_config(
    job_type: Any,
    config: Any,
    release: Any,
    user: Any,
    cache: dict[tuple[str, str, Any], _BulkCacheEntry],
) -> tuple[registry.JobType, dict, list[str]]:
    """The job type, clean config and task names, validated once per distinct item.

    Bulk calls usually repeat a few configs; a config serializer is a pure function
    of its input, so validating each distinct (type, config, release) once is what
    makes 10,000 jobs per second possible. Raises JobTypeDenied (the whole call is
    refused) when `user` may not create the type.
    """
    try:
        key: tuple[str, str, Any] | None = (
            str(job_type),
            json.dumps(config, sort_keys=True),
            release.pk if release is not None else None,
        )
    except (TypeError, ValueError):  # not plain JSON: validate it, never cache it
        key = None
    entry = cache.get(key) if key is not None else None
    if entry is None:
        try:
            jt = registry.get(job_type)
            if jt.user_creatable:
                permissions.require_create(user, jt, release=release)
            jt, clean = validated_type_and_config(job_type, config)
            if jt.requires_release and release is None:
                raise ValidationError({"release": [f"Job type {jt.name!r} needs a release."]})
            clean = registry.validate_for_release(jt, clean, release)
            permissions.require_create(user, jt, release=release, config=clean)
            entry = (jt, clean, jt.tasks(clean))
        except ValidationError as exc:
            entry = exc
        if key is not None:
            cache[key] = entry
    if isinstance(entry, ValidationError):
        raise entry
    return entry


class BulkIds(list[int]):
    """The ids of a bulk creation in input order; `existing`: the indexes of the items
    whose unique key a pending or running job held (its id is theirs; nothing new was
    made for them)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        super().__init__(ids)
        self.existing: set[int] = set()


def _keyed_bulk_job(
    jt: registry.JobType,
    clean: dict,
    names: list[str],
    spec: Mapping[str, Any],
    owner: Any,
    unique_key: str,
    now: datetime,
) -> tuple[Job, list[str]]:
    """An item of a bulk creation with a unique key: inserted on its own (its insert
    may find the key held), after the others."""
    release = spec.get("release")
    job = Job(
        job_type=jt.name,
        status=JobStatus.PENDING,
        config=clean,
        release=release,
        created_by=owner,
        priority=spec.get("priority", 0),
        run_after=spec.get("run_after"),
        max_attempts=spec.get("max_attempts") or jt.max_attempts,
        queue=DEFAULT_QUEUE,
        created_at=now,
        queued_at=now,
        progress_total=len(names),
        unique_key=unique_key,
        timeout_seconds=resolved_timeout(jt, spec.get("timeout_seconds")),
    )
    job.lock, job.lock_limit = lock_of(jt, job)
    return job, names


@dataclasses.dataclass(frozen=True)
class BulkItem:
    """One validated item of a bulk creation or a workflow: a NewJob, or a Job when it
    has a unique key (inserted on its own: its insert may find the key held)."""

    job: engine.NewJob | Job
    task_names: list[str]
    tags: list[str]


class BulkBuilder:
    """Validates the items of one bulk creation (or workflow) for `user`, each distinct
    (type, config, release) once, each config encoded once, each lock key worked out
    once per distinct (config, release): a Job per item would cost more than its INSERT."""

    def __init__(self, user: Any, now: datetime) -> None:
        self.user = user
        self.owner = user if user is not None and user.is_authenticated else None
        self.now = now
        self.cache: dict[tuple[str, str, Any], _BulkCacheEntry] = {}
        # id(clean config) → (the config, its JSON): the config is kept referenced so
        # its id cannot be reused by another item's.
        self.encoded: dict[int, tuple[dict, str]] = {}
        self.locks: dict[tuple[int, int | None], tuple[str | None, int]] = {}

    def __call__(self, spec: Mapping[str, Any]) -> BulkItem:
        """The item `spec` validated; ValidationError naming the field otherwise."""
        if spec.get("draft"):
            raise ValidationError({"draft": ["Bulk creation makes pending jobs only."]})
        release = spec.get("release")
        jt, clean, names = _bulk_validated_config(
            spec.get("job_type"), spec.get("config"), release, self.user, self.cache
        )
        priority = spec.get("priority", 0)
        max_attempts = spec.get("max_attempts")
        timeout_seconds = spec.get("timeout_seconds")
        _validate_scheduling(
            priority=priority,
            run_after=spec.get("run_after"),
            max_attempts=max_attempts,
            timeout_seconds=timeout_seconds,
        )
        queue = spec.get("queue") or DEFAULT_QUEUE
        if queue not in queues.known_queues():
            known = ", ".join(sorted(queues.known_queues()))
            raise ValidationError({"queue": [f"Unknown queue {queue!r}; known: {known}."]})
        item_tags = clean_tags(spec.get("tags"))
        mode = valid_on_parent_failure(spec.get("on_parent_failure"))
        unique_key = _valid_unique_key(spec.get("unique_key"))
        if unique_key is not None:
            job, names = _keyed_bulk_job(jt, clean, names, spec, self.owner, unique_key, self.now)
            job.queue, job.on_parent_failure = queue, mode
            return BulkItem(job, names, item_tags)
        if id(clean) not in self.encoded:
            self.encoded[id(clean)] = (clean, json.dumps(clean))
        lock_id = (id(clean), release.pk if release is not None else None)
        if lock_id not in self.locks:
            job = Job(job_type=jt.name, config=clean, release=release, queue=queue)
            self.locks[lock_id] = lock_of(jt, job)
        new = engine.NewJob(
            job_type=jt.name,
            config=self.encoded[id(clean)][1],
            release_id=release.pk if release is not None else None,
            queue=queue,
            lock=self.locks[lock_id][0],
            lock_limit=self.locks[lock_id][1],
            priority=priority,
            run_after=spec.get("run_after"),
            max_attempts=max_attempts or jt.max_attempts,
            task_names=names,
            timeout_seconds=resolved_timeout(jt, timeout_seconds),
            on_parent_failure=mode,
        )
        return BulkItem(new, names, item_tags)


def job_bulk_create(
    *,
    specs: Sequence[Mapping[str, Any]],
    user: Any = None,
    via: str = "system",
    now: datetime | None = None,
) -> BulkIds:
    """Create up to BULK_MAX_JOBS pending jobs with their tasks, all or nothing.

    Each spec holds job_type, config and optionally release (an object), priority,
    run_after, max_attempts, timeout_seconds, unique_key and tags, as for `job_create`.
    Every item is validated before anything is written; BulkValidationError names each
    bad item by its index.
    Jobs and tasks go in with one statement each (engine.insert_many), and once the
    transaction commits only as many wake-up messages as there are idle workers in the
    queue's live clusters (broker.wake_for_backlog), not one per job: each woken worker
    keeps claiming runnable jobs from the table, so the broker is never the limit.
    Returns the new jobs' ids in input order.
    """
    if not specs:
        raise ValidationError({"jobs": ["At least one job is required."]})
    if len(specs) > BULK_MAX_JOBS:
        raise ValidationError({"jobs": [f"At most {BULK_MAX_JOBS} jobs per call."]})
    now = now or timezone.now()
    owner = user if user is not None and user.is_authenticated else None
    build = BulkBuilder(user, now)
    errors: dict[int, dict[str, list[str]]] = {}
    new_jobs: list[engine.NewJob] = []
    # index → a job with a unique key, its task names and tags (inserted on its own)
    keyed: dict[int, tuple[Job, list[str], list[str]]] = {}
    parent_ids: dict[int, list[int]] = {}  # index → the existing jobs it waits for
    items: dict[int, BulkItem] = {}
    for index, spec in enumerate(specs):
        try:
            item = items[index] = build(spec)
            parent_ids[index] = valid_depends_on(spec.get("depends_on"), user)
        except ValidationError as exc:
            errors[index] = validation_errors(exc)
            continue
        if isinstance(item.job, Job):
            keyed[index] = (item.job, item.task_names, item.tags)
            continue
        new_jobs.append(item.job)
    if errors:
        raise BulkValidationError(errors)
    with transaction.atomic():
        parents = lock_parents(p for ids in parent_ids.values() for p in ids)
        plans = {
            index: parents.plan(ids, items[index].job.on_parent_failure)
            for index, ids in parent_ids.items()
            if ids
        }
        unkeyed_indexes = [i for i in range(len(specs)) if i not in keyed]
        new_jobs = [
            dataclasses.replace(job, waiting_on=plans[i][0]) if i in plans else job
            for i, job in zip(unkeyed_indexes, new_jobs, strict=True)
        ]
        plain = (
            engine.insert_many(
                new_jobs, created_by_id=owner.pk if owner is not None else None, now=now
            )
            if new_jobs
            else []
        )
        ids = BulkIds()
        unkeyed = iter(plain)
        for index in range(len(specs)):
            if index not in keyed:
                ids.append(next(unkeyed))
                continue
            job, names, job_tags = keyed[index]
            if index in plans:
                job.waiting_on = plans[index][0]
            if engine.insert(job, names) is None:
                job = existing_job(job)
                ids.existing.add(index)
                plans.pop(index, None)
            else:
                write_tags([job.pk], job_tags)
            ids.append(job.pk)
        for index, (_, edges, blocking) in plans.items():
            _link_new(ids[index], edges, blocking, parents.states, now)
        write_tag_sets((ids[i], items[i].tags) for i in unkeyed_indexes)
        audit(
            job=None,
            user=user,
            via=via,
            action=AuditAction.CREATED,
            detail={"bulk": len(ids), "first": ids[0], "last": ids[-1]},
        )
        runnable = [
            (ids[i], items[i].job.queue)
            for i in range(len(specs))
            if i not in ids.existing and (i not in plans or _runs_at_once(plans[i]))
        ]
        transaction.on_commit(lambda: broker.wake_released(runnable), robust=True)
    return ids
