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
from django.urls import path, reverse
from django.utils import timezone

from . import admin_pages, admin_queues, dashboard
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
    site_title = "Jobdeck"
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

    # Pages of the jobs app that are no model's: (url name, label, path, view).
    jobs_pages = (
        ("jobs_queues", "Queues", "jobs/queues/", admin_queues.queues_page),
        ("jobs_workers", "Workers", "jobs/workers/", admin_pages.workers_view),
    )

    def get_urls(self):
        pages = [
            path(route, self.admin_view(lambda request, _v=view: _v(self, request)), name=name)
            for name, _label, route, view in self.jobs_pages
        ]
        return [*pages, *super().get_urls()]

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list:
        """The apps, with the jobs app's own pages (Workers) listed beside its models."""
        apps = super().get_app_list(request, app_label)
        if admin_pages.may_view_jobs(request):
            for app in apps:
                if app["app_label"] == "jobs":
                    app["models"].extend(
                        {
                            "name": label,
                            "object_name": label,
                            "admin_url": reverse(f"{self.name}:{name}"),
                            "add_url": None,
                            "view_only": True,
                            "perms": {"view": True},
                        }
                        for name, label, _route, _view in self.jobs_pages
                    )
        return apps

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
