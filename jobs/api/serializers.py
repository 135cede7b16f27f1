"""Input and output serializers of the jobs API.

Input serializers check shapes only; the rules (job types, configs, transitions)
live in `jobs.services`, whose ValidationError/IllegalTransition the exception
handler turns into 400/409.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils import json

from jobs import registry
from jobs.models import AuditEvent, Job, JobDependency, JobLog, JobStatus, LogLevel, Task
from jobs.selectors import waiting_reasons
from jobs.services import (
    BULK_MAX_JOBS,
    DEPENDS_ON_MAX,
    ON_PARENT_FAILURE,
    TIMEOUT_ERROR,
    TIMEOUT_MAX_SECONDS,
)
from jobs.tags import MAX_TAG_LENGTH, MAX_TAGS, TAG_HELP

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

# JSON configs nested deeper than this are refused: no job type needs it, and
# deep structures are a cheap way to make every later json.dumps expensive.
MAX_CONFIG_DEPTH = 20
AUDIT_EVENTS_SHOWN = 50


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counting no further than `limit` + 1."""
    depth, level = 0, [value]
    while level and depth <= limit:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        depth += 1
        level = [item for c in containers for item in (c.values() if isinstance(c, dict) else c)]
    return depth


# Jobs may name a release (jobs.Job.release); its model is reached through the field,
# so jobs imports nothing of the releases app.
RELEASES = Job._meta.get_field("release").related_model._default_manager.all()


class ConfigField(serializers.JSONField):
    """A job config: a JSON object of bounded depth (the job type validates the rest)."""

    default_error_messages = {
        "not_object": "Config must be a JSON object.",
        "too_deep": f"Config is nested more than {MAX_CONFIG_DEPTH} levels deep.",
    }

    def to_internal_value(self, data: Any) -> Any:
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            self.fail("not_object")
        if json_depth(data, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH:
            self.fail("too_deep")
        return data


@extend_schema_field(OpenApiTypes.OBJECT)
class ConfigOutField(serializers.Field):
    """The job's config with its type's secret fields masked."""

    def get_attribute(self, instance: Job) -> Any:
        return instance

    def to_representation(self, job: Job) -> Any:
        return registry.redact(job.job_type, job.config)


def redact_secrets(job: Job, data: dict) -> dict:
    """A job's representation with its secret config values masked wherever a handler
    may have put them (result, error, analysis, its tasks'): they are masked when
    written too; this covers rows written before that."""
    secrets = registry.secret_values(job.job_type, job.config)
    if not secrets:
        return data
    for key in ("result", "analysis", "error"):
        if key in data:
            data[key] = registry.mask_value(data[key], secrets)
    for task in data.get("tasks") or ():
        task["result"] = registry.mask_value(task.get("result"), secrets)
        task["error"] = registry.mask_value(task.get("error"), secrets)
    return data


def timeout_field() -> serializers.IntegerField:
    """`timeout_seconds` of a new job: whole seconds, 1 to a day; null = the type's default."""
    return serializers.IntegerField(
        min_value=1,
        max_value=TIMEOUT_MAX_SECONDS,
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "Seconds each attempt may run (from its start, across its tasks) before it is "
            'interrupted and fails "timed out after N s" (or is retried); null: the job '
            "type's default."
        ),
        error_messages={
            key: TIMEOUT_ERROR for key in ("invalid", "min_value", "max_value", "max_string_length")
        },
    )


def tags_field() -> serializers.ListField:
    """A list of tags; their validity is jobs.tags' (the service checks it)."""
    return serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG_LENGTH),
        max_length=MAX_TAGS,
        required=False,
        default=list,
        help_text=TAG_HELP,
    )


def depends_on_field() -> serializers.ListField:
    """`depends_on` of a new job: the ids of the jobs it waits for (the service checks
    that each exists and that the caller may see it)."""
    return serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        max_length=DEPENDS_ON_MAX,
        required=False,
        default=list,
        help_text="Ids of jobs this one waits for: it is pending but not runnable until "
        "each completed. When one fails or is cancelled, this job is cancelled with the "
        'reason, unless on_parent_failure is "run".',
    )


def on_parent_failure_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(ON_PARENT_FAILURE),
        required=False,
        default="cancel",
        help_text='"cancel" (default): a parent that fails or is cancelled cancels this job; '
        '"run": it runs once every parent ended, whatever happened (a report, a cleanup).',
    )


