"""Schedules in the admin: toggle in the list, next run in words, run now, history, preview.

Every write goes through scheduler.services, like the API and the command.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect, JsonResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from jobs import permissions, registry
from jobs.admin_exchange import ExchangeAdminMixin
from jobs.admin_views import config_form_class, pretty_json
from jobs.exceptions import JobError, one_line
from jobs.models import Job, Workflow

from . import selectors, services, timing
from .models import Occurrence, Schedule

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

WEEKDAY_CHOICES = list(enumerate(timing.WEEKDAY_NAMES))
CONFIG_PREFIX = "cfg__"  # the generated config form's fields in the schedule form
HISTORY_ROWS = 20
PREVIEW_ROWS = 10


class OptionalJSONField(forms.JSONField):
    """A JSON field whose empty value (None) shows as an empty box, not `null`."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class ScheduleAdminForm(forms.ModelForm):
    # Not required: a schedule that fires a template takes the template's.
    job_type = forms.ChoiceField(choices=(), required=False)
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Weekly schedules only.",
    )
    time = forms.TimeField(
        required=False,
        input_formats=["%H:%M"],
        widget=forms.TimeInput(format="%H:%M"),
        help_text="HH:MM in the schedule's timezone (daily and weekly).",
    )
    workflow = OptionalJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"}),
        help_text="Fire a workflow instead of one job (then leave the job type, config and "
        'template empty): {"name": "nightly", "jobs": {"extract": {"job_type": …, "config": '
        '{…}}, "load": {"job_type": …, "config": {…}, "after": ["extract"]}}}. Checked when '
        "saved, as creating it would be (docs/scheduler.md).",
    )
    timezone = forms.CharField(
        max_length=64,
        initial="UTC",
        help_text="IANA name, e.g. Europe/Paris: type to search the list.",
        widget=forms.TextInput(attrs={"list": "jd-timezones", "autocomplete": "off"}),
    )

    # Set per request by ScheduleAdmin.get_form: whose rights the job type is checked against.
    user: AbstractBaseUser | AnonymousUser | None = None

    class Meta:
        model = Schedule
        fields = list(services.EDITABLE_FIELDS)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The job types this user may create, plus the schedule's own (so its other
        # fields stay editable; changing what it runs is checked again on save).
        types = permissions.creatable_types(self.user)
        choices = registry.choices(types=types)
        current = self.instance.job_type if self.instance.pk else ""
        if current and current not in dict(choices):
            choices.append((current, current))
        job_type = self.fields["job_type"]
        assert isinstance(job_type, forms.ChoiceField)  # declared above
        job_type.choices = choices
        if "cron" in self.fields:  # a view-only user's form has no model fields
            self.fields[
                "cron"
            ].help_text = "Five fields: minute hour day-of-month month day-of-week."
        if "config" in self.fields and self.instance.pk and not self.is_bound:
            # Secrets are shown masked; an unchanged mask keeps the stored value.
            self.initial["config"] = registry.redact(self.instance.job_type, self.instance.config)
        if "workflow" in self.fields and self.instance.pk and not self.is_bound:
            self.initial["workflow"] = services.redacted_workflow(self.instance.workflow)
        self._add_config_fields()

    def _add_config_fields(self) -> None:
        """The job type's generated config form (as on "Run a job"), its fields named
        cfg__<name>, prefilled from the schedule's config; the raw JSON stays for a
        type without one and for a job type changed before saving."""
        self.config_type = None
        if "config" not in self.fields:
            return
        if self.is_bound and self.data.get("workflow", "").strip() not in ("", "null"):
            return  # a workflow's nodes name their own configs
        name = self.data.get("job_type") if self.is_bound else None
        name = name or self.initial.get("job_type") or self.instance.job_type
        try:
            job_type = registry.get(name) if name else None
        except ValidationError:
            job_type = None
        if job_type is None or not job_type.describe_config():
            return
        saved_type = self.instance.job_type if self.instance.pk else self.initial.get("job_type")
        if self.is_bound and self.data.get("_config_type") != job_type.name:
            return  # the type was changed in this submission: its raw JSON counts
        current = registry.redact(job_type.name, self.instance.config or {})
        if saved_type != job_type.name:
            current = {}
        generated = config_form_class(job_type, config_only=True)
        for field_name, field in generated.base_fields.items():
            field = copy.deepcopy(field)
            if field_name in current:
                field.initial = current[field_name]
            self.fields[f"{CONFIG_PREFIX}{field_name}"] = field
        self.config_type = job_type
        self.fields["config"].required = False
        self.fields["config"].widget = forms.HiddenInput()

    def validate_unique(self) -> None:
        """The service checks the name (one message, not two); the database has the last word."""

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data  # what ModelForm.clean() returns
        if self.config_type is not None and not self.errors:
            generated = {
                k[len(CONFIG_PREFIX) :]: v for k, v in data.items() if k.startswith(CONFIG_PREFIX)
            }
            config: dict = {}
            for info in self.config_type.describe_config():
                value = generated.get(info["name"])
                if info["type"] != "boolean" and value in (None, "") and not info.get("required"):
                    continue
                config[info["name"]] = value
            data["config"] = config
        if self.errors:
            return data
        instance = self.instance if self.instance.pk else None
        try:
            clean = services.schedule_clean(
                {**services.schedule_values(instance), **data}, instance=instance, user=self.user
            )
        except ValidationError as exc:
            for field, messages_ in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages_)
            return data
        except PermissionDenied as exc:
            self.add_error("job_type" if "job_type" in self.fields else None, str(exc))
            return data
        data.update({k: v for k, v in clean.items() if k in self.fields})
        return data


