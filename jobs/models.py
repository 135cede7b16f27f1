"""Job, Task, JobLog and the audit trail of human actions."""

from __future__ import annotations

from collections.abc import Sequence
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

        Due (`run_after` passed), not waiting for a parent (`waiting_on` 0: see
        jobs.engine.dependencies), in a queue this cluster serves (`queues`, by default
        jobs.queues.served_queues()); for a job holding a lock key, FIFO per key: no
        older job of the key pending and not waiting, and fewer than its lock_limit
        running; and
        the flow rules (jobs.flow): its queue and type neither paused nor at their
        concurrency or rate limit, its key not at its rate limit, and, while any rule
        is set, a registered type (the governed claim walks registered types' lanes).
        """
        from . import flow, registry
        from .queues import served_queues

        now = now or timezone.now()
        older_pending = Job.objects.filter(
            lock=OuterRef("lock"), status=JobStatus.PENDING, waiting_on=0, pk__lt=OuterRef("pk")
        )
        running_of_key = (
            Job.objects.filter(lock=OuterRef("lock"), status=JobStatus.RUNNING)
            .order_by()
            .values("lock")
            .annotate(n=models.Count("pk"))
            .values("n")
        )
        runnable = (
            self.filter(status=JobStatus.PENDING, waiting_on=0, queue__in=queues or served_queues())
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .annotate(
                key_running=models.functions.Coalesce(
                    models.Subquery(running_of_key), models.Value(0)
                )
            )
            .filter(
                Q(lock__isnull=True)
                | (~Exists(older_pending) & Q(key_running__lt=models.F("lock_limit")))
            )
        )
        if not flow.governed():
            return runnable
        shut = flow.closed(queues or served_queues(), now)
        keys = runnable.exclude(lock=None).values_list("lock", flat=True).distinct()
        return (
            runnable.exclude(queue__in=shut.queues)
            .exclude(job_type__in=shut.types)
            .exclude(lock__in=list(flow.full_keys(keys, now)))
            .filter(job_type__in=[jt.name for jt in registry.all_types()])
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
    # At most `lock_limit` jobs per lock key run at a time, FIFO among the key's
    # pending jobs: each running one holds a numbered slot of its key (lock_slot), and
    # the running_lock_slot_unique index refuses a second holder of a slot. Another app
    # names what it protects (a release's jobs carry "release:<id>", limit 1); a job
    # type's concurrency_key names the rest ("account:42"). Null: no lock.
    lock = models.CharField(max_length=200, null=True, blank=True)
    lock_limit = models.PositiveIntegerField(default=1)
    lock_slot = models.PositiveIntegerField(null=True, blank=True)
    # The slot a running job holds under its type's / queue's concurrency limit (null
    # when none was set at its claim): unique among running jobs, so two workers that
    # both saw the last slot free cannot both take it (jobs/flow.py).
    type_slot = models.PositiveIntegerField(null=True, blank=True)
    queue_slot = models.PositiveIntegerField(null=True, blank=True)
    # While a job with this key is pending or running, creating another with it
    # returns that job (the unique_active_key index decides, not a read before).
    unique_key = models.CharField(max_length=200, null=True, blank=True)
    # Higher runs first; the same range as django.tasks (-100..100).
    priority = models.SmallIntegerField(default=0)
    run_after = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    # Seconds each attempt may run, from its claim across its tasks; past it the running
    # handler is interrupted (jobs.worker.timeouts). Null: no timeout of its own (django-q2's
    # Q_CLUSTER timeout stays the last resort). Resolved once, when the job is created.
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
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
    # Dependencies (jobs.dependencies): the parents of this job not yet settled (a
    # parent settles its edge when it completes, or, for a child that runs whatever
    # happened, when it ends at all). Runnable only at 0; the claim index holds only
    # jobs at 0, so a waiting job costs the claim nothing.
    waiting_on = models.PositiveIntegerField(default=0, db_default=0)
    on_parent_failure = models.CharField(
        max_length=6,
        choices=[("cancel", "cancel"), ("run", "run")],
        default="cancel",
        db_default="cancel",
    )
    # The parent whose failure or cancellation cancelled this job: retrying that parent
    # puts this job back to pending.
    cancelled_by_parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
        db_index=False,
    )
    workflow = models.ForeignKey(
        "jobs.Workflow",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="jobs",
        db_index=False,
    )
    workflow_node = models.CharField(max_length=100, blank=True, default="", db_default="")

    objects = JobQuerySet.as_manager()

    # Not a column: set by a create with a unique key, True when the job returned is
    # the one that already held the key (nothing new was created).
    existing: bool = False
    # Not a column: the parents a new job waits for, as validated (services.job_build).
    parent_ids: Sequence[int] = ()

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
            models.CheckConstraint(
                condition=Q(timeout_seconds__isnull=True) | Q(timeout_seconds__gte=1),
                name="job_timeout_positive",
            ),
            # Concurrency per lock key, type and queue, enforced by the database, not by
            # luck: two workers that both saw a slot free cannot both take it.
            models.UniqueConstraint(
                fields=["lock", "lock_slot"],
                condition=Q(status=JobStatus.RUNNING),
                name="running_lock_slot_unique",
            ),
            models.UniqueConstraint(
                fields=["job_type", "type_slot"],
                condition=Q(status=JobStatus.RUNNING, type_slot__isnull=False),
                name="running_type_slot_unique",
            ),
            models.UniqueConstraint(
                fields=["queue", "queue_slot"],
                condition=Q(status=JobStatus.RUNNING, queue_slot__isnull=False),
                name="running_queue_slot_unique",
            ),
            # A running job with a lock key holds one of its slots (NULLs never collide
            # in a unique index, so a slotless holder would escape the limit).
            models.CheckConstraint(
                condition=Q(lock__isnull=True)
                | ~Q(status=JobStatus.RUNNING)
                | Q(lock_slot__isnull=False),
                name="running_lock_holds_a_slot",
            ),
            models.CheckConstraint(condition=Q(lock_limit__gte=1), name="job_lock_limit_positive"),
            models.CheckConstraint(
                condition=Q(on_parent_failure__in=["cancel", "run"]),
                name="job_on_parent_failure_valid",
            ),
            models.UniqueConstraint(
                fields=["unique_key"],
                condition=Q(
                    status__in=[JobStatus.PENDING, JobStatus.RUNNING], unique_key__isnull=False
                ),
                name="unique_active_key",
            ),
        ]
        indexes = [
            # The claim: pending jobs by priority then FIFO.
            models.Index(
                "status",
                models.F("priority").desc(),
                "id",
                condition=Q(status=JobStatus.PENDING, waiting_on=0),
                name="job_pending_claim_idx",
            ),
            # The governed claim (flow rules set): one walk per open (queue, type) lane,
            # so a paused queue or a type at its limit is never scanned (jobs/flow.py).
            models.Index(
                "queue",
                "job_type",
                models.F("priority").desc(),
                "id",
                condition=Q(status=JobStatus.PENDING, waiting_on=0),
                name="job_pending_lane_idx",
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
            models.Index(
                fields=["workflow", "id"],
                condition=Q(workflow__isnull=False),
                name="job_workflow_id_idx",
            ),
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


class Workflow(models.Model):
    """Jobs created together as one graph (POST /api/workflows/): each job names its
    node, its edges are JobDependency rows. The status is the jobs' (jobs.workflows)."""

    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="workflows",
        db_index=False,
    )
    schedule = models.ForeignKey(
        "scheduler.Schedule",
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="workflows",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["created_by", "-id"], name="workflow_owner_id_idx")]

    def __str__(self) -> str:
        return f"workflow #{self.pk}" + (f" {self.name}" if self.name else "")