class JobCreateSerializer(serializers.Serializer):
    """Body of POST /api/jobs/ and POST /api/wizard/jobs/."""

    job_type = serializers.CharField(max_length=100)
    config = ConfigField(required=False, default=dict)
    release = serializers.PrimaryKeyRelatedField(
        queryset=RELEASES, required=False, allow_null=True, default=None
    )
    priority = serializers.IntegerField(min_value=-100, max_value=100, required=False, default=0)
    run_after = serializers.DateTimeField(required=False, allow_null=True, default=None)
    max_attempts = serializers.IntegerField(
        min_value=1, max_value=100, required=False, allow_null=True, default=None
    )
    timeout_seconds = timeout_field()
    draft = serializers.BooleanField(required=False, default=False)
    queue = serializers.CharField(max_length=100, required=False, default="default")
    unique_key = serializers.CharField(
        max_length=200,
        required=False,
        allow_null=True,
        default=None,
        help_text="While a job with this key is pending or running, a create with it "
        "returns that job (200, `existing: true`) instead of a new one. The "
        "Idempotency-Key header sets it too.",
    )
    tags = tags_field()
    depends_on = depends_on_field()
    on_parent_failure = on_parent_failure_field()


class BulkJobSerializer(serializers.Serializer):
    """One item of POST /api/jobs/bulk/ (pending jobs only, no drafts)."""

    job_type = serializers.CharField(max_length=100)
    config = ConfigField(required=False, default=dict)
    release = serializers.IntegerField(required=False, allow_null=True, default=None)
    priority = serializers.IntegerField(min_value=-100, max_value=100, required=False, default=0)
    run_after = serializers.DateTimeField(required=False, allow_null=True, default=None)
    max_attempts = serializers.IntegerField(
        min_value=1, max_value=100, required=False, allow_null=True, default=None
    )
    unique_key = serializers.CharField(
        max_length=200, required=False, allow_null=True, default=None
    )
    timeout_seconds = timeout_field()
    tags = tags_field()
    queue = serializers.CharField(max_length=100, required=False, default="default")
    depends_on = depends_on_field()
    on_parent_failure = on_parent_failure_field()


class BulkCreateSerializer(serializers.Serializer):
    """Body of POST /api/jobs/bulk/: `{"jobs": [...]}`, validated as a whole."""

    jobs = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=BULK_MAX_JOBS
    )

    def validate_jobs(self, items: list[dict]) -> list[dict]:
        """Check every item's shape; report all bad items at once by index.

        The item serializer runs once per distinct item (bulk bodies repeat a few
        shapes), and release ids are resolved in one query.
        """
        errors: dict[str, Any] = {}
        specs: list[dict] = []
        seen: dict[str, dict | serializers.ValidationError] = {}
        for index, item in enumerate(items):
            key = _stable_key(item)
            cached = seen.get(key) if key is not None else None
            if cached is None:
                item_serializer = BulkJobSerializer(data=item)
                if item_serializer.is_valid():
                    cached = dict(item_serializer.validated_data)
                else:
                    cached = serializers.ValidationError(item_serializer.errors)
                if key is not None:
                    seen[key] = cached
            if isinstance(cached, serializers.ValidationError):
                errors[str(index)] = cached.detail
            else:
                specs.append(dict(cached))
        if errors:
            raise serializers.ValidationError(errors)
        release_ids = {s["release"] for s in specs if s["release"] is not None}
        releases = RELEASES.in_bulk(release_ids) if release_ids else {}
        for index, spec in enumerate(specs):
            if spec["release"] is not None:
                spec["release"] = releases.get(spec["release"])
                if spec["release"] is None:
                    errors[str(index)] = {"release": ["No such release."]}
        if errors:
            raise serializers.ValidationError(errors)
        return specs


def _stable_key(item: dict) -> str | None:
    try:
        return json.dumps(item, sort_keys=True)
    except (TypeError, ValueError):
        return None


class BulkCreatedSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    ids = serializers.ListField(child=serializers.IntegerField())
    existing = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The indexes of the items whose unique key a pending or running job "
        "held: their id is that job's; nothing new was created for them.",
    )


class RetrySerializer(serializers.Serializer):
    """Body of POST /api/jobs/{id}/retry/: an optional corrected config."""

    config = ConfigField(required=False, allow_null=True, default=None)


class CleanupSerializer(serializers.Serializer):
    older_than_days = serializers.IntegerField(min_value=0, max_value=36_500)
    dry_run = serializers.BooleanField(required=False, default=False)


class CleanupResultSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    cutoff = serializers.DateTimeField()
    jobs = serializers.IntegerField()
    tasks = serializers.IntegerField()
    logs = serializers.IntegerField()


