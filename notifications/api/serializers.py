"""Input and output shapes of /api/notification-rules/; the rules live in notifications.services."""

from __future__ import annotations

from rest_framework import serializers

from ..models import RULE_EVENTS, Channel, Delivery, NotificationRule

# Scopes name a schedule or a release; their models are reached through the fields,
# so notifications imports nothing of the scheduler or releases apps.
SCHEDULES = NotificationRule._meta.get_field("schedule").related_model._default_manager.all()
RELEASES = NotificationRule._meta.get_field("release").related_model._default_manager.all()


class RuleInputSerializer(serializers.Serializer):
    """Types only; what fits together (URL allow-list, scope per event) is the service's."""

    name = serializers.CharField(max_length=200)
    event = serializers.ChoiceField(choices=RULE_EVENTS)
    channel = serializers.ChoiceField(choices=Channel.choices)
    url = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    emails = serializers.ListField(
        child=serializers.CharField(max_length=254), required=False, default=list, max_length=50
    )
    email_job_owner = serializers.BooleanField(required=False, default=False)
    secret = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        write_only=True,
        help_text="The webhook's HMAC-SHA256 key. Write-only; on update, empty keeps it.",
    )
    job_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    queue = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    schedule = serializers.PrimaryKeyRelatedField(
        queryset=SCHEDULES, required=False, allow_null=True, default=None
    )
    release = serializers.PrimaryKeyRelatedField(
        queryset=RELEASES, required=False, allow_null=True, default=None
    )
    stalled_minutes = serializers.IntegerField(required=False, allow_null=True, default=None)
    enabled = serializers.BooleanField(required=False, default=True)


class RuleSerializer(serializers.ModelSerializer):
    """A rule as shown: the secret never, only whether one is set."""

    has_secret = serializers.SerializerMethodField()
    owner = serializers.SerializerMethodField()

    class Meta:
        model = NotificationRule
        fields = [
            "id",
            "name",
            "event",
            "channel",
            "url",
            "emails",
            "email_job_owner",
            "has_secret",
            "job_type",
            "queue",
            "schedule",
            "release",
            "stalled_minutes",
            "enabled",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_secret(self, rule: NotificationRule) -> bool:
        return bool(rule.secret)

    def get_owner(self, rule: NotificationRule) -> str | None:
        return rule.created_by.get_username() if rule.created_by is not None else None


class DeliverySerializer(serializers.ModelSerializer):
    job_status = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "delivery_id",
            "rule",
            "event",
            "event_key",
            "channel",
            "source_job",
            "job",
            "job_status",
            "created_at",
            "sent_at",
            "attempts",
            "response_status",
            "last_error",
            "payload",
        ]
        read_only_fields = fields

    def get_job_status(self, delivery: Delivery) -> str | None:
        return delivery.job.status if delivery.job is not None else None
