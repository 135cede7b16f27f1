"""Job templates in the admin: run one in one click (a button on its page, an action on
the list), export and import; every write through jobs.jobtemplates."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from . import jobtemplates, permissions, registry
from .admin_exchange import ExchangeAdminMixin
from .admin_views import pretty_json
from .exceptions import JobError, one_line
from .models import JobTemplate


class JobTemplateForm(forms.ModelForm):
    job_type = forms.ChoiceField(choices=())
    # Set per request by get_form: whose rights the job type is checked against.
    user: Any = None

    class Meta:
        model = JobTemplate
        fields = list(jobtemplates.FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = registry.choices(types=permissions.creatable_types(self.user))
        current = self.instance.job_type if self.instance.pk else ""
        if current and current not in dict(choices):
            choices.append((current, current))
        if "job_type" in self.fields:
            self.fields["job_type"].choices = choices  # type: ignore[attr-defined]
        if "config" in self.fields and self.instance.pk and not self.is_bound:
            # Secrets are shown masked; an unchanged mask keeps the stored value.
            self.initial["config"] = registry.redact(self.instance.job_type, self.instance.config)

    def validate_unique(self) -> None:
        """The service checks the name (one message, not two)."""

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        instance = self.instance if self.instance.pk else None
        try:
            clean = jobtemplates.template_clean(
                {**jobtemplates.template_values(instance), **data},
                instance=instance,
                user=self.user,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
            return data
        except PermissionDenied as exc:
            self.add_error("job_type", str(exc))
            return data
        data.update({k: v for k, v in clean.items() if k in self.fields})
        return data


@admin.register(JobTemplate)
class JobTemplateAdmin(ExchangeAdminMixin, admin.ModelAdmin):
    exchange_kind = "templates"
    form = JobTemplateForm
    list_display = ("name", "job_type", "queue", "priority", "tag_list", "run_button")
    list_filter = ("job_type", "queue")
    search_fields = ("name", "job_type")
    list_select_related = ("release",)
    actions = ("run_templates", *ExchangeAdminMixin.exchange_actions)
    readonly_fields = ("created_by", "created_at", "updated_at", "config_masked", "schedules")
    fieldsets = (
        (None, {"fields": ("name", "description", "job_type", "config", "release")}),
        ("How it runs", {"fields": ("queue", "priority", "tags")}),
        ("Record", {"fields": ("created_by", "created_at", "updated_at", "schedules")}),
    )

    class Media:
        css = {"all": ("jobs/admin.css",)}

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # type: ignore[attr-defined]
        return form

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only, the raw JSON would show secrets: the masked copy instead.
            fieldsets = [
                (name, {**opts, "fields": ["config_masked" if f == "config" else f
                                           for f in opts["fields"]]})
                for name, opts in fieldsets
            ]  # fmt: skip
        return fieldsets

    def get_actions(self, request: HttpRequest, action_location=admin.ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # would bypass template_delete's check
        return actions

    @admin.display(description="Config")
    def config_masked(self, obj: JobTemplate) -> str:
        return format_html(
            '<pre class="jd-pre">{}</pre>', pretty_json(registry.redact(obj.job_type, obj.config))
        )

    @admin.display(description="tags")
    def tag_list(self, obj: JobTemplate) -> str:
        return ", ".join(obj.tags) or "—"

    @admin.display(description="Used by schedules")
    def schedules(self, obj: JobTemplate) -> str:
        names = list(obj.schedules.order_by("name").values_list("name", flat=True)[:20])
        return ", ".join(names) or "—"

    @admin.display(description="run")
    def run_button(self, obj: JobTemplate) -> str:
        # The changelist is one form (actions): this button posts it to the run URL
        # (formaction), with its CSRF token; a form of its own cannot nest in it.
        url = reverse("admin:jobs_jobtemplate_run", args=[obj.pk], current_app=self.admin_site.name)
        return format_html(
            '<button type="submit" formaction="{}" class="button jd-run-now">Run now</button>', url
        )

    # --- writes through the service -----------------------------------------------

    def save_model(self, request: HttpRequest, obj: JobTemplate, form, change: bool) -> None:
        fields = {name: getattr(obj, name) for name in jobtemplates.FIELDS}
        if change:
            jobtemplates.template_update(template=obj, user=request.user, via="admin", **fields)
            obj.refresh_from_db()
        else:
            created = jobtemplates.template_create(user=request.user, via="admin", **fields)
            obj.pk = created.pk
            obj._state.adding = False
            obj.refresh_from_db()

    def delete_view(self, request: HttpRequest, object_id: str, extra_context=None):
        obj = self.get_object(request, object_id)
        if (
            obj is not None
            and request.method == "POST"
            and self.has_delete_permission(request, obj)
        ):
            try:
                jobtemplates.template_delete(template=obj, user=request.user, via="admin")
            except ValidationError as exc:
                self.message_user(request, f"Not deleted: {one_line(exc)}", messages.ERROR)
                return HttpResponseRedirect(reverse("admin:jobs_jobtemplate_change", args=[obj.pk]))
            self.message_user(request, f"Template {obj.name!r} deleted.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:jobs_jobtemplate_changelist"))
        return super().delete_view(request, object_id, extra_context)

    # --- running ----------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/run/",
                self.admin_site.admin_view(require_POST(self.run_view)),
                name="jobs_jobtemplate_run",
            ),
            *super().get_urls(),
        ]

    def _run(self, request: HttpRequest, template: JobTemplate) -> int | None:
        try:
            job = jobtemplates.template_run(template=template, user=request.user, via="admin")
        except (ValidationError, PermissionDenied, JobError) as exc:
            self.message_user(
                request, f"Not run — {template.name}: {one_line(exc)}", messages.ERROR
            )
            return None
        return job.pk

    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """One click: the template's job, owned by whoever clicked; then its page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        template = get_object_or_404(JobTemplate, pk=object_id if object_id.isdigit() else 0)
        job_id = self._run(request, template)
        if job_id is None:
            return HttpResponseRedirect(reverse("admin:jobs_jobtemplate_changelist"))
        self.message_user(
            request, f"Job #{job_id} created from template {template.name!r}.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job_id]))

    @admin.action(description="Run selected templates now", permissions=["view"])
    def run_templates(self, request: HttpRequest, queryset: QuerySet[JobTemplate]) -> None:
        ids = [
            job_id for t in queryset.select_related("release") if (job_id := self._run(request, t))
        ]
        if ids:
            self.message_user(
                request,
                ngettext("%d job created: %s.", "%d jobs created: %s.", len(ids))
                % (len(ids), ", ".join(f"#{i}" for i in ids)),
                messages.SUCCESS,
            )
