"""Schedule writes and firing: the one place for their rules.

Admin actions, API views and the `schedules` command call these functions;
django-q2's scheduler calls `fire_due_schedules` every minute on every cluster.

Exactly once, with any number of clusters: firing occurrence `fire_at` of a
schedule is one transaction that (1) inserts `Occurrence(schedule, fire_at)`,
which the database's UNIQUE(schedule, fire_at) refuses to a second cluster, (2)
advances `next_run_at` with a conditional UPDATE (`WHERE next_run_at = fire_at
AND enabled`), which fails if another cluster or a person moved it meanwhile,
and (3) creates the job. A loser of either race rolls back, so no job is made.

A schedule with a `workflow` spec fires a workflow instead (jobs.workflows): the whole
graph is created in that same transaction, its jobs carry the schedule (Job.schedule,
as a job it fires does), so the overlap policy and the history see them; the schedule's
`last_workflow` is the workflow, its `last_job` null.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import jobtemplates, permissions, registry, workflows
from jobs import services as job_services
from jobs.exceptions import one_line
from jobs.models import ACTIVE_STATUSES, AuditAction, Job, JobTemplate, Workflow

from . import timing
from .models import MisfirePolicy, Occurrence, OverlapPolicy, Schedule, ScheduleKind

logger = logging.getLogger(__name__)

# An occurrence fired later than this after its time counts as missed (the
# clusters were down); the misfire policy decides what happens to it. Normal
# lateness is django-q2's scheduler cycle (a minute plus a 30 s guard), well within.
MISFIRE_GRACE = timedelta(seconds=settings.JOBDECK_SCHEDULE_MISFIRE_GRACE)
# Upper bound on occurrences one schedule fires in one call (on-time backlog).
MAX_FIRINGS_PER_CALL = 20

TIMING_FIELDS = ("kind", "interval_minutes", "time", "weekdays", "cron", "timezone")
EDITABLE_FIELDS = (
    "name",
    "template",
    "job_type",
    "config",
    "release",
    "workflow",
    *TIMING_FIELDS,
    "enabled",
    "misfire_policy",
    "overlap_policy",
    "dry_run",
    "timeout_seconds",
)
# The fields that say what job a schedule makes: changing them needs the right to create it.
JOB_FIELDS = ("template", "job_type", "config", "release", "workflow")


class _LostRace(Exception):
    """Another cluster (or a person) moved the schedule first; roll back this firing."""


# --- validation -------------------------------------------------------------------


def schedule_values(schedule: Schedule | None) -> dict[str, Any]:
    """The editable fields of `schedule`, or the defaults of a new one."""
    if schedule is None:
        return {
            "name": "",
            "template": None,
            "job_type": "",
            "config": {},
            "release": None,
            "workflow": None,
            "kind": "",
            "interval_minutes": None,
            "time": None,
            "weekdays": [],
            "cron": "",
            "timezone": "UTC",
            "enabled": True,
            "misfire_policy": MisfirePolicy.SKIP,
            "overlap_policy": OverlapPolicy.SKIP,
            "dry_run": False,
            "timeout_seconds": None,
        }
    return {name: getattr(schedule, name) for name in EDITABLE_FIELDS}


def schedule_clean(
    data: dict[str, Any], *, instance: Schedule | None = None, user: Any = None
) -> dict[str, Any]:
    """Validate a full set of schedule fields; return them cleaned.

    Fields that do not belong to the kind are cleared (e.g. `cron` of a daily
    schedule). A secret config value still reading as the mask keeps the stored
    one. With a `template` (a JobTemplate), the job type, config and release are the
    template's (a copy; the template is what fires). Raises ValidationError naming
    every bad field, then JobTypeDenied when
    `user` (None: Jobdeck itself) may not create the job the schedule would make
    (on create, and when its job type, config or release change).
    """
    errors: dict[str, list[str]] = {}
    clean = dict(data)
    denied: PermissionDenied | None = None

    def bad(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    name = (clean.get("name") or "").strip() if isinstance(clean.get("name"), str) else ""
    clean["name"] = name
    if not name:
        bad("name", "Enter a name.")
    elif len(name) > 200:
        bad("name", "At most 200 characters.")
    else:
        taken = Schedule.objects.filter(name=name)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            bad("name", "A schedule with this name already exists.")

    if clean.get("workflow") is not None:
        denied = _clean_workflow(clean, instance=instance, user=user, bad=bad)
    template = clean.get("template")
    if template is not None and not isinstance(template, JobTemplate):
        bad("template", "Choose a job template.")
        template = clean["template"] = None
    if template is not None:
        clean.update(
            job_type=template.job_type, config=dict(template.config), release=template.release
        )
    jt = None
    try:
        if clean.get("workflow") is None:
            jt = registry.get(clean.get("job_type"))
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if jt is not None:
        if not jt.user_creatable:
            bad("job_type", f"Jobs of type {jt.name!r} can only be created by Jobdeck itself.")
        if instance is not None and template is None:
            clean["config"] = registry.unredact(jt.name, clean.get("config"), instance.config)
        try:
            clean["config"] = registry.validate_config(jt, clean.get("config"))
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if jt.requires_release and clean.get("release") is None:
            bad("release", f"Job type {jt.name!r} needs a release.")
        elif "config" not in errors:
            try:  # the type's own checks, e.g. that the version it names exists
                clean["config"] = registry.validate_for_release(
                    jt, clean["config"], clean.get("release")
                )
            except ValidationError as exc:
                errors.update(exc.message_dict)

    kind = clean.get("kind")
    if kind not in ScheduleKind.values:
        bad("kind", f"Choose one of: {', '.join(ScheduleKind.values)}.")

    if not timing.is_valid_timezone(clean.get("timezone")):
        bad("timezone", f"Unknown IANA timezone: {clean.get('timezone')!r}.")

    if kind == ScheduleKind.INTERVAL:
        minutes = clean.get("interval_minutes")
        if isinstance(minutes, str) and minutes.strip().isdigit():
            minutes = int(minutes)
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            bad("interval_minutes", "Enter a whole number of minutes, at least 1.")
        elif minutes > 525_600:
            bad("interval_minutes", "At most 525600 (a year).")
        clean["interval_minutes"] = minutes
    else:
        clean["interval_minutes"] = None

    if kind in (ScheduleKind.DAILY, ScheduleKind.WEEKLY):
        try:
            clean["time"] = timing.parse_time(clean.get("time"))
        except ValueError as exc:
            bad("time", str(exc))
    else:
        clean["time"] = None

    if kind == ScheduleKind.WEEKLY:
        days = clean.get("weekdays")
        if (
            not isinstance(days, list | tuple)
            or not days
            or any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in days)
        ):
            bad("weekdays", "Choose one or more weekdays as numbers 0-6 (Monday = 0).")
        else:
            clean["weekdays"] = sorted(set(days))
    else:
        clean["weekdays"] = []

    if kind == ScheduleKind.CRON:
        try:
            clean["cron"] = timing.check_cron(clean.get("cron"))
        except ValueError as exc:
            bad("cron", str(exc))
    else:
        clean["cron"] = ""

    for name, choices in (
        ("misfire_policy", MisfirePolicy),
        ("overlap_policy", OverlapPolicy),
    ):
        if clean.get(name) not in choices.values:
            bad(name, f"Choose one of: {', '.join(choices.values)}.")
    for name in ("enabled", "dry_run"):
        if not isinstance(clean.get(name), bool):
            bad(name, "Must be true or false.")
    timeout = clean.get("timeout_seconds")
    if isinstance(timeout, str) and timeout.strip().isdigit():
        timeout = clean["timeout_seconds"] = int(timeout)
    if timeout is not None and not job_services.timeout_is_valid(timeout):
        bad("timeout_seconds", job_services.TIMEOUT_ERROR)
    if errors:
        raise ValidationError(errors)
    if clean.get("workflow") is not None:
        if denied is not None:
            raise denied
        return clean
    assert jt is not None
    if instance is None or any(clean[f] != getattr(instance, f) for f in JOB_FIELDS):
        permissions.require_create(user, jt, release=clean["release"], config=clean["config"])
    return clean


def _clean_workflow(
    clean: dict[str, Any],
    *,
    instance: Schedule | None,
    user: Any,
    bad: Callable[[str, str], None],
) -> PermissionDenied | None:
    """A schedule's workflow spec, checked as jobs.workflows will create it, in `clean`:
    its faults go to `bad("workflow", …)` (one message per bad node). The job type,
    config and release are emptied (the nodes name their own); a template, a dry run or
    a timeout of the schedule's own is refused. Returns the refusal (JobTypeDenied) when
    `user` may not run one of its types (checked when the workflow changes), to be
    raised once every field is checked."""
    if clean.get("template") is not None:
        bad("template", "A schedule fires a template or a workflow, not both.")
    if clean.get("dry_run"):
        bad("dry_run", "A schedule that fires a workflow cannot be a dry run.")
    if clean.get("timeout_seconds") is not None:
        bad("timeout_seconds", "Each job of a workflow names its own timeout_seconds.")
    clean.update(job_type="", config={}, release=None)
    stored = instance.workflow if instance is not None else None
    spec = clean["workflow"] = _unredact_workflow(clean["workflow"], stored)
    changed = instance is None or spec != stored
    try:
        workflows.validate_spec(spec, user if changed else None)
    except ValidationError as exc:
        errors = getattr(exc, "errors", None)  # BulkValidationError: by node
        if isinstance(errors, dict):
            for node, fields in errors.items():
                for field, messages in fields.items():
                    bad("workflow", f"{node}: {field}: {' '.join(messages)}")
        else:
            bad("workflow", one_line(exc))
    except PermissionDenied as exc:
        return exc
    return None


def _audited(name: str, values: dict[str, Any]) -> Any:
    """A changed field as the audit trail records it (a workflow's secrets masked too)."""
    if name == "workflow":
        return redacted_workflow(values[name])
    return job_services.audited_value(name, values)


def redacted_workflow(spec: Any) -> Any:
    """A workflow spec with each node's secret config fields masked (for display)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("jobs"), dict):
        return spec
    jobs = {}
    for name, node in spec["jobs"].items():
        if isinstance(node, dict) and isinstance(node.get("job_type"), str):
            node = {**node, "config": registry.redact(node["job_type"], node.get("config"))}
        jobs[name] = node
    return {**spec, "jobs": jobs}


def _unredact_workflow(spec: Any, stored: Any) -> Any:
    """`spec` (edited from a masked copy) with each node's masked secrets given back
    their stored values: a node of the same name and job type keeps its secret."""
    if not isinstance(spec, dict) or not isinstance(spec.get("jobs"), dict):
        return spec
    old = stored.get("jobs") if isinstance(stored, dict) else None
    if not isinstance(old, dict):
        return spec
    jobs = {}
    for name, node in spec["jobs"].items():
        before = old.get(name)
        if (
            isinstance(node, dict)
            and isinstance(before, dict)
            and isinstance(node.get("job_type"), str)
            and node.get("job_type") == before.get("job_type")
        ):
            node = {
                **node,
                "config": registry.unredact(
                    node["job_type"], node.get("config"), before.get("config")
                ),
            }
        jobs[name] = node
    return {**spec, "jobs": jobs}


def _next_from(schedule: Schedule, now: datetime) -> datetime:
    return timing.next_occurrence(timing.Spec.of(schedule), now)


def job_fields(schedule: Schedule) -> dict[str, Any]:
    """What the schedule's job is made of: its template as it reads now, if it uses one,
    else its own job type, config and release."""
    if schedule.template_id is not None and schedule.template is not None:
        return jobtemplates.template_job_fields(schedule.template)
    return {"job_type": schedule.job_type, "config": schedule.config, "release": schedule.release}


# --- writes ---------------------------------------------------------------------------


@transaction.atomic
def schedule_create(
    *, user=None, via: str = "system", now: datetime | None = None, **fields: Any
) -> Schedule:
    """Create a schedule; its first occurrence is computed from now."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown schedule fields: {', '.join(sorted(unknown))}")
    clean = schedule_clean({**schedule_values(None), **fields}, user=user)
    now = now or timezone.now()
    schedule = Schedule(
        **clean,
        created_by=user if user is not None and user.is_authenticated else None,
        created_at=now,
    )
    schedule.next_run_at = _next_from(schedule, now)
    schedule.save()
    job_services.audit(job=None, user=user, via=via, action=AuditAction.CREATED, target=schedule)
    return schedule


