"""notify.email and notify.webhook: the jobs that send deliveries (Jobdeck creates them)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.registry import JobType, register
from jobs.worker.context import JobContext

from . import senders


class DeliveryConfig(serializers.Serializer):
    delivery = serializers.IntegerField(min_value=1, help_text="The Delivery to send.")


class _Notify(JobType):
    config_serializer = DeliveryConfig
    user_creatable = False  # only notifications.services.record creates them
    # The creating service passes JOBDECK_NOTIFY_MAX_ATTEMPTS; backoff is the engine's.
    max_attempts = 8

    def run(self, ctx: JobContext) -> Any:
        return senders.deliver(ctx, ctx.config["delivery"])


@register
class NotifyEmail(_Notify):
    """Mails one notification through Django's email backend."""

    name = "notify.email"
    label = "Notification: email"


@register
class NotifyWebhook(_Notify):
    """POSTs one notification's JSON payload, signed with HMAC-SHA256, to its rule's URL."""

    name = "notify.webhook"
    label = "Notification: webhook"