class JobDependency(models.Model):
    """`child` waits for `parent`. `settled` once the parent completed (or, for a child
    that runs whatever happened, ended at all): the child's waiting_on counts the
    unsettled edges, and each edge is settled once (jobs.dependencies)."""

    parent = models.ForeignKey(Job, on_delete=models.DB_CASCADE, related_name="child_links")
    child = models.ForeignKey(
        Job, on_delete=models.DB_CASCADE, related_name="parent_links", db_index=False
    )
    settled = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["child", "parent"], name="dependency_unique"),
            models.CheckConstraint(
                condition=~Q(child=models.F("parent")), name="dependency_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.child_id} after #{self.parent_id}"


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
    PAUSED = "paused"  # a queue or a job type (flow control)
    RESUMED = "resumed"
    DISCARDED = "discarded"  # a draft thrown away without running


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


class FlowScope(models.TextChoices):
    QUEUE = "queue"
    TYPE = "type"


class FlowSetting(models.Model):
    """An operator's flow rules for one queue or job type: paused, and overrides of the
    limits (null: the job type's code default; queues have none). Read by the claim on
    every governed claim, so a change holds from the next claim of any cluster."""

    scope = models.CharField(max_length=10, choices=FlowScope.choices)
    name = models.CharField(max_length=100)
    paused = models.BooleanField(default=False)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_limit = models.PositiveIntegerField(null=True, blank=True)
    rate_period_seconds = models.PositiveIntegerField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)  # types only
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DB_SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["scope", "name"]
        permissions = [
            ("manage_queues", "Can pause, resume and limit queues and job types"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["scope", "name"], name="flow_setting_unique"),
            models.CheckConstraint(
                condition=Q(scope__in=FlowScope.values), name="flow_setting_scope_valid"
            ),
            models.CheckConstraint(
                condition=Q(concurrency_limit__isnull=True) | Q(concurrency_limit__gte=1),
                name="flow_concurrency_positive",
            ),
            models.CheckConstraint(
                condition=Q(rate_limit__isnull=True) | Q(rate_limit__gte=1),
                name="flow_rate_positive",
            ),
            models.CheckConstraint(
                condition=Q(rate_period_seconds__isnull=True) | Q(rate_period_seconds__gte=1),
                name="flow_period_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.name}"


class RateSlot(models.Model):
    """One of the N starts a rate limit allows per period, for one scope ("type:x",
    "queue:y", "key:account:42"): a claim takes a slot whose last start is a period
    old, with a conditional UPDATE, so N slots give at most N starts in any window of
    the period, across clusters (jobs/flow.py)."""

    scope = models.CharField(max_length=220)
    slot = models.PositiveIntegerField()
    started_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "slot"], name="rate_slot_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} #{self.slot}"


# Worker rows not seen for this long are deleted when another worker starts.
WORKER_PRUNE_AFTER = timedelta(hours=1)


class WorkerProcess(models.Model):
    """A django-q2 worker process that said it is alive: one row per host:pid.

    Written by the worker's heartbeat thread (jobs.worker.heartbeat) from its start
    and every JOBDECK_HEARTBEAT_SECONDS, busy or idle; the job it runs is the running
    job whose `worker` is this name. Rows not seen for an hour are pruned.
    """

    name = models.CharField(max_length=255, unique=True)  # host:pid, as Job.worker
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    cluster = models.CharField(max_length=100)  # Q_CLUSTER_NAME of its cluster
    cluster_pid = models.PositiveIntegerField(null=True, blank=True)  # its parent process
    # When its cluster started: the first worker's start, kept across recycled workers.
    cluster_started_at = models.DateTimeField(default=timezone.now)
    queues = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)
    rss_bytes = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["host", "cluster", "pid"]
        indexes = [models.Index(fields=["seen_at"], name="workerprocess_seen_idx")]

    def __str__(self) -> str:
        return self.name


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
