"""Flow control, write side: an operator pauses, resumes or limits a queue or a job
type. Every door (API, admin, CLI) calls these; each change is recorded in the audit
trail with who, when and through which door, and wakes the workers it may free."""

from __future__ import annotations

import functools
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from . import broker, flow, permissions, queues, registry
from .models import AuditAction, AuditEvent, FlowScope, FlowSetting, Job, JobStatus

# The fields an operator may set, with their bounds (None: back to the code default).
EDITABLE: dict[str, tuple[int, int]] = {
    "concurrency_limit": (1, flow.MAX_LIMIT),
    "rate_limit": (1, flow.MAX_LIMIT),
    "rate_period_seconds": (1, flow.MAX_PERIOD),
    "timeout_seconds": (1, flow.MAX_PERIOD),
}


def check_name(scope: str, name: Any) -> str:
    """`name` if it names a queue (a known one, or one that has jobs) or a registered
    job type; ValidationError otherwise."""
    if not isinstance(name, str) or not name or len(name) > 100 or "\x00" in name:
        raise ValidationError({"name": [f"Not a {scope} name: {name!r}."]})
    if scope == FlowScope.TYPE:
        registry.get(name)  # ValidationError naming the field
        return name
    if (
        name in queues.known_queues()
        or FlowSetting.objects.filter(scope=FlowScope.QUEUE, name=name).exists()
    ):
        return name
    if Job.objects.filter(queue=name, status__in=[JobStatus.PENDING, JobStatus.RUNNING]).exists():
        return name
    known = ", ".join(sorted(queues.known_queues()))
    raise ValidationError({"name": [f"Unknown queue {name!r}; known: {known}."]})


def _validated(scope: str, changes: dict[str, Any]) -> dict[str, Any]:
    allowed = {"paused", *EDITABLE} - ({"timeout_seconds"} if scope == FlowScope.QUEUE else set())
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in allowed:
            errors[key] = [f"Unknown field; a {scope} takes: {', '.join(sorted(allowed))}."]
        elif key == "paused":
            if not isinstance(value, bool):
                errors[key] = ["Must be true or false."]
            else:
                clean[key] = value
        elif value is None:
            clean[key] = None
        else:
            low, high = EDITABLE[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                errors[key] = [f"Must be an integer from {low} to {high}, or null for the default."]
            else:
                clean[key] = value
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def update(
    *, scope: str, name: str, changes: dict[str, Any], user: Any = None, via: str = "system"
) -> FlowSetting:
    """Set `changes` (paused, limits; None for a limit: back to the code's) on queue or
    job type `name`, under the setting's row lock. Records what changed (old and new)
    in the audit trail; a change that changes nothing records nothing."""
    if not permissions.may_manage_queues(user):
        raise PermissionDenied("You may not pause, resume or limit queues and job types.")
    if scope not in FlowScope.values:
        raise ValidationError({"scope": [f"Unknown scope {scope!r}: queue or type."]})
    name = check_name(scope, name)
    clean = _validated(scope, changes)
    FlowSetting.objects.get_or_create(scope=scope, name=name)
    row = FlowSetting.objects.select_for_update().get(scope=scope, name=name)
    diff = {k: {"old": getattr(row, k), "new": v} for k, v in clean.items() if getattr(row, k) != v}
    if not diff:
        return row
    for key, value in clean.items():
        setattr(row, key, value)
    actor = user if user is not None and user.is_authenticated else None
    row.updated_at = timezone.now()
    row.updated_by = actor
    row.save()
    flow.forget_timeouts()  # this process reads them again at its next creation
    if set(diff) == {"paused"}:
        action = AuditAction.PAUSED if clean["paused"] else AuditAction.RESUMED
    else:
        action = AuditAction.CHANGED
    AuditEvent.objects.create(
        actor=actor,
        via=via,
        action=action,
        detail=diff,
        target_type=f"jobs.{'queue' if scope == FlowScope.QUEUE else 'jobtype'}",
        target_id=name,
        target_repr=f"{'queue' if scope == FlowScope.QUEUE else 'job type'} {name}",
    )
    if not row.paused:
        _wake(scope, name)
    return row


def pause(*, scope: str, name: str, user: Any = None, via: str = "system") -> FlowSetting:
    return update(scope=scope, name=name, changes={"paused": True}, user=user, via=via)


def resume(*, scope: str, name: str, user: Any = None, via: str = "system") -> FlowSetting:
    return update(scope=scope, name=name, changes={"paused": False}, user=user, via=via)


def _wake(scope: str, name: str) -> None:
    """After a resume or a raised limit: wake the workers of each queue with pending
    jobs it concerns (they drain what is now runnable)."""
    pending = Job.objects.filter(status=JobStatus.PENDING)
    pending = (
        pending.filter(queue=name) if scope == FlowScope.QUEUE else pending.filter(job_type=name)
    )
    waiting = list(pending.values_list("queue", flat=True).distinct().order_by())
    for queue in waiting:
        # After the commit, as many as the queue's runnable jobs and idle workers call for.
        transaction.on_commit(
            functools.partial(broker.wake_for_backlog, queue, None, at_least=1), robust=True
        )
