"""Notification rules (when, for what, to whom) and their deliveries (the once-only ledger)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Event(models.TextChoices):
    JOB_FAILED = "job.failed", "a job failed"
    JOB_SUCCEEDED = "job.succeeded", "a job succeeded"
    JOB_FINISHED = "job.finished", "a job finished (completed, failed or cancelled)"
    SCHEDULE_FAILED = "schedule.failed", "a schedule's job failed"
    RELEASE_APPLIED = "release.applied", "a release version was applied"
    RELEASE_ROLLED_BACK = "release.rolled_back", "a release was rolled back"
    QUEUE_STALLED = "queue.stalled", "a queue's oldest pending job waited too long"
    TEST = "test", "a test sent by hand"  # deliveries only; no rule has it


RULE_EVENTS = [(value, label) for value, label in Event.choices if value != Event.TEST]
# The events a finished job raises (queue.stalled comes from the periodic check).
JOB_EVENTS = frozenset(
    {
        Event.JOB_FAILED,
        Event.JOB_SUCCEEDED,
        Event.JOB_FINISHED,
        Event.SCHEDULE_FAILED,
        Event.RELEASE_APPLIED,
        Event.RELEASE_ROLLED_BACK,
    }
)


class Channel(models.TextChoices):
    EMAIL = "email"  # Django's email backend, to addresses and/or the job's owner
    WEBHOOK = "webhook"  # an HTTP POST of a JSON payload, signed with HMAC-SHA256


def _max_length(choices: type[models.TextChoices]) -> int:
    return max(len(value) for value in choices.values)


class NotificationRule(models.Model):
    """When (`event`), for what (the scope fields; empty = everything the owner may see)
    and to whom (`channel`: emails or a webhook URL). Written through
    notifications.services, which validates it (allow-listed hosts, scope)."""

    name = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=_max_length(Event), choices=RULE_EVENTS)
    channel = models.CharField(max_length=_max_length(Channel), choices=Channel.choices)
    # webhook
    url = models.URLField(max_length=1000, blank=True)
    # The HMAC-SHA256 key of the webhook's signature: never shown, never in a payload.
    secret = models.CharField(max_length=200, blank=True)
    # email
    emails = models.JSONField(default=list, blank=True)
    email_job_owner = models.BooleanField(
        default=False, help_text="Also mail the owner of the job the event is about."
    )
    # scope: each one set narrows the rule; none set = everything the owner may see
    job_type = models.CharField(max_length=100, blank=True)
    queue = models.CharField(max_length=100, blank=True)
    schedule = models.ForeignKey(
        "scheduler.Schedule",
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,  # a rule about a schedule goes with it, never widens
        related_name="+",
    )
    release = models.ForeignKey(
        "releases.Release",
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,
        related_name="+",
    )
    # queue.stalled: the oldest pending (due) job waited longer than this.
    stalled_minutes = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    # The owner: the rule sees what they may see (jobs.permissions.visible_jobs).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,  # never an ownerless rule that would see everything
        related_name="notification_rules",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("manage_all_rules", "Can see and change every user's notification rules"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(event__in=[v for v, _ in RULE_EVENTS]), name="rule_event_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=Channel.values), name="rule_channel_valid"
            ),
        ]
        indexes = [models.Index(fields=["event", "enabled"], name="rule_event_idx")]

    def __str__(self) -> str:
        return self.name


class Delivery(models.Model):
    """One notification of one event by one rule, sent by a notify.* job.

    UNIQUE(rule, event_key) is what makes "never twice for one event" hold across
    clusters: whichever process records the delivery first wins, the others' INSERT
    fails and they send nothing. The job retries the sending, never re-records it.
    """

    rule = models.ForeignKey(NotificationRule, on_delete=models.DB_CASCADE, related_name="+")
    event = models.CharField(max_length=_max_length(Event), choices=Event.choices)
    # What happened, once: "job:<id>@<finished at>", "queue:<name>@<job id>", "test:<uuid>".
    event_key = models.CharField(max_length=255)
    channel = models.CharField(max_length=_max_length(Channel), choices=Channel.choices)
    # The X-Jobdeck-Delivery header: the same on every retry, so receivers can dedupe.
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The job the event is about (none for a stalled queue or a test).
    source_job = models.ForeignKey(
        "jobs.Job",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The notify.email / notify.webhook job sending it (retries, log, admin).
    job = models.ForeignKey(
        "jobs.Job",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["rule", "event_key"], name="delivery_once_per_event"),
        ]
        indexes = [
            models.Index(fields=["rule", "-id"], name="delivery_rule_id_idx"),
            models.Index(fields=["source_job"], name="delivery_source_job_idx"),
            models.Index(fields=["job"], name="delivery_job_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.rule_id} ({self.delivery_id})"
