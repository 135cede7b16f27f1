"""Input and output shapes of the schedules API; the rules live in scheduler.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import registry
from jobs.api.serializers import timeout_field
from jobs.models import JobStatus, JobTemplate

from .. import selectors, services
from ..models import MisfirePolicy, OverlapPolicy, Schedule, ScheduleKind

# A schedule may name a release; its model is reached through the field, so the
# scheduler imports nothing of the releases app.
RELEASES = Schedule._meta.get_field("release").related_model._default_manager.all()


class ScheduleInputSerializer(serializers.Serializer):
    """Types only; validity (cron, timezone, weekdays, time, config) is the service's."""

    name = serializers.CharField(max_length=200)
    template = serializers.PrimaryKeyRelatedField(
        queryset=JobTemplate.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="A job template to fire; its job type, config and release then apply.",
    )
    job_type = serializers.CharField(max_length=100, required=False, default="")
    config = serializers.JSONField(required=False, default=dict)
    release = serializers.PrimaryKeyRelatedField(
        queryset=RELEASES, required=False, allow_null=True, default=None
    )
    workflow = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text="A workflow to fire instead of one job (then no job_type, config, release "
        'or template): {"name": …, "jobs": {"<node>": {<job spec>, "after": ["<node>", …]}}}, '
        "validated as POST /api/workflows/ validates it.",
    )
    kind = serializers.ChoiceField(choices=ScheduleKind.choices)
    interval_minutes = serializers.IntegerField(required=False, allow_null=True, default=None)
    time = serializers.CharField(required=False, allow_null=True, default=None, help_text='"HH:MM"')
    weekdays = serializers.ListField(
        child=serializers.IntegerField(), required=False, default=list, help_text="0-6, Monday = 0"
    )
    cron = serializers.CharField(required=False, allow_blank=True, default="")
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")
    enabled = serializers.BooleanField(required=False, default=True)
    misfire_policy = serializers.ChoiceField(
        choices=MisfirePolicy.choices, required=False, default=MisfirePolicy.SKIP
    )
    overlap_policy = serializers.ChoiceField(
        choices=OverlapPolicy.choices, required=False, default=OverlapPolicy.SKIP
    )
    dry_run = serializers.BooleanField(required=False, default=False)
    timeout_seconds = timeout_field()


@extend_schema_field(
    {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$", "example": "02:30"}
)
class HourMinuteField(serializers.TimeField):
    """A time of day as "HH:MM" (what schedules are set with), not ISO's HH:MM:SS."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%H:%M", **kwargs)


class ScheduleSerializer(serializers.ModelSerializer):
    time = HourMinuteField(read_only=True, allow_null=True)
    config = serializers.SerializerMethodField()
    workflow = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField()
    last_job_status = serializers.ChoiceField(
        choices=JobStatus.choices,
        source="last_job.status",
        default=None,
        read_only=True,
        allow_null=True,
        help_text="The status of the job it last created; null before its first run "
        "and when its last run made a workflow.",
    )
    last_workflow_status = serializers.CharField(
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The status of the workflow its last run made (running, completed, failed "
        "or cancelled, from its jobs); null when that run made a job.",
    )
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Schedule
        fields = [
            "id",
            "name",
            "template",
            "job_type",
            "config",
            "release",
            "workflow",
            "kind",
            "interval_minutes",
            "time",
            "weekdays",
            "cron",
            "timezone",
            "enabled",
            "misfire_policy",
            "overlap_policy",
            "dry_run",
            "timeout_seconds",
            "next_run_at",
            "last_run_at",
            "last_job",
            "last_job_status",
            "last_workflow",
            "last_workflow_status",
            "description",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {}})
    def get_config(self, obj: Schedule) -> dict:
        return registry.redact(obj.job_type, obj.config)

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": {}})
    def get_workflow(self, obj: Schedule) -> dict | None:
        return services.redacted_workflow(obj.workflow)

    def get_description(self, obj: Schedule) -> str:
        return selectors.schedule_description(obj)


class ToggleSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)


class PreviewQuerySerializer(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, max_value=selectors.PREVIEW_MAX, default=10)


class OccurrencePreviewSerializer(serializers.Serializer):
    local = serializers.CharField()
    utc = serializers.CharField()
    local_display = serializers.CharField()
    dst = serializers.CharField(allow_null=True)
    note = serializers.CharField()


class PreviewSerializer(serializers.Serializer):
    timezone = serializers.CharField()
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    results = OccurrencePreviewSerializer(many=True)
