"""Schedules and the occurrences they fired (the exactly-once ledger)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone as dj_timezone


class ScheduleKind(models.TextChoices):
    INTERVAL = "interval"  # every `interval_minutes`
    DAILY = "daily"  # every day at `time`
    WEEKLY = "weekly"  # on `weekdays` at `time`
    CRON = "cron"  # a cron expression


class MisfirePolicy(models.TextChoices):
    SKIP = "skip"  # occurrences missed during an outage are dropped
    RUN_ONCE = "run_once"  # missed occurrences collapse into one catch-up run


class OverlapPolicy(models.TextChoices):
    SKIP = "skip"  # do not fire while the previous run is still active
    QUEUE = "queue"  # fire anyway; the new job waits its turn


class Schedule(models.Model):
    """Recurring work: what to run (job type, config, release; a template; or a
    workflow) and when (kind, timezone).

    Written only through scheduler.services, which validates the timing and keeps
    `next_run_at` computed; fired by scheduler.services.fire_due_schedules.
    """

    name = models.CharField(max_length=200, unique=True)
    job_type = models.CharField(max_length=100)
    config = models.JSONField(default=dict, blank=True)
    release = models.ForeignKey(
        "releases.Release",
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,
        related_name="schedules",
    )
    # A schedule may fire a job template: each occurrence then makes the template's job
    # as it reads at that moment. job_type, config and release keep a copy of the
    # template's (synced when it changes), for lists and filters. A template in use
    # cannot be deleted (jobs.jobtemplates.template_delete names the schedules).
    template = models.ForeignKey(
        "jobs.JobTemplate",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="schedules",
    )
    # A schedule may fire a workflow instead (jobs.workflows): each occurrence creates
    # the graph this spec describes, {"name": …, "jobs": {"<node>": {<job spec>,
    # "after": [...]}}}, validated when the schedule is saved and again when it fires.
    # job_type, config, release and template are then empty (the nodes name their own).
    workflow = models.JSONField(
        null=True,
        blank=True,
        help_text='A workflow to fire instead of one job: {"name": …, "jobs": {"<node>": '
        '{"job_type": …, "config": {…}, "after": ["<node>", …]}}} (docs/workflows.md).',
    )
    kind = models.CharField(max_length=10, choices=ScheduleKind.choices)
    interval_minutes = models.PositiveIntegerField(null=True, blank=True)
    time = models.TimeField(null=True, blank=True)
    weekdays = models.JSONField(default=list, blank=True)  # 0-6, Monday = 0
    cron = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    # What its last run made: a job (last_job) or a workflow (last_workflow), the other
    # null.
    last_workflow = models.ForeignKey(
        "jobs.Workflow", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    misfire_policy = models.CharField(
        max_length=10, choices=MisfirePolicy.choices, default=MisfirePolicy.SKIP
    )
    overlap_policy = models.CharField(
        max_length=10, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    dry_run = models.BooleanField(default=False)
    # The timeout_seconds of the jobs it makes (null: their job type's default).
    timeout_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds each run may take before it is interrupted and fails "
        "(blank: the job type's default).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DB_SET_NULL
    )
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ScheduleKind.values), name="schedule_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(misfire_policy__in=MisfirePolicy.values),
                name="schedule_misfire_policy_valid",
            ),
            models.CheckConstraint(
                condition=Q(overlap_policy__in=OverlapPolicy.values),
                name="schedule_overlap_policy_valid",
            ),
            models.CheckConstraint(
                condition=Q(interval_minutes__isnull=True) | Q(interval_minutes__gte=1),
                name="schedule_interval_positive",
            ),
            models.CheckConstraint(
                condition=Q(timeout_seconds__isnull=True) | Q(timeout_seconds__gte=1),
                name="schedule_timeout_positive",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_run_at"], condition=Q(enabled=True), name="schedule_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Occurrence(models.Model):
    """One firing of a schedule; UNIQUE(schedule, fire_at) makes it happen once."""

    schedule = models.ForeignKey(Schedule, on_delete=models.DB_CASCADE, related_name="occurrences")
    fire_at = models.DateTimeField()
    fired_at = models.DateTimeField(default=dj_timezone.now)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    # A workflow schedule's occurrence made this workflow (and no job of its own).
    workflow = models.ForeignKey(
        "jobs.Workflow", null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="+"
    )
    skipped_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-fire_at"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "fire_at"], name="occurrence_once"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.fire_at.isoformat()}"