class LogQuerySerializer(serializers.Serializer):
    """Query of GET …/logs/: `tail` (last N lines) or `after` (lines after a cursor)."""

    tail = serializers.IntegerField(min_value=0, max_value=10_000, required=False)
    after = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False)


class TaskSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "position",
            "name",
            "status",
            "attempts",
            "progress_done",
            "progress_total",
            "started_at",
            "finished_at",
            "duration_seconds",
            "error",
            "result",
        ]
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer):
    actor: serializers.SlugRelatedField[AbstractBaseUser] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "via", "created_at", "detail"]
        read_only_fields = fields


JOB_LIST_FIELDS = [
    "id",
    "job_type",
    "status",
    "release",
    "schedule",
    "workflow",
    "created_by",
    "queue",
    "priority",
    "attempts",
    "max_attempts",
    "timeout_seconds",
    "run_after",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "progress",
    "progress_done",
    "progress_total",
    "duration_seconds",
    "tags",
]


class JobPageSerializer(serializers.ListSerializer):
    """Works out the release waiting reasons of a whole page at once (two queries)."""

    def to_representation(self, data):
        jobs = list(data.all() if hasattr(data, "all") else data)
        assert self.child is not None  # ListSerializer.__init__ requires one
        # The context is the root serializer's dict, shared by every field; the stubs
        # type it read-only (Mapping).
        self.child.context["waiting_reasons"] = waiting_reasons(jobs)  # type: ignore[index]
        return super().to_representation(jobs)


class WaitingReasonMixin(serializers.Serializer):
    waiting_reason = serializers.SerializerMethodField()

    def get_waiting_reason(self, job: Job) -> str | None:
        """Why a pending job waits behind others on its release, with an estimated start."""
        reasons = self.context.get("waiting_reasons")
        if reasons is None:
            return waiting_reasons([job]).get(job.pk)
        return reasons.get(job.pk)


class JobListSerializer(WaitingReasonMixin, serializers.ModelSerializer):
    """A job in lists: no tasks, config or result (constant queries, small rows)."""

    created_by: serializers.SlugRelatedField[AbstractBaseUser] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    progress = serializers.IntegerField(read_only=True, min_value=0, max_value=100)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [*JOB_LIST_FIELDS, "waiting_reason"]
        read_only_fields = fields
        list_serializer_class = JobPageSerializer


class JobDetailSerializer(JobListSerializer):
    """A job with its config (redacted), result, error, tasks and audit trail."""

    config = ConfigOutField(read_only=True)
    tasks = TaskSerializer(many=True, read_only=True)
    events = serializers.SerializerMethodField()
    depends_on = serializers.SerializerMethodField()
    dependents = serializers.SerializerMethodField()

    class Meta(JobListSerializer.Meta):
        fields = [
            *JobListSerializer.Meta.fields,
            "config",
            "result",
            "error",
            "cancel_requested_at",
            "worker",
            "unique_key",
            "lock",
            "workflow_node",
            "depends_on",
            "on_parent_failure",
            "waiting_on",
            "dependents",
            "tasks",
            "events",
        ]
        read_only_fields = fields

    _edges_of: int | None = None
    _edges_read: tuple[list[int], list[int]] = ([], [])

    def _edges(self, job: Job) -> tuple[list[int], list[int]]:
        """(parent ids, child ids) of `job`, ascending: one query for both fields."""
        if self._edges_of != job.pk:
            edges = JobDependency.objects.filter(Q(child=job) | Q(parent=job)).order_by("pk")
            rows = list(edges.values_list("parent_id", "child_id"))
            self._edges_of, self._edges_read = (
                job.pk,
                (
                    sorted(p for p, c in rows if c == job.pk),
                    sorted(c for p, c in rows if p == job.pk),
                ),
            )
        return self._edges_read

    def get_depends_on(self, job: Job) -> list[int]:
        """The ids of the jobs this one waits for (or waited for), ascending."""
        return self._edges(job)[0]

    def get_dependents(self, job: Job) -> list[int]:
        """The ids of the jobs that wait for this one, ascending."""
        return self._edges(job)[1]

    def to_representation(self, job: Job) -> dict:
        return redact_secrets(job, super().to_representation(job))

    @extend_schema_field(AuditEventSerializer(many=True))
    def get_events(self, job: Job) -> list[dict]:
        """The latest 50 audit events, newest first (one query for one job)."""
        events = job.events.select_related("actor").order_by("-id")[:AUDIT_EVENTS_SHOWN]
        # many=True makes a ListSerializer, whose data is a list; the stubs type the
        # call as an AuditEventSerializer (data: a dict).
        return AuditEventSerializer(events, many=True).data  # type: ignore[return-value]