@admin.register(Schedule)
class ScheduleAdmin(ExchangeAdminMixin, admin.ModelAdmin):
    form = ScheduleAdminForm
    exchange_kind = "schedules"  # export actions and the import page (jobs.exchange)

    class Media:
        css = {"all": ("jobs/admin.css",)}  # the jobs admin's status badges

    list_display = (
        "name",
        "job_type",
        "in_words",
        "enabled",
        "next_run",
        "last_status",
        "last_run",
        "dry_run",
    )
    list_display_links = ("name",)
    list_editable = ("enabled",)
    list_filter = ("enabled", "kind", "job_type", "dry_run", "misfire_policy", "overlap_policy")
    search_fields = ("name", "job_type", "cron")
    list_select_related = ("last_job",)
    actions = (
        "enable_schedules",
        "disable_schedules",
        "run_schedules_now",
        *ExchangeAdminMixin.exchange_actions,
    )
    readonly_fields = (
        "next_run",
        "last_run",
        "last_status",
        "created_by",
        "created_at",
        "updated_at",
        "preview",
        "history",
        "config_masked",
        "workflow_masked",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "template",
                    "job_type",
                    "config",
                    "release",
                    "workflow",
                    "enabled",
                    "dry_run",
                ),
                "description": "With a job template, each run makes the template's job (its "
                "job type, config and release, as the template reads then). With a workflow, "
                "each run creates the whole graph of jobs it describes.",
            },
        ),
        (
            "When",
            {
                "fields": ("kind", "interval_minutes", "time", "weekdays", "cron", "timezone"),
                "description": (
                    "In the schedule's own timezone. A time skipped by a DST change fires "
                    "at the first valid time after the gap; a repeated time fires once, "
                    "at its first occurrence. Interval schedules follow elapsed time."
                ),
            },
        ),
        ("Policies", {"fields": ("misfire_policy", "overlap_policy", "timeout_seconds")}),
        (
            "Status",
            {
                "fields": (
                    "next_run",
                    "last_run",
                    "last_status",
                    "created_by",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        ("Next occurrences", {"fields": ("preview",)}),
        ("History", {"fields": ("history",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        return selectors.schedule_list()

    change_form_template = "admin/scheduler/schedule/change_form.html"

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        if "fields" not in kwargs:
            # The generated config fields are added by the form itself (per job type).
            kwargs["fields"] = [
                f
                for f in flatten_fieldsets(self.get_fieldsets(request, obj))
                if not f.startswith(CONFIG_PREFIX)
            ]
        form = super().get_form(request, obj, change=change, **kwargs)
        assert issubclass(form, ScheduleAdminForm)  # modelform_factory subclasses self.form
        form.user = request.user  # a class made for this request by modelform_factory
        return form

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        """Show the generated config fields (the form adds them) under "Config"."""
        adminform = context.get("adminform")
        form = adminform.form if adminform is not None else None
        names = [
            f for f in (form.fields if form is not None else ()) if f.startswith(CONFIG_PREFIX)
        ]
        if names and adminform is not None and form is not None:
            adminform.fieldsets = [
                *adminform.fieldsets[:1],
                (
                    f"Config of {form.config_type.label or form.config_type.name}",
                    {"fields": names, "classes": ("jd-config-fields",)},
                ),
                *adminform.fieldsets[1:],
            ]
            context["jd_config_type"] = form.config_type.name
        context["jd_timezones"] = timing.timezone_names()
        context["jd_preview_url"] = reverse("admin:scheduler_schedule_preview")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def wrap(view):
            return self.admin_site.admin_view(view)

        return [
            path("preview/", wrap(self.preview_view), name="%s_%s_preview" % info),
            path(
                "<path:object_id>/run-now/",
                wrap(require_POST(self.run_now_view)),
                name="%s_%s_run_now" % info,
            ),
            path(
                "<path:object_id>/toggle/",
                wrap(require_POST(self.toggle_view)),
                name="%s_%s_toggle" % info,
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """The next occurrences of the timing being edited (not saved), with DST flags."""
        if not (self.has_view_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        q = request.GET
        try:
            weekdays = [int(d) for d in q.getlist("weekdays")]
            interval = int(q["interval_minutes"]) if q.get("interval_minutes") else None
            tz = q.get("timezone") or "UTC"
            if not timing.is_valid_timezone(tz):
                raise ValueError(f"unknown timezone {tz!r}")
            kind = q.get("kind") or ""
            if kind == "interval" and not (interval and interval >= 1):
                raise ValueError("give the interval in minutes (1 or more)")
            at = timing.parse_time(q["time"]) if q.get("time") else None
            if kind in ("daily", "weekly") and at is None:
                raise ValueError("give the time (HH:MM)")
            if kind == "weekly" and not weekdays:
                raise ValueError("choose at least one weekday")
            cron = timing.check_cron(q.get("cron", "")) if kind == "cron" else ""
            if kind not in ("interval", "daily", "weekly", "cron"):
                raise ValueError("choose a kind")
            draft = Schedule(
                kind=kind,
                interval_minutes=interval,
                time=at,
                weekdays=weekdays,
                cron=cron,
                timezone=tz,
            )
            rows = selectors.schedule_preview(schedule=draft, n=PREVIEW_ROWS)
        except (ValueError, ValidationError, KeyError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            return JsonResponse({"error": message, "rows": []})
        return JsonResponse(
            {
                "error": "",
                "timezone": tz,
                "describe": selectors.schedule_description(draft),
                "rows": rows,
            }
        )

    def _schedule(self, request: HttpRequest, object_id: str) -> Schedule:
        schedule = self.get_object(request, unquote(object_id))
        if schedule is None:
            raise Http404("No such schedule.")
        if not self.has_change_permission(request, schedule):
            raise PermissionDenied
        return schedule

    def _back(self, request: HttpRequest, schedule: Schedule) -> HttpResponseRedirect:
        target = request.POST.get("next") or ""
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = ""
        return HttpResponseRedirect(
            target or reverse("admin:scheduler_schedule_change", args=[schedule.pk])
        )

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        schedule = self._schedule(request, object_id)
        try:
            made = services.schedule_run_now(schedule=schedule, user=request.user, via="admin")
        except (ValidationError, JobError, PermissionDenied) as exc:
            self.message_user(
                request, f"Not run — {schedule.name}: {one_line(exc)}", messages.ERROR
            )
            return self._back(request, schedule)
        self.message_user(request, f"{schedule.name}: {_made(made)} created now.", messages.SUCCESS)
        return self._back(request, schedule)

    def toggle_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        schedule = self._schedule(request, object_id)
        enabled = request.POST.get("enabled") == "1"
        services.schedule_toggle(schedule=schedule, enabled=enabled, user=request.user, via="admin")
        self.message_user(
            request,
            f"{schedule.name} {'enabled' if enabled else 'disabled'}.",
            messages.SUCCESS,
        )
        return self._back(request, schedule)

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only, the raw JSON would show secrets: show the masked copy instead.
            fieldsets = [
                (name, {**opts, "fields": [_masked(f) for f in opts["fields"]]})
                for name, opts in fieldsets
            ]
        return fieldsets

    @admin.display(description="Workflow")
    def workflow_masked(self, obj: Schedule) -> str:
        if obj.workflow is None:
            return "—"
        return format_html(
            '<pre class="jd-pre">{}</pre>', pretty_json(services.redacted_workflow(obj.workflow))
        )

    @admin.display(description="Config")
    def config_masked(self, obj: Schedule) -> str:
        return format_html(
            '<pre class="jd-pre">{}</pre>', pretty_json(registry.redact(obj.job_type, obj.config))
        )

    # --- columns --------------------------------------------------------------------

    @admin.display(description="Schedule")
    def in_words(self, obj: Schedule) -> str:
        return selectors.schedule_description(obj)

    @admin.display(description="Next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> str:
        if not obj.enabled:
            return "— (disabled)"
        if obj.next_run_at is None:
            return "—"
        local = obj.next_run_at.astimezone(timing.Spec.of(obj).tz)
        now = timezone.now()
        when = (
            f"in {timeuntil(obj.next_run_at, now)}"
            if obj.next_run_at > now
            else f"due ({timesince(obj.next_run_at, now)} ago)"
        )
        return format_html(
            '{}<br><span class="quiet">{} {}</span>',
            when,
            f"{local:%a %Y-%m-%d %H:%M}",
            local.tzname(),
        )

    @admin.display(description="Last run", ordering="last_run_at")
    def last_run(self, obj: Schedule) -> str:
        if obj.last_run_at is None:
            return "never"
        return f"{timesince(obj.last_run_at)} ago"

    @admin.display(description="Last status")
    def last_status(self, obj: Schedule) -> str:
        status = getattr(obj, "last_workflow_status", None)  # annotated by schedule_list
        if obj.last_workflow_id is not None and status:
            return format_html(
                '<a href="{}">workflow <span class="jd-badge jd-{}">{}</span></a>',
                _workflow_url(obj.last_workflow_id),
                status,
                status,
            )
        job = obj.last_job
        if job is None:
            return "—"
        return format_html(
            '<a href="{}"><span class="jd-badge jd-{}">{}</span></a>',
            _job_url(job.pk),
            job.status,
            job.status,
        )

    @admin.display(description="Next occurrences")
    def preview(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "See the live preview under the timing fields."
        rows = selectors.schedule_preview(schedule=obj, n=PREVIEW_ROWS)
        body = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td class="jd-dst">{}</td></tr>',
            ((r["local_display"], r["utc"], r["note"] or "") for r in rows),
        )
        return format_html(
            '<table class="jd-preview-table" id="jd-saved-preview"><thead><tr><th>Local ({})'
            "</th><th>UTC</th><th>DST / note</th></tr></thead><tbody>{}</tbody></table>",
            obj.timezone,
            body,
        )

    @admin.display(description="Jobs it created")
    def history(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "—"
        jobs = list(selectors.schedule_history(schedule=obj)[:HISTORY_ROWS])
        if not jobs:
            return "No jobs yet."
        body = format_html_join(
            "",
            '<tr><td><a href="{}">#{}</a></td><td><span class="jd-badge jd-{}">{}</span></td>'
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    _job_url(j.pk),
                    j.pk,
                    j.status,
                    j.status,
                    f"{j.created_at:%Y-%m-%d %H:%M:%S %Z}",
                    j.created_by or "—",
                )
                for j in jobs
            ),
        )
        skipped = Occurrence.objects.filter(schedule=obj).exclude(skipped_reason="")[:5]
        skipped_html = format_html_join(
            "", "<li>{}: {}</li>", ((o.fire_at.isoformat(), o.skipped_reason) for o in skipped)
        )
        return format_html(
            "<table><thead><tr><th>Job</th><th>Status</th><th>Created</th><th>By</th></tr>"
            '</thead><tbody>{}</tbody></table><p><a href="{}">All jobs of this schedule</a></p>'
            "{}",
            body,
            _jobs_of_schedule_url(obj.pk),
            format_html("<p>Recent skipped occurrences:</p><ul>{}</ul>", skipped_html)
            if skipped
            else "",
        )

    # --- writes through services -------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Schedule, form, change: bool) -> None:
        fields = {name: getattr(obj, name) for name in services.EDITABLE_FIELDS}
        if change:
            if set(form.changed_data) <= {"enabled"}:  # the list's toggle column
                services.schedule_toggle(
                    schedule=obj, enabled=obj.enabled, user=request.user, via="admin"
                )
            else:
                services.schedule_update(schedule=obj, user=request.user, via="admin", **fields)
            obj.refresh_from_db()
        else:
            created = services.schedule_create(user=request.user, via="admin", **fields)
            obj.pk = created.pk
            obj._state.adding = False
            obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Schedule) -> None:
        services.schedule_delete(schedule=obj, user=request.user, via="admin")

    # --- actions ------------------------------------------------------------------------

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Schedule], on: bool) -> None:
        count = 0
        for schedule in queryset.filter(enabled=not on):
            services.schedule_toggle(schedule=schedule, enabled=on, user=request.user, via="admin")
            count += 1
        done = (
            ngettext("%d schedule enabled.", "%d schedules enabled.", count)
            if on
            else ngettext("%d schedule disabled.", "%d schedules disabled.", count)
        )
        self.message_user(request, done % count, messages.SUCCESS)

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable_schedules(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description="Run selected schedules now", permissions=["change"])
    def run_schedules_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        made, failed = [], []
        for schedule in queryset.select_related("release", "created_by"):
            try:
                made.append(
                    services.schedule_run_now(schedule=schedule, user=request.user, via="admin")
                )
            except (ValidationError, JobError, PermissionDenied) as exc:
                failed.append(f"{schedule.name}: {one_line(exc)}")
        jobs = [m for m in made if isinstance(m, Job)]
        if jobs:
            self.message_user(
                request,
                ngettext("%d job created: %s.", "%d jobs created: %s.", len(jobs))
                % (len(jobs), ", ".join(f"#{j.pk}" for j in jobs)),
                messages.SUCCESS,
            )
        flows = [m for m in made if not isinstance(m, Job)]
        if flows:
            self.message_user(
                request,
                ngettext("%d workflow created: %s.", "%d workflows created: %s.", len(flows))
                % (len(flows), ", ".join(f"#{w.pk}" for w in flows)),
                messages.SUCCESS,
            )
        for line in failed:
            self.message_user(request, f"Not run — {line}", messages.ERROR)


def _masked(field):
    return {"config": "config_masked", "workflow": "workflow_masked"}.get(field, field)


def _made(made: Job | Workflow) -> str:
    """What a run now made, as its message names it."""
    if isinstance(made, Workflow):
        return f"workflow #{made.pk}"
    return f"{'draft' if made.status == 'draft' else 'job'} #{made.pk}"


def _workflow_url(workflow_id: int) -> str:
    try:
        return reverse("admin:jobs_workflow_change", args=[workflow_id])
    except NoReverseMatch:
        return "#"


def _job_url(job_id: int) -> str:
    try:
        return reverse("admin:jobs_job_change", args=[job_id])
    except NoReverseMatch:
        return "#"


def _jobs_of_schedule_url(schedule_id: int) -> str:
    try:
        return reverse("admin:jobs_job_changelist") + f"?schedule__id__exact={schedule_id}"
    except NoReverseMatch:
        return "#"