@transaction.atomic
def schedule_update(
    *,
    schedule: Schedule,
    user=None,
    via: str = "system",
    now: datetime | None = None,
    **fields: Any,
) -> Schedule:
    """Change some fields; next_run_at is recomputed from now when the timing changes."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown schedule fields: {', '.join(sorted(unknown))}")
    now = now or timezone.now()
    # Lock the row: a firing in progress finishes first (or sees our change and
    # loses its conditional UPDATE).
    locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
    before = schedule_values(locked)
    clean = schedule_clean({**before, **fields}, instance=locked, user=user)
    changed = [name for name in EDITABLE_FIELDS if clean[name] != before[name]]
    if changed:
        _audit_change(locked, before, clean, changed, user=user, via=via)
    for name in changed:
        setattr(locked, name, clean[name])
    timing_changed = any(name in TIMING_FIELDS for name in changed)
    enabling = "enabled" in changed and clean["enabled"]
    if timing_changed or enabling or locked.next_run_at is None:
        locked.next_run_at = _enabled_next(locked, now, enabling=enabling and not timing_changed)
        changed.append("next_run_at")
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
    return locked


def _enabled_next(schedule: Schedule, now: datetime, *, enabling: bool) -> datetime:
    """The next occurrence from now; when re-enabling with misfire run_once and an
    occurrence was missed while disabled, keep it so one catch-up run fires."""
    if (
        enabling
        and schedule.misfire_policy == MisfirePolicy.RUN_ONCE
        and schedule.next_run_at is not None
        and schedule.next_run_at <= now
    ):
        return schedule.next_run_at
    return _next_from(schedule, now)


def schedule_toggle(
    *,
    schedule: Schedule,
    enabled: bool | None = None,
    user=None,
    via: str = "system",
    now: datetime | None = None,
) -> Schedule:
    """Enable or disable (or flip, with enabled=None). Disabling stops firing at once."""
    if enabled is None:
        enabled = not Schedule.objects.values_list("enabled", flat=True).get(pk=schedule.pk)
    return schedule_update(schedule=schedule, user=user, via=via, now=now, enabled=enabled)


def _audit_change(
    schedule: Schedule,
    before: dict[str, Any],
    after: dict[str, Any],
    changed: list[str],
    *,
    user: Any,
    via: str,
) -> None:
    """Record a change of `schedule` (secret config values masked): enabled or
    disabled when that is all that changed."""
    if changed == ["enabled"]:
        action = AuditAction.ENABLED if after["enabled"] else AuditAction.DISABLED
        job_services.audit(job=None, user=user, via=via, action=action, target=schedule)
        return

    job_services.audit(
        job=None,
        user=user,
        via=via,
        action=AuditAction.CHANGED,
        target=schedule,
        detail={
            "changes": {
                name: {"old": _audited(name, before), "new": _audited(name, after)}
                for name in changed
            }
        },
    )


def fire_workflow(
    schedule: Schedule, *, user: Any, via: str, now: datetime
) -> tuple[Workflow, dict[str, int]]:
    """Create the schedule's workflow (jobs.workflows.workflow_create, all or nothing)
    and mark its jobs as the schedule's, so the overlap policy and the history count
    them like a job it fired; last_workflow is it, last_job null."""
    workflow, ids = workflows.workflow_create(
        spec=schedule.workflow, user=user, via=via, schedule=schedule, now=now
    )
    # One UPDATE in the creating transaction: no worker sees the jobs before it commits.
    Job.objects.filter(workflow=workflow).update(schedule=schedule)
    Schedule.objects.filter(pk=schedule.pk).update(
        last_job=None, last_workflow=workflow, last_run_at=now
    )
    schedule.last_job, schedule.last_workflow, schedule.last_run_at = None, workflow, now
    return workflow, ids


@transaction.atomic
def schedule_run_now(
    *, schedule: Schedule, user=None, via: str = "system", now: datetime | None = None
) -> Job | Workflow:
    """Create the schedule's job (or its workflow) immediately; next_run_at does not move.

    The job belongs to the person who asked (or the schedule's owner); a dry-run
    schedule makes a draft with its analysis.
    """
    now = now or timezone.now()
    owner = user if user is not None and user.is_authenticated else schedule.created_by
    if schedule.workflow is not None:
        workflow, ids = fire_workflow(schedule, user=owner, via=via, now=now)
        job_services.audit(
            job=None,
            user=user,
            via=via,
            action=AuditAction.RAN,
            target=schedule,
            detail={"schedule": schedule.pk, "workflow": workflow.pk},
        )
        logger.info(
            "schedule %s run now by %s via %s: workflow %s (%d jobs)",
            schedule.pk, owner, via, workflow.pk, len(ids),
        )  # fmt: skip
        return workflow
    job = job_services.job_create(
        **job_fields(schedule),
        user=owner,
        schedule=schedule,
        timeout_seconds=schedule.timeout_seconds,
        draft=schedule.dry_run,
        via=via,
        now=now,
    )
    Schedule.objects.filter(pk=schedule.pk).update(
        last_job=job, last_workflow=None, last_run_at=now
    )
    schedule.last_job, schedule.last_workflow, schedule.last_run_at = job, None, now
    job_services.audit(
        job=job,
        user=user,
        via=via,
        action=AuditAction.RAN,
        target=schedule,
        detail={"schedule": schedule.pk},
    )
    logger.info("schedule %s run now by %s via %s: job %s", schedule.pk, owner, via, job.pk)
    return job


@transaction.atomic
def schedule_delete(*, schedule: Schedule, user=None, via: str = "system") -> None:
    """Delete a schedule and its occurrence ledger; the jobs it created are kept."""
    job_services.audit(job=None, user=user, via=via, action=AuditAction.DELETED, target=schedule)
    Schedule.objects.filter(pk=schedule.pk).delete()


# --- firing -------------------------------------------------------------------------------


def fire_due_schedules(*, now: datetime | None = None) -> dict[str, Any]:
    """Fire every due occurrence of every enabled schedule exactly once.

    django-q2's scheduler calls this every minute on every cluster; concurrent
    calls are safe (see the module docstring). Returns counts (and which worker
    process made them) for django-q2's task result.
    """
    from jobs.runner import worker_name

    now = now or timezone.now()
    counts: dict[str, Any] = {
        "fired": 0, "skipped": 0, "missed": 0, "lost": 0, "duplicates": 0, "errors": 0,
        "refused": 0,
    }  # fmt: skip
    due = Schedule.objects.filter(enabled=True, next_run_at__lte=now).values_list("pk", flat=True)
    for pk in list(due):
        for _ in range(MAX_FIRINGS_PER_CALL):
            try:
                outcome = _fire_one(pk, now)
            except Exception:  # one broken schedule never stops the others
                logger.exception("firing schedule %s failed", pk)
                counts["errors"] += 1
                break
            if outcome is None:
                break
            for key in outcome:
                counts[key] += 1
            if "lost" in outcome:
                break
    counts["worker"] = worker_name()
    return counts


def _fire_one(pk: int, now: datetime) -> list[str] | None:
    """Fire the schedule's due occurrence, if any; returns what happened (None: nothing due)."""
    schedule = (
        Schedule.objects.select_related("release", "created_by", "template__release")
        .filter(pk=pk, enabled=True, next_run_at__lte=now)
        .first()
    )
    if schedule is None:
        return None
    fire_at = schedule.next_run_at
    if fire_at is None:  # excluded by next_run_at__lte: nothing is due
        return None
    spec = timing.Spec.of(schedule)
    outcome: list[str] = []
    if fire_at >= now - MISFIRE_GRACE:
        # On time: fire it and move to the following occurrence (which may also be
        # due already, e.g. a 1-minute interval after a late cycle; the loop fires it).
        fire = True
        following = timing.next_occurrence(spec, fire_at)
    else:
        # Missed (clusters were down): never a burst. skip → drop every missed
        # occurrence; run_once → one catch-up run now. Both jump to the future.
        fire = schedule.misfire_policy == MisfirePolicy.RUN_ONCE
        following = timing.next_occurrence(spec, now)
        outcome.append("missed")
    try:
        with transaction.atomic():
            try:
                # The ledger row: UNIQUE(schedule, fire_at). A second cluster's INSERT
                # waits for the first's transaction and then fails here.
                with transaction.atomic():
                    occurrence = Occurrence.objects.create(
                        schedule=schedule, fire_at=fire_at, fired_at=now
                    )
            except IntegrityError:
                occurrence = None  # fired already; still make sure next_run_at moves on
            # Conditional advance: loses if another cluster advanced it or a person
            # disabled or re-timed the schedule since we read it.
            if not Schedule.objects.filter(pk=pk, enabled=True, next_run_at=fire_at).update(
                next_run_at=following
            ):
                raise _LostRace
            if occurrence is None:
                return [*outcome, "duplicates"]
            if not fire:
                occurrence.skipped_reason = "missed (misfire policy: skip)"
                occurrence.save(update_fields=["skipped_reason"])
                return outcome
            # A workflow's jobs carry the schedule too (fire_workflow): one query for both.
            active = (
                Job.objects.filter(schedule_id=pk, status__in=ACTIVE_STATUSES)
                .order_by("-id")
                .values_list("pk", "workflow_id")
                .first()
            )
            if active is not None and schedule.overlap_policy == OverlapPolicy.SKIP:
                job_id, workflow_id = active
                occurrence.skipped_reason = (
                    f"overlap: workflow #{workflow_id} still running (job #{job_id})"
                    if workflow_id is not None
                    else f"overlap: job #{job_id} still active"
                )
                occurrence.save(update_fields=["skipped_reason"])
                return [*outcome, "skipped"]
            try:
                with transaction.atomic():
                    if schedule.workflow is not None:
                        workflow, _ = fire_workflow(
                            schedule, user=schedule.created_by, via="schedule", now=now
                        )
                        occurrence.workflow = workflow
                        occurrence.save(update_fields=["workflow"])
                        return [*outcome, "fired"]
                    job = job_services.job_create(
                        **job_fields(schedule),
                        user=schedule.created_by,
                        schedule=schedule,
                        timeout_seconds=schedule.timeout_seconds,
                        draft=schedule.dry_run,
                        via="schedule",
                        now=now,
                    )
            except ValidationError as exc:
                # The schedule no longer makes a valid job (e.g. its job type was
                # removed): record why and move on rather than retry every minute.
                occurrence.skipped_reason = f"error: {one_line(exc)}"[:200]
                occurrence.save(update_fields=["skipped_reason"])
                logger.warning("schedule %s could not create its job: %s", pk, exc)
                return [*outcome, "errors"]
            except PermissionDenied as exc:
                # Its owner no longer holds the right to run this job type
                # (jobs.permissions, checked by job_create): skip, saying why.
                owner = schedule.created_by.username if schedule.created_by else "nobody"
                occurrence.skipped_reason = f"refused: {owner}: {exc}"[:200]
                occurrence.save(update_fields=["skipped_reason"])
                logger.warning("schedule %s refused for its owner %s: %s", pk, owner, exc)
                return [*outcome, "refused"]
            occurrence.job = job
            occurrence.save(update_fields=["job"])
            Schedule.objects.filter(pk=pk).update(last_job=job, last_workflow=None, last_run_at=now)
            return [*outcome, "fired"]
    except _LostRace:
        return [*outcome, "lost"]