class JobCreatedSerializer(JobDetailSerializer):
    """The answer to POST /api/jobs/: the job, and whether it already existed (a
    pending or running job held the unique key: nothing new was created)."""

    existing = serializers.BooleanField(read_only=True)

    class Meta(JobDetailSerializer.Meta):
        fields = [*JobDetailSerializer.Meta.fields, "existing"]
        read_only_fields = fields


class WizardJobSerializer(JobDetailSerializer):
    """A job as the wizard shows it: the detail plus the draft's analysis."""

    class Meta(JobDetailSerializer.Meta):
        fields = [*JobDetailSerializer.Meta.fields, "analysis"]
        read_only_fields = fields


class JobStatusSerializer(WaitingReasonMixin, serializers.ModelSerializer):
    """GET /api/jobs/{id}/status/ and the answer to cancel/retry/submit."""

    progress = serializers.IntegerField(read_only=True, min_value=0, max_value=100)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    current_task = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "progress",
            "progress_done",
            "progress_total",
            "current_task",
            "duration_seconds",
            "error",
            "waiting_reason",
        ]
        read_only_fields = fields

    def to_representation(self, job: Job) -> dict:
        return redact_secrets(job, super().to_representation(job))

    def get_current_task(self, job: Job) -> str | None:
        if job.status != JobStatus.RUNNING:
            return None  # only a running job has a current task: no query otherwise
        from jobs.selectors import current_task_name

        return current_task_name(job)


class LogLineSerializer(serializers.ModelSerializer):
    level = serializers.SerializerMethodField()
    task = serializers.IntegerField(source="task_id", allow_null=True, read_only=True)

    class Meta:
        model = JobLog
        fields = ["id", "created_at", "level", "task", "message"]
        read_only_fields = fields

    def get_level(self, line: JobLog) -> str:
        try:
            return LogLevel(line.level).name.lower()
        except ValueError:
            return str(line.level)


class LogPageSerializer(serializers.Serializer):
    results = LogLineSerializer(many=True)
    cursor = serializers.IntegerField(
        help_text="Pass as `after` to get the lines that follow; the last id returned."
    )


class AnalysisSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["pending", "ready", "failed"])
    analysis = serializers.DictField()
    error = serializers.CharField(required=False)


class JobTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    # An output field, not Field.label: DRF's metaclass takes it off the class.
    label = serializers.CharField()  # type: ignore[assignment]
    description = serializers.CharField()
    user_creatable = serializers.BooleanField()
    requires_release = serializers.BooleanField()
    max_attempts = serializers.IntegerField()
    config = serializers.ListField(child=serializers.DictField())
    # Flow control: the rules in force (the code's, or an operator's override).
    paused = serializers.BooleanField()
    running = serializers.IntegerField()
    concurrency_limit = serializers.IntegerField(allow_null=True)
    rate_limit = serializers.IntegerField(allow_null=True)
    rate_period_seconds = serializers.IntegerField(allow_null=True)
    timeout_seconds = serializers.IntegerField(allow_null=True)
    concurrency_key = serializers.CharField(allow_null=True)
    concurrency_key_limit = serializers.IntegerField(allow_null=True)
    key_rate_limit = serializers.IntegerField(allow_null=True)
    key_rate_period_seconds = serializers.IntegerField(allow_null=True)
    overridden = serializers.ListField(
        child=serializers.CharField(), help_text="The fields an operator set."
    )


class FlowChangeSerializer(serializers.Serializer):
    """Body of PATCH /api/queues/{name}/ and /api/job-types/{name}/: the fields to set;
    null puts a limit back to the job type's code default."""

    paused = serializers.BooleanField(required=False)
    concurrency_limit = serializers.IntegerField(required=False, allow_null=True)
    rate_limit = serializers.IntegerField(required=False, allow_null=True)
    rate_period_seconds = serializers.IntegerField(required=False, allow_null=True)
    timeout_seconds = serializers.IntegerField(required=False, allow_null=True)


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField()
    paused = serializers.BooleanField()
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    oldest_pending_seconds = serializers.FloatField(allow_null=True)
    concurrency_limit = serializers.IntegerField(allow_null=True)
    rate_limit = serializers.IntegerField(allow_null=True)
    rate_period_seconds = serializers.IntegerField(allow_null=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded", "down"])
    database = serializers.DictField()
    cluster = serializers.DictField()
    queue = serializers.DictField()
