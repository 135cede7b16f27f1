"""Notification rules and their deliveries: the one place for their rules.

The admin, the API and the periodic check call these functions. An event (a job
that finished, a queue that stalled) becomes one Delivery row per matching rule and
a notify.email / notify.webhook job that sends it; UNIQUE(rule, event_key) makes the
database refuse a second delivery of one event, whichever cluster or process tries.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from jobs import permissions as job_permissions
from jobs import queues, registry
from jobs import services as job_services
from jobs.models import FINISHED_STATUSES, AuditAction, Job, JobStatus

from . import permissions, senders
from .models import JOB_EVENTS, Channel, Delivery, Event, NotificationRule

logger = logging.getLogger(__name__)

# The jobs that send notifications raise no job events themselves (no loops).
NOTIFY_PREFIX = "notify."
RELEASE_APPLY = "release.apply"
ERROR_MAX = 2000
# The catch-up leaves the newest jobs to the finishing process's own hook.
CATCH_UP_SETTLE = timedelta(seconds=10)
CATCH_UP_BATCH = 500

RULE_FIELDS = (
    "name",
    "event",
    "channel",
    "url",
    "secret",
    "emails",
    "email_job_owner",
    "job_type",
    "queue",
    "schedule",
    "release",
    "stalled_minutes",
    "enabled",
)


# --- rules -----------------------------------------------------------------------------


def rule_values(rule: NotificationRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in RULE_FIELDS}


def rule_clean(values: dict[str, Any], *, instance: NotificationRule | None = None) -> dict:
    """The rule's fields checked together; ValidationError naming each bad field."""
    errors: dict[str, list[str]] = {}

    def bad(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    name = str(values.get("name") or "").strip()
    values["name"] = name
    if not name:
        bad("name", "A name is required.")
    elif len(name) > 200:
        bad("name", "At most 200 characters.")
    elif NotificationRule.objects.filter(name=name).exclude(
        pk__in=[instance.pk] if instance is not None else []
    ):
        bad("name", f"A notification rule named {name!r} already exists.")
    event, channel = values.get("event"), values.get("channel")
    if event not in JOB_EVENTS and event != Event.QUEUE_STALLED:
        events = ", ".join(sorted([*JOB_EVENTS, Event.QUEUE_STALLED]))
        bad("event", f"Unknown event {event!r}; one of: {events}.")
    if channel not in Channel.values:
        bad("channel", f"Unknown channel {channel!r}; one of: {', '.join(Channel.values)}.")
    url = str(values.get("url") or "").strip()
    values["url"] = url
    emails = values.get("emails") or []
    if isinstance(emails, str):
        emails = [e.strip() for e in emails.replace(";", ",").split(",") if e.strip()]
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        bad("emails", "A list of email addresses.")
        emails = []
    values["emails"] = emails
    values["secret"] = str(values.get("secret") or "")
    if len(values["secret"]) > 200:
        bad("secret", "At most 200 characters.")
    if channel == Channel.WEBHOOK:
        if not url:
            bad("url", "A webhook needs a URL.")
        else:
            try:
                URLValidator(schemes=["http", "https"])(url)
            except ValidationError:
                bad("url", "An http:// or https:// URL.")
            else:
                if len(url) > 1000:
                    bad("url", "At most 1000 characters.")
                elif not senders.host_allowed(url):
                    bad(
                        "url",
                        "Its host is not in JOBDECK_WEBHOOK_ALLOWED_HOSTS "
                        f"({', '.join(settings.JOBDECK_WEBHOOK_ALLOWED_HOSTS) or 'empty'}).",
                    )
        if emails:
            bad("emails", "A webhook rule sends no email.")
    elif channel == Channel.EMAIL:
        if url:
            bad("url", "An email rule calls no URL.")
        for address in emails:
            try:
                EmailValidator()(address)
            except ValidationError:
                bad("emails", f"{address!r} is not an email address.")
        if not emails and not values.get("email_job_owner"):
            bad("emails", "Give addresses, or mail the job's owner (email_job_owner).")
    job_type = str(values.get("job_type") or "")
    values["job_type"] = job_type
    if job_type:
        try:
            registry.get(job_type)
        except ValidationError:
            bad("job_type", f"Unknown job type {job_type!r}.")
    queue = str(values.get("queue") or "")
    values["queue"] = queue
    if queue and queue not in queues.known_queues():
        bad("queue", f"Unknown queue {queue!r}; known: {', '.join(sorted(queues.known_queues()))}.")
    minutes = values.get("stalled_minutes")
    if event == Event.QUEUE_STALLED:
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 10_080:
            bad("stalled_minutes", "queue.stalled needs stalled_minutes, from 1 to 10080.")
        for scope in ("schedule", "release"):
            if values.get(scope) is not None:
                bad(scope, f"queue.stalled is about a queue, not a {scope}.")
    elif minutes is not None:
        bad("stalled_minutes", "Only queue.stalled rules take stalled_minutes.")
    if event == Event.SCHEDULE_FAILED and values.get("release") is not None:
        bad("release", "schedule.failed is about schedules; scope it with `schedule`.")
    if event in (Event.RELEASE_APPLIED, Event.RELEASE_ROLLED_BACK):
        if values.get("schedule") is not None:
            bad("schedule", f"{event} is about releases; scope it with `release`.")
        if job_type and job_type != RELEASE_APPLY:
            bad("job_type", f"{event} is raised by {RELEASE_APPLY} jobs only.")
    values["enabled"] = bool(values.get("enabled", True))
    values["email_job_owner"] = bool(values.get("email_job_owner", False))
    if errors:
        raise ValidationError(errors)
    return values


def _audit(rule: NotificationRule, user: Any, via: str, action: str, detail: dict) -> None:
    job_services.audit(job=None, user=user, via=via, action=action, detail=detail, target=rule)


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    """A rule's values for the audit trail: the secret never, foreign keys by id."""
    shown = {}
    for key, value in values.items():
        if key == "secret":
            value = registry.MASK if value else ""
        elif hasattr(value, "pk"):
            value = value.pk
        shown[key] = value
    return shown


@transaction.atomic
def rule_create(*, user: Any = None, via: str = "system", **fields: Any) -> NotificationRule:
    """A new rule owned by `user` (None: Jobdeck itself, which sees everything)."""
    if user is not None and not permissions.may_create(user):
        raise PermissionDenied("you may not create notification rules")
    values = rule_clean({**{"enabled": True}, **fields})
    now = timezone.now()
    owner = user if user is not None and user.is_authenticated else None
    rule = NotificationRule.objects.create(
        **values, created_by=owner, created_at=now, updated_at=now
    )
    _audit(rule, user, via, AuditAction.CREATED, {"rule": _shown(values)})
    transaction.on_commit(rules_changed)
    return rule


@transaction.atomic
def rule_update(
    *, rule: NotificationRule, user: Any = None, via: str = "system", **fields: Any
) -> NotificationRule:
    """Change some of a rule's fields; an empty or missing secret keeps the stored one."""
    if user is not None and not permissions.may_manage(user, rule):
        raise PermissionDenied("you may not change this notification rule")
    before = rule_values(rule)
    if not fields.get("secret") and fields.get("channel", rule.channel) == Channel.WEBHOOK:
        fields.pop("secret", None)
    values = rule_clean({**before, **fields}, instance=rule)
    changed = {k: v for k, v in values.items() if before.get(k) != v}
    if changed:
        for key, value in changed.items():
            setattr(rule, key, value)
        rule.updated_at = timezone.now()
        rule.save(update_fields=[*changed, "updated_at"])
        old = _shown({k: before[k] for k in changed})
        new = _shown(changed)
        diff = {k: {"old": old[k], "new": new[k]} for k in changed}
        _audit(rule, user, via, AuditAction.CHANGED, {"changes": diff})
    transaction.on_commit(rules_changed)
    return rule


@transaction.atomic
def rule_delete(*, rule: NotificationRule, user: Any = None, via: str = "system") -> None:
    if user is not None and not permissions.may_manage(user, rule):
        raise PermissionDenied("you may not delete this notification rule")
    _audit(rule, user, via, AuditAction.DELETED, {"rule": _shown(rule_values(rule))})
    rule.delete()
    transaction.on_commit(rules_changed)


def rule_test(*, rule: NotificationRule, user: Any = None, via: str = "system") -> Delivery:
    """Send a test notification through the rule now (its own event key: never deduped)."""
    if user is not None and not permissions.may_manage(user, rule):
        raise PermissionDenied("you may not test this notification rule")
    payload: dict[str, Any] = {
        "test": True,
        "about": f"a test of rule {rule.name!r} sent by "
        f"{getattr(user, 'username', None) or 'Jobdeck'} via {via}",
    }
    if rule.channel == Channel.EMAIL:
        owner = getattr(user, "email", "") if rule.email_job_owner else ""
        payload["recipients"] = _unique([*rule.emails, *([owner] if owner else [])])
    delivery = record(rule, Event.TEST, f"test:{uuid.uuid4()}", payload)
    assert delivery is not None  # a fresh key cannot collide
    return delivery


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


# --- deliveries ---------------------------------------------------------------------


def record(
    rule: NotificationRule,
    event: str,
    event_key: str,
    payload: dict[str, Any],
    *,
    source_job: Job | None = None,
) -> Delivery | None:
    """Record the delivery of `event_key` by `rule` and create the job that sends it, in
    one transaction; None when that event was already delivered (by any process)."""
    delivery_id = uuid.uuid4()
    body = {
        "event": event,
        "delivery_id": str(delivery_id),
        "rule": {"id": rule.pk, "name": rule.name},
        "occurred_at": timezone.now().isoformat(),
        **payload,
    }
    try:
        with transaction.atomic():
            delivery = Delivery.objects.create(
                rule=rule,
                event=event,
                event_key=event_key[:255],
                channel=rule.channel,
                delivery_id=delivery_id,
                source_job=source_job,
                payload=body,
            )
            job = job_services.job_create(
                job_type=f"{NOTIFY_PREFIX}{rule.channel}",
                config={"delivery": delivery.pk},
                allow_internal=True,
                max_attempts=settings.JOBDECK_NOTIFY_MAX_ATTEMPTS,
                priority=settings.JOBDECK_NOTIFY_PRIORITY,
                via="notification",
            )
            Delivery.objects.filter(pk=delivery.pk).update(job=job)
            delivery.job = job
    except IntegrityError:
        # UNIQUE(rule, event_key): another process (cluster) recorded this event first.
        return None
    return delivery


def job_events(job: Job) -> set[str]:
    """The events a job that just finished raises."""
    if job.job_type.startswith(NOTIFY_PREFIX) or job.status not in FINISHED_STATUSES:
        return set()
    events = {Event.JOB_FINISHED.value}
    if job.status == JobStatus.FAILED:
        events.add(Event.JOB_FAILED)
        if job.schedule_id is not None:
            events.add(Event.SCHEDULE_FAILED)
    elif job.status == JobStatus.COMPLETED:
        events.add(Event.JOB_SUCCEEDED)
        if job.job_type == RELEASE_APPLY:
            rollback = isinstance(job.config, dict) and job.config.get("rollback_of")
            events.add(Event.RELEASE_ROLLED_BACK if rollback else Event.RELEASE_APPLIED)
    return events


def rule_matches(rule: NotificationRule, job: Job) -> bool:
    """Is `job` inside the rule's scope, and may the rule's owner see it?"""
    if rule.job_type and job.job_type != rule.job_type:
        return False
    if rule.queue and job.queue != rule.queue:
        return False
    if rule.schedule_id is not None and job.schedule_id != rule.schedule_id:
        return False
    if rule.release_id is not None and job.release_id != rule.release_id:
        return False
    if job.finished_at is not None and job.finished_at < rule.created_at:
        return False  # before the rule existed (the catch-up reads that far back)
    owner = rule.created_by
    if owner is None:
        return True  # Jobdeck's own rule (made without a user): everything
    return owner.is_active and job_permissions.may_see(owner, job)


def job_event_key(job: Job) -> str:
    """One finish of one job: a retried job that fails again is a new event."""
    when = job.finished_at.isoformat() if job.finished_at else f"attempt-{job.attempts}"
    return f"job:{job.pk}@{when}"


def job_payload(job: Job) -> dict[str, Any]:
    """What a delivery says about `job`: never a secret config value, in any form."""
    owner = job.created_by
    data = {
        "id": job.pk,
        "job_type": job.job_type,
        "status": job.status,
        "queue": job.queue,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "config": registry.redact(job.job_type, job.config),
        "error": job.error[:ERROR_MAX],
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "duration_seconds": job.duration_seconds,
        "schedule_id": job.schedule_id,
        "release_id": job.release_id,
        "owner": owner.get_username() if owner is not None else None,
        "admin_path": f"/admin/jobs/job/{job.pk}/change/",
    }
    return registry.mask_value(data, registry.secret_values(job.job_type, job.config))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _recipients(rule: NotificationRule, job: Job | None) -> list[str]:
    owner = job.created_by if job is not None else None
    extra = [owner.email] if rule.email_job_owner and owner is not None and owner.email else []
    return _unique([*rule.emails, *extra])


def deliver_job(job: Job, rules: Sequence[NotificationRule]) -> list[Delivery]:
    """The deliveries of finished `job` for each of `rules` it matches (each once)."""
    events = job_events(job)
    if not events:
        return []
    made = []
    for rule in rules:
        if rule.event not in events or not rule_matches(rule, job):
            continue
        payload: dict[str, Any] = {"job": job_payload(job)}
        if rule.channel == Channel.EMAIL:
            payload["recipients"] = _recipients(rule, job)
        delivery = record(rule, rule.event, job_event_key(job), payload, source_job=job)
        if delivery is not None:
            made.append(delivery)
    return made


# The enabled job-event rules, kept per process for JOBDECK_NOTIFY_RULES_CACHE_SECONDS:
# a finishing job then costs no query unless some rule may match it. A rule saved in
# another process is seen once this expires (the periodic catch-up covers the gap).
_cache: dict[str, Any] = {"at": None, "rules": []}


def rules_changed() -> None:
    _cache["at"] = None


def job_rules() -> list[NotificationRule]:
    ttl = settings.JOBDECK_NOTIFY_RULES_CACHE_SECONDS
    now = time.monotonic()
    if _cache["at"] is None or now - _cache["at"] >= ttl:
        _cache["rules"] = list(
            NotificationRule.objects.filter(enabled=True, event__in=JOB_EVENTS).select_related(
                "created_by"
            )
        )
        _cache["at"] = now
    return _cache["rules"]


def jobs_finished(job_ids: Sequence[int]) -> None:
    """The engine's job-finished hook (jobs.extensions), after the commit."""
    rules = job_rules()
    if not rules:
        return
    for job in Job.objects.filter(pk__in=list(job_ids)).select_related("created_by"):
        deliver_job(job, rules)


# --- periodic: stalled queues, and the catch-up ------------------------------------------


def _pending_visible(rule: NotificationRule) -> QuerySet[Job]:
    jobs = Job.objects.filter(status=JobStatus.PENDING)
    if rule.created_by is not None:
        jobs = job_permissions.visible_jobs(jobs, rule.created_by)
    if rule.job_type:
        jobs = jobs.filter(job_type=rule.job_type)
    return jobs


def check_stalled_queues(*, now: datetime | None = None) -> int:
    """queue.stalled: for each rule, each queue whose oldest due pending job (that the
    owner may see) waited longer than `stalled_minutes`; one delivery per queue and
    oldest job, so a queue that stays stuck is announced once."""
    now = now or timezone.now()
    made = 0
    rules = NotificationRule.objects.filter(enabled=True, event=Event.QUEUE_STALLED).select_related(
        "created_by"
    )
    for rule in rules:
        if rule.created_by is not None and not rule.created_by.is_active:
            continue
        limit = timedelta(minutes=rule.stalled_minutes or 0)
        for queue in [rule.queue] if rule.queue else sorted(queues.known_queues()):
            oldest = (
                _pending_visible(rule)
                .filter(queue=queue)
                .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
                .order_by("id")
                .values("pk", "queued_at", "run_after", "created_at")
                .first()
            )
            if oldest is None:
                continue
            since = max(
                t for t in (oldest["queued_at"] or oldest["created_at"], oldest["run_after"]) if t
            )
            waited = now - since
            if waited <= limit:
                continue
            payload: dict[str, Any] = {
                "queue": {
                    "name": queue,
                    "oldest_job_id": oldest["pk"],
                    "waiting_seconds": round(waited.total_seconds(), 1),
                    "stalled_minutes": rule.stalled_minutes,
                }
            }
            if rule.channel == Channel.EMAIL:
                payload["recipients"] = _recipients(rule, None)
            if record(rule, Event.QUEUE_STALLED, f"queue:{queue}@{oldest['pk']}", payload):
                made += 1
    return made


_EVENT_STATUSES = {
    Event.JOB_FAILED: [JobStatus.FAILED],
    Event.SCHEDULE_FAILED: [JobStatus.FAILED],
    Event.JOB_SUCCEEDED: [JobStatus.COMPLETED],
    Event.RELEASE_APPLIED: [JobStatus.COMPLETED],
    Event.RELEASE_ROLLED_BACK: [JobStatus.COMPLETED],
    Event.JOB_FINISHED: list(FINISHED_STATUSES),
}


def catch_up(*, now: datetime | None = None) -> int:
    """Deliveries the finishing process did not record (it died between the commit and
    its hook, or its rule cache was stale): jobs finished in the last
    JOBDECK_NOTIFY_CATCHUP_MINUTES that match a rule and have no delivery of it since
    they finished. The unique key keeps this from ever sending one twice."""
    now = now or timezone.now()
    since = now - timedelta(minutes=settings.JOBDECK_NOTIFY_CATCHUP_MINUTES)
    made = 0
    rules = NotificationRule.objects.filter(enabled=True, event__in=JOB_EVENTS).select_related(
        "created_by"
    )
    for rule in rules:
        jobs = Job.objects.filter(
            status__in=_EVENT_STATUSES[Event(rule.event)],
            finished_at__gte=max(since, rule.created_at),
            finished_at__lte=now - CATCH_UP_SETTLE,
        ).exclude(job_type__startswith=NOTIFY_PREFIX)
        if rule.created_by is not None:
            jobs = job_permissions.visible_jobs(jobs, rule.created_by)
        for name in ("job_type", "queue"):
            if getattr(rule, name):
                jobs = jobs.filter(**{name: getattr(rule, name)})
        if rule.schedule_id is not None:
            jobs = jobs.filter(schedule_id=rule.schedule_id)
        if rule.event == Event.SCHEDULE_FAILED:
            jobs = jobs.filter(schedule__isnull=False)
        if rule.release_id is not None:
            jobs = jobs.filter(release_id=rule.release_id)
        if rule.event in (Event.RELEASE_APPLIED, Event.RELEASE_ROLLED_BACK):
            jobs = jobs.filter(job_type=RELEASE_APPLY)
        delivered = Delivery.objects.filter(
            rule=rule, source_job=OuterRef("pk"), created_at__gte=OuterRef("finished_at")
        )
        missing = jobs.filter(~Exists(delivered)).select_related("created_by").order_by("id")
        for job in missing[:CATCH_UP_BATCH]:
            made += len(deliver_job(job, [rule]))
    return made


def periodic_check() -> dict[str, int]:
    """The django-q2 schedule "jobdeck.notifications" (every minute, any one cluster)."""
    return {"stalled": check_stalled_queues(), "caught_up": catch_up()}
