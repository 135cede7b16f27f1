"""Notification rules and their deliveries in the admin; every write through services.

A rule's page has "Send a test notification" (a delivery job sent now); deliveries
are read-only records, each linking the job that sends it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from jobs.admin_views import pretty_json
from jobs.exceptions import one_line

from . import permissions, services
from .models import Delivery, NotificationRule

EDITABLE = [f for f in services.RULE_FIELDS]


class RuleAdminForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="The webhook's HMAC-SHA256 key; never shown. Leave empty to keep it.",
    )
    emails = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Addresses, separated by commas.",
    )

    class Meta:
        model = NotificationRule
        fields = EDITABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound and "emails" in self.fields:
            self.initial["emails"] = ", ".join(self.instance.emails or [])

    def validate_unique(self) -> None:
        """The service checks the name (one message, not two); the database has the last word."""

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        instance = self.instance if self.instance.pk else None
        values = {**(services.rule_values(instance) if instance else {}), **data}
        if instance is not None and not data.get("secret"):
            values["secret"] = instance.secret  # empty keeps the stored key
        try:
            services.rule_clean(dict(values), instance=instance)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return data


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    form = RuleAdminForm
    list_display = ("name", "event", "channel", "target", "scope", "enabled", "created_by")
    list_filter = ("event", "channel", "enabled")
    search_fields = ("name", "url", "job_type", "queue")
    list_select_related = ("created_by",)
    raw_id_fields = ("schedule", "release")
    readonly_fields = ("created_by", "created_at", "updated_at", "recent_deliveries")
    actions = ("send_test",)
    fieldsets = (
        (None, {"fields": ("name", "event", "enabled")}),
        ("To whom", {"fields": ("channel", "url", "secret", "emails", "email_job_owner")}),
        (
            "For what",
            {
                "fields": ("job_type", "queue", "schedule", "release", "stalled_minutes"),
                "description": "Each field set narrows the rule; none set: everything its "
                "owner may see. stalled_minutes is for queue.stalled only.",
            },
        ),
        ("Owner", {"fields": ("created_by", "created_at", "updated_at")}),
        ("Deliveries", {"fields": ("recent_deliveries",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[NotificationRule]:
        return permissions.visible_rules(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions.may_create(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not permissions.may_manage(request.user, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not permissions.may_manage(request.user, obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        fields = {k: v for k, v in form.cleaned_data.items() if k in EDITABLE}
        if change:
            # `obj` already carries the form's values: the service compares the stored ones.
            stored = NotificationRule.objects.get(pk=obj.pk)
            saved = services.rule_update(rule=stored, user=request.user, via="admin", **fields)
        else:
            saved = services.rule_create(user=request.user, via="admin", **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.rule_delete(rule=obj, user=request.user, via="admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[NotificationRule]) -> None:
        for rule in queryset:
            services.rule_delete(rule=rule, user=request.user, via="admin")

    # --- columns ----------------------------------------------------------------------

    @admin.display(description="To")
    def target(self, obj: NotificationRule) -> str:
        if obj.channel == "webhook":
            return obj.url
        owner = ["the job's owner"] if obj.email_job_owner else []
        return ", ".join([*obj.emails, *owner])

    @admin.display(description="Scope")
    def scope(self, obj: NotificationRule) -> str:
        parts = [
            f"{name} {value}"
            for name, value in (
                ("type", obj.job_type),
                ("queue", obj.queue),
                ("schedule", obj.schedule_id),
                ("release", obj.release_id),
            )
            if value
        ]
        if obj.stalled_minutes:
            parts.append(f"waiting > {obj.stalled_minutes} min")
        return "; ".join(parts) or "everything its owner may see"

    @admin.display(description="Recent deliveries")
    def recent_deliveries(self, obj: NotificationRule) -> str:
        if obj.pk is None:
            return "—"
        rows = Delivery.objects.filter(rule=obj).select_related("job").order_by("-id")[:10]
        items = [
            (
                reverse("admin:notifications_delivery_change", args=[d.pk]),
                d.delivery_id,
                d.event,
                "sent" if d.sent_at else (d.job.status if d.job else "no job"),
            )
            for d in rows
        ]
        if not items:
            return "none yet"
        lines = format_html_join("", '<li><a href="{}">{}</a> {} — {}</li>', items)
        return format_html("<ul>{}</ul>", lines)

    # --- the test button and action ---------------------------------------------------

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/test/",
                self.admin_site.admin_view(self.test_view),
                name="{}_{}_test".format(*info),
            ),
            *super().get_urls(),
        ]

    def test_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        rule = get_object_or_404(self.get_queryset(request), pk=object_id)
        change = reverse("admin:notifications_notificationrule_change", args=[rule.pk])
        if request.method != "POST":
            return HttpResponseRedirect(change)
        try:
            delivery = services.rule_test(rule=rule, user=request.user, via="admin")
        except PermissionDenied as exc:
            self.message_user(request, one_line(exc), messages.ERROR)
            return HttpResponseRedirect(change)
        self.log_change(request, rule, "Sent a test notification.")
        self.message_user(
            request,
            f"Test notification queued as job #{delivery.job_id} "
            f"(delivery {delivery.delivery_id}).",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change)

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotificationRule]) -> None:
        sent = 0
        for rule in queryset:
            if permissions.may_manage(request.user, rule):
                services.rule_test(rule=rule, user=request.user, via="admin")
                sent += 1
        self.message_user(
            request,
            ngettext("Queued %d test notification.", "Queued %d test notifications.", sent) % sent,
            messages.SUCCESS,
        )


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Read-only: what was sent, by which job, and how the receiver answered."""

    list_display = (
        "delivery_id",
        "rule",
        "event",
        "channel",
        "source_job_link",
        "job_link",
        "sent_at",
        "response_status",
        "attempts",
    )
    list_filter = ("event", "channel")
    list_select_related = ("rule", "job")
    search_fields = ("=delivery_id", "event_key", "rule__name")
    fields = (
        "delivery_id",
        "rule",
        "event",
        "event_key",
        "channel",
        "source_job_link",
        "job_link",
        "created_at",
        "sent_at",
        "attempts",
        "response_status",
        "last_error",
        "payload_json",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        rules = permissions.visible_rules(NotificationRule.objects.all(), request.user)
        return super().get_queryset(request).filter(rule__in=rules)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="About job")
    def source_job_link(self, obj: Delivery) -> str:
        if obj.source_job_id is None:
            return "—"
        url = reverse("admin:jobs_job_change", args=[obj.source_job_id])
        return format_html('<a href="{}">#{}</a>', url, obj.source_job_id)

    @admin.display(description="Sending job")
    def job_link(self, obj: Delivery) -> str:
        if obj.job_id is None:
            return "—"
        url = reverse("admin:jobs_job_change", args=[obj.job_id])
        status = obj.job.status if obj.job is not None else ""
        return format_html('<a href="{}">#{}</a> {}', url, obj.job_id, status)

    @admin.display(description="Payload")
    def payload_json(self, obj: Delivery) -> str:
        return format_html('<pre class="jd-pre">{}</pre>', pretty_json(obj.payload))
