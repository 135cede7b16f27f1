"""Job, Task, JobLog and the audit trail of human actions."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone


class JobStatus(models.TextChoices):
    DRAFT = "draft"  # planned, analysed, not yet submitted; never runs
    PENDING = "pending"  # waiting for a worker (maybe delayed by run_after)
    RUNNING = "running"  # claimed by exactly one worker
    COMPLETED = "completed"  # every task succeeded
    FAILED = "failed"  # a task failed, the worker was lost, or attempts ran out
    CANCELLED = "cancelled"  # cancelled by a person before or while running


class TaskStatus(models.TextChoices):
    PENDING = "pending"  # not run yet in this attempt
    RUNNING = "running"  # its handler is executing
    SUCCEEDED = "succeeded"  # done; a retry skips it
    FAILED = "failed"  # its handler raised; the job stopped here
    SKIPPED = "skipped"  # never reached because the job was cancelled
    CANCELLED = "cancelled"  # was running when the job was cancelled


class LogLevel(models.IntegerChoices):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
FINISHED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

# The one table of legal transitions; every transition of jobs.engine is checked
# against it (engine.transitions.moves).
TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.DRAFT: frozenset({JobStatus.PENDING}),
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PENDING}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.CANCELLED: frozenset({JobStatus.PENDING}),
}


def _max_length(choices: type[models.TextChoices]) -> int:
    return max(len(value) for value in choices.values)


class JobQuerySet(models.QuerySet["Job"]):
    def active(self) -> JobQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    def runnable(self, now=None, queues: list[str] | None = None) -> JobQuerySet:
        """Pending jobs a worker of this cluster may start now: the readable definition
        of "may this job run now?", which the engine's claim statements implement
        (jobs/engine/sql/, kept in agreement by a property test).

        Due (`run_after` passed), in a queue this cluster serves (`queues`, by default
        jobs.queues.served_queues()) and, for a job holding a lock key, FIFO per key:
        no job of the same key is running and no older one of it is still pending.
        """
        from .queues import served_queues

        now = now or timezone.now()
        blocking = Job.objects.filter(lock=OuterRef("lock")).filter(
            Q(status=JobStatus.RUNNING) | Q(status=JobStatus.PENDING, pk__lt=OuterRef("pk"))
        )
        return (
            self.filter(status=JobStatus.PENDING, queue__in=queues or served_queues())
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .filter(Q(lock__isnull=True) | ~Exists(blocking))
        )

    def visible_to(self, user) -> JobQuerySet:
        """Jobs `user` may see (the rule lives in jobs.permissions.visible_jobs)."""
        from .permissions import visible_jobs

        return visible_jobs(self, user)


class Job(models.Model):
    # Foreign keys and job_type have no single-column index of their own: each leads a
    # composite index below, which serves the same lookups. Every index is written on
    # each claim and completion (status changes, so those UPDATEs are never HOT).
    job_type = models.CharField(max_length=100)
    status = models.CharField(
        max_length=_max_length(JobStatus), choices=JobStatus.choices, default=JobStatus.PENDING
    )
    config = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    release = models.ForeignKey(
        "releases.Release",
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,
        related_name="jobs",
        db_index=False,
    )
    schedule = models.ForeignKey(
        "scheduler.Schedule",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    # The lane it runs in: the cluster serving this queue claims it (jobs.queues).
    queue = models.CharField(max_length=100, default="default")
    # At most one job per lock key runs at a time, FIFO among the key's pending jobs
    # (the one_running_job_per_lock index enforces it). Another app names what it
    # protects: a release's jobs carry "release:<id>". Null: no lock.
    lock = models.CharField(max_length=200, null=True, blank=True)
    # Higher runs first; the same range as django.tasks (-100..100).
    priority = models.SmallIntegerField(default=0)
    run_after = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    # [worker, started_at] of each attempt, oldest first: written by every claim.
    attempted_by = models.JSONField(default=list, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    analysis = models.JSONField(null=True, blank=True)
    # Labels set at creation (jobs.tags.clean_tags), shown with the job; the JobTag rows
    # beside them are what `?tag=` looks up through an index. The column's database
    # default lets the engine's INSERTs leave it out.
    tags = models.JSONField(default=list, blank=True, db_default=models.Value("[]"))

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("view_all_jobs", "Can see every user's jobs"),
            ("manage_all_jobs", "Can cancel, retry and submit every user's jobs"),
            ("cleanup_jobs", "Can delete every user's finished jobs (cleanup)"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=JobStatus.values), name="job_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100), name="job_priority_range"
            ),
            # One running job per lock key, enforced by the database, not by luck: two
            # workers that both saw the key free cannot both start a job of it.
            models.UniqueConstraint(
                fields=["lock"],
                condition=Q(status=JobStatus.RUNNING),
                name="one_running_job_per_lock",
            ),
        ]
        indexes = [
            # The claim: pending jobs by priority then FIFO.
            models.Index(
                "status",
                models.F("priority").desc(),
                "id",
                condition=Q(status=JobStatus.PENDING),
                name="job_pending_claim_idx",
            ),
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(status=JobStatus.RUNNING),
                name="job_running_heartbeat_idx",
            ),
            models.Index(fields=["status", "-id"], name="job_status_id_idx"),
            models.Index(fields=["created_by", "-id"], name="job_owner_id_idx"),
            models.Index(fields=["release", "status", "id"], name="job_release_status_idx"),
            # The lock rule: running or older pending jobs of the same key.
            models.Index(
                fields=["lock", "status", "id"],
                condition=Q(lock__isnull=False),
                name="job_lock_status_idx",
            ),
            models.Index(fields=["schedule", "-id"], name="job_schedule_id_idx"),
            models.Index(fields=["job_type", "-id"], name="job_type_id_idx"),
            # Cleanup and throughput. Partial, so the planner never prefers it to the
            # claim index for pending jobs (it did, sorting every pending row per claim,
            # while the statistics of a freshly filled table were not yet analysed).
            models.Index(
                fields=["status", "finished_at"],
                condition=Q(status__in=FINISHED_STATUSES),
                name="job_status_finished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.job_type}"

    @property
    def progress(self) -> int:
        """Percent of tasks done; a job without tasks is at 0 %."""
        if not self.progress_total:
            return 0
        return min(100, round(100 * self.progress_done / self.progress_total))

    @property
    def duration(self) -> timedelta | None:
        """Started → finished, or → now while running; None before it starts."""
        if self.started_at is None:
            return None
        end = self.finished_at or (timezone.now() if self.status == JobStatus.RUNNING else None)
        return (end - self.started_at) if end else None

    @property
    def duration_seconds(self) -> float | None:
        duration = self.duration
        return round(duration.total_seconds(), 3) if duration is not None else None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class Task(models.Model):
    # No index of its own: task_position_unique (job, position) serves job lookups.
    job = models.ForeignKey(Job, on_delete=models.DB_CASCADE, related_name="tasks", db_index=False)
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=_max_length(TaskStatus), choices=TaskStatus.choices, default=TaskStatus.PENDING
    )
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Progress inside the task (e.g. files hashed), reported by its handler.
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="task_position_unique"),
            models.CheckConstraint(
                condition=Q(status__in=TaskStatus.values), name="task_status_valid"
            ),
            models.CheckConstraint(condition=Q(position__gte=1), name="task_position_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


class JobLog(models.Model):
    """One log line; its id is the follow cursor."""

    job = models.ForeignKey(Job, on_delete=models.DB_CASCADE, related_name="logs", db_index=False)
    task = models.ForeignKey(
        Task,
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,
        related_name="logs",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)
    level = models.PositiveSmallIntegerField(choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["id"]
        indexes = [
            # Tail (last N by id) and follow (id > cursor) both walk this index.
            models.Index(fields=["job", "id"], name="joblog_job_id_idx"),
            models.Index(fields=["task"], name="joblog_task_idx"),
        ]

    def __str__(self) -> str:
        return f"[{self.get_level_display()}] {self.message[:80]}"


class AuditAction(models.TextChoices):
    CREATED = "created"
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"
    RETRIED = "retried"
    DELETED = "deleted"
    CLEANUP = "cleanup"
    CHANGED = "changed"  # a schedule's or release's fields
    ENABLED = "enabled"
    DISABLED = "disabled"
    RAN = "ran"  # a schedule run by hand
    APPLIED = "applied"  # a release version applied (the job that does it)
    ROLLED_BACK = "rolled back"


class AuditEvent(models.Model):
    """Who did what, to what, and through which front door.

    An event outlives what it describes: `job` is nulled when the job is deleted,
    and `target_*` keep naming it (a job, a schedule, a release, …).
    """

    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="events"
    )
    target_type = models.CharField(max_length=100, blank=True)  # "jobs.job", "scheduler.schedule"
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DB_SET_NULL
    )
    via = models.CharField(max_length=20, default="system")  # admin, api, cli, tasks, ...
    action = models.CharField(max_length=_max_length(AuditAction), choices=AuditAction.choices)
    # Dates and times in a change (a schedule's time of day) are stored as ISO text.
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["job", "-id"], name="audit_job_id_idx"),
            models.Index(fields=["target_type", "target_id", "-id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        who = self.actor or "system"
        return f"{self.action} by {who} via {self.via}"

    @staticmethod
    def describe(subject: models.Model | None) -> dict[str, str]:
        """The target_* fields naming `subject` (a saved model instance), or none."""
        if subject is None or subject.pk is None:
            return {}
        return {
            "target_type": subject._meta.label_lower,
            "target_id": str(subject.pk),
            "target_repr": str(subject)[:200],
        }


class JobTag(models.Model):
    """One tag of one job: `?tag=` walks the (tag, job) index, newest job first."""

    job = models.ForeignKey(Job, on_delete=models.DB_CASCADE, related_name="tag_rows")
    tag = models.CharField(max_length=50)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tag", "job"], name="jobtag_tag_job_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.tag} (job #{self.job_id})"


class JobTemplate(models.Model):
    """A named, saved job: type, config, release, queue, priority and tags.

    Run in one click (admin) or one call (POST /api/templates/{id}/run/), and fired by
    the schedules that use it; written only through jobs.jobtemplates, which validates
    the config as a job's and checks the right to run its type.
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    job_type = models.CharField(max_length=100)
    config = models.JSONField(default=dict, blank=True)
    release = models.ForeignKey(
        "releases.Release",
        null=True,
        blank=True,
        on_delete=models.DB_CASCADE,
        related_name="job_templates",
    )
    queue = models.CharField(max_length=100, default="default")
    priority = models.SmallIntegerField(default=0)
    tags = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="job_templates",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100),
                name="jobtemplate_priority_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name
