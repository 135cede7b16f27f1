"""Jobdeck's admin site: Django's, with the jobs dashboard as its index.

Installed with `AdminConfig.default_site` (jobs.apps.JobdeckAdminConfig replaces
"django.contrib.admin" in INSTALLED_APPS), so every app's `admin.site.register` lands
here and nothing patches a site after the fact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.db.models.base import ModelBase
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from . import dashboard
from .admin_views import ReadOnlyAdminMixin


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    figures = dashboard.figures(request.user)
    return {
        "jd": figures,
        "jd_changelist": reverse("admin:jobs_job_changelist"),
        "jd_generated": timezone.localtime(figures["now"]),
    }


def read_only(base: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """`base` as a read-only record view without actions."""

    class ReadOnly(ReadOnlyAdminMixin, base):  # type: ignore[misc, valid-type]
        actions = ()

        def get_readonly_fields(self, request, obj=None):
            return [f.name for f in self.model._meta.fields]

    ReadOnly.__name__ = f"ReadOnly{base.__name__}"
    return ReadOnly


class TokenAdmin(admin.ModelAdmin):
    """API tokens (knox): who holds one and until when, never the token. knox's own
    admin lists each token's digest and, on "add", shows a new token to whoever made it;
    here revoking (delete, with knox.delete_authtoken) is the only change. Tokens are
    issued only by POST /api/auth/token/, to the user who logs in."""

    list_display = ("user", "created", "expiry")
    list_display_links = None
    list_filter = ("created", "expiry")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    fields = ("user", "created", "expiry")
    readonly_fields = fields
    ordering = ("-created",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobdeckAdminSite(admin.AdminSite):
    site_header = "Jobdeck"
    site_title = "Jobdeck admin"
    index_title = "Jobdeck administration"
    site_url = "/"  # config.views.home: where the admin, the API and its docs are
    index_template = "admin/jobs/index.html"

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """The app list, with the dashboard's figures for users who may see jobs."""
        extra = dict(extra_context or {})
        user = request.user
        if user.is_active and (user.has_perm("jobs.view_job") or user.has_perm("jobs.change_job")):
            extra.update(dashboard_context(request))
            extra["jd_fragment_url"] = reverse("admin:jobs_job_dashboard", current_app=self.name)
            extra["jd_run_url"] = reverse("admin:jobs_job_run", current_app=self.name)
            extra["jd_queues_url"] = reverse("admin:jobs_queues", current_app=self.name)
        return super().index(request, extra)

    def get_urls(self) -> list[Any]:
        from django.urls import path

        from .admin_queues import queues_view

        def queues(request: HttpRequest) -> Any:
            return queues_view(request, self)

        return [
            path("jobs/queues/", self.admin_view(queues), name="jobs_queues"),
            *super().get_urls(),
        ]

    def register(
        self,
        model_or_iterable: type[Model] | Iterable[type[Model]],
        admin_class: type[admin.ModelAdmin[Any]] | None = None,
        **options: Any,
    ) -> None:
        """Register as Django does, but django-q2's models only read-only (its admin
        could create schedules of any callable and resubmit tasks) and knox's tokens
        through TokenAdmin (its admin would show a new token to whoever adds one)."""
        models: Iterable[type[Model]] = (
            [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        )
        for model in models:
            cls = admin_class or admin.ModelAdmin
            if model._meta.app_label == "django_q":
                cls = read_only(cls)
            elif model._meta.label == "knox.AuthToken":
                cls = TokenAdmin
            super().register(model, cls, **options)
