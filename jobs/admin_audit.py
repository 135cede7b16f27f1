"""The audit page (/admin/jobs/auditevent/): every human action on jobs, schedules,
releases and queues, filterable by actor, action, front door, target and date, with
config changes shown as diffs. Read-only; events outlive what they describe."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from .admin_pages import detail_html, timestamp
from .admin_views import EstimatedCountPaginator, ReadOnlyAdminMixin
from .models import AuditEvent

# The front doors an action comes through (AuditEvent.via).
DOORS = ("admin", "api", "cli", "schedule", "tasks", "system")
# What an event can be about: (target_type, label, admin URL name of its page).
TARGETS = (
    ("jobs.job", "jobs", "admin:jobs_job_change"),
    ("scheduler.schedule", "schedules", "admin:scheduler_schedule_change"),
    ("releases.release", "releases", "admin:releases_release_change"),
    ("jobs.queue", "queues", None),
)


class DoorFilter(admin.SimpleListFilter):
    title = "front door (via)"
    parameter_name = "via"

    def lookups(self, request, model_admin):
        return [(door, door) for door in DOORS]

    def queryset(self, request, queryset):
        return queryset.filter(via=self.value()) if self.value() else queryset


class TargetFilter(admin.SimpleListFilter):
    title = "about"
    parameter_name = "target_type"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label, _url in TARGETS]

    def queryset(self, request, queryset):
        return queryset.filter(target_type=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("when", "actor", "action", "via", "target", "changes")
    list_display_links = None
    list_filter = (
        ("actor", admin.RelatedFieldListFilter),
        "action",
        DoorFilter,
        TargetFilter,
        "created_at",
    )
    search_fields = ("=target_id", "target_repr")
    search_help_text = "A target's id (123) or part of its name (#123 demo.steps, nightly)."
    list_select_related = ("actor",)
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    ordering = ("-id",)
    actions = ()

    class Media:
        css = {"all": ("jobs/admin.css",)}

    def changelist_view(self, request, extra_context=None):
        # The diffs need the width: no app sidebar (as the job list).
        extra = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, extra)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("jobs.view_auditevent")

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # The job page's History links here with ?target_type=…&target_id=….
        return lookup in ("target_id", "target_type") or super().lookup_allowed(
            lookup, value, request
        )

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: AuditEvent) -> str:
        return timestamp(obj.created_at)

    @admin.display(description="about")
    def target(self, obj: AuditEvent) -> str:
        if not obj.target_type:
            return "—"
        url_name = next((url for value, _l, url in TARGETS if value == obj.target_type), None)
        label = obj.target_repr or f"{obj.target_type} {obj.target_id}"
        gone = obj.target_type == "jobs.job" and obj.job_id is None
        if url_name and not gone:
            try:
                return format_html(
                    '<a href="{}">{}</a>', reverse(url_name, args=[obj.target_id]), label
                )
            except NoReverseMatch:
                pass
        return format_html("{}{}", label, " (deleted)" if gone else "")

    @admin.display(description="detail (changes as a diff)")
    def changes(self, obj: AuditEvent) -> str:
        return detail_html(obj.detail)
