"""Helpers of the jobs admin: the estimated paginator, the generated config form, log
line formatting (the rights are jobs.permissions'). The ModelAdmin in `jobs/admin.py`
stays a thin caller of services.
"""

from __future__ import annotations

import calendar
import json
import unicodedata
from datetime import date
from typing import Any

from django import forms
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.text import capfirst

from releases.selectors import waiting_reasons

from . import permissions, registry
from .models import JobLog, LogLevel

# --- read-only records -------------------------------------------------------------


class ReadOnlyAdminMixin:
    """Records nobody edits through the admin (history, immutable versions): view only."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- changelist at scale -----------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """A paginator that never runs a full COUNT(*) over a big table.

    Unfiltered on PostgreSQL: the planner's estimate (`pg_class.reltuples`) once the
    table is big. Filtered (or SQLite): an exact count capped at `cap` rows, i.e.
    `SELECT COUNT(*) FROM (… LIMIT cap + 1)`, which stops early on any index.
    `estimated` says whether the figure is exact.
    """

    cap = 10_000
    estimate_from = 100_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.estimated = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        connection = connections[qs.db]
        if connection.vendor == "postgresql" and not qs.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                    [connection.ops.quote_name(qs.model._meta.db_table)],
                )
                row = cursor.fetchone()
            if row and row[0] >= self.estimate_from:
                self.estimated = True
                return int(row[0])
        counted = qs.order_by()[: self.cap + 1].count()
        if counted > self.cap:
            self.estimated = True
            return self.cap
        return counted


class JobChangeList(ChangeList):
    """Defers the heavy columns and draws a date hierarchy without DISTINCT scans."""

    heavy_fields = ("config", "result", "error", "analysis")

    def get_queryset(self, request, exclude_parameters=None):
        return super().get_queryset(request, exclude_parameters).defer(*self.heavy_fields)

    def get_results(self, request) -> None:
        super().get_results(request)
        reasons = waiting_reasons(self.result_list)
        for job in self.result_list:
            job.waiting_note = reasons.get(job.pk, "")

    def fast_date_hierarchy(self) -> dict[str, Any]:
        """Years between the first and the last job, then every month, then every day.

        Django's own hierarchy runs `SELECT DISTINCT date_trunc(…)` over the whole
        result; this one reads at most MIN/MAX of `created_at` (two index probes).
        """
        field = self.date_hierarchy
        params = {k: self.params.get(f"{field}__{k}") for k in ("year", "month", "day")}

        def link(filters: dict[str, Any]) -> str:
            return self.get_query_string(filters, [f"{field}__"])

        def key(part: str) -> str:
            return f"{field}__{part}"

        try:
            year = int(params["year"]) if params["year"] else None
            month = int(params["month"]) if params["month"] else None
            day = int(params["day"]) if params["day"] else None
        except (TypeError, ValueError):
            return {"show": False}
        if year and month and day:
            when = date(year, month, day)
            return {
                "show": True,
                "back": {
                    "link": link({key("year"): year, key("month"): month}),
                    "title": capfirst(formats.date_format(when, "YEAR_MONTH_FORMAT")),
                },
                "choices": [{"title": capfirst(formats.date_format(when, "MONTH_DAY_FORMAT"))}],
            }
        if year and month:
            days = calendar.monthrange(year, month)[1]
            return {
                "show": True,
                "back": {"link": link({key("year"): year}), "title": str(year)},
                "choices": [
                    {
                        "link": link({key("year"): year, key("month"): month, key("day"): d}),
                        "title": capfirst(
                            formats.date_format(date(year, month, d), "MONTH_DAY_FORMAT")
                        ),
                    }
                    for d in range(1, days + 1)
                ],
            }
        if year:
            return {
                "show": True,
                "back": {"link": link({}), "title": "All dates"},
                "choices": [
                    {
                        "link": link({key("year"): year, key("month"): m}),
                        "title": capfirst(
                            formats.date_format(date(year, m, 1), "YEAR_MONTH_FORMAT")
                        ),
                    }
                    for m in range(1, 13)
                ],
            }
        bounds = self.queryset.order_by().aggregate(first=Min(field), last=Max(field))
        if not bounds["first"]:
            return {"show": False}
        first = timezone.localtime(bounds["first"]).year
        last = timezone.localtime(bounds["last"]).year
        return {
            "show": True,
            "choices": [
                {"link": link({key("year"): y}), "title": str(y)} for y in range(first, last + 1)
            ],
        }


# --- JSON ------------------------------------------------------------------------------


class SafeJSONEncoder(DjangoJSONEncoder):
    """JSON whose text never contains <, > or &: safe even if sniffed as HTML."""

    def encode(self, o: Any) -> str:
        text = super().encode(o)
        return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder)


# --- logs ------------------------------------------------------------------------------

LEVEL_NAMES = {int(level): level.label.lower() for level in LogLevel}


def escape_controls(text: str) -> str:
    """Control characters (ANSI escapes, NUL, BEL, …) as visible escapes; keeps \\n and \\t."""
    out = []
    for ch in text:
        if ch in "\n\t" or unicodedata.category(ch)[0] != "C":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def log_line(line: JobLog) -> dict[str, Any]:
    return {
        "id": line.pk,
        "at": line.created_at.isoformat(),
        "level": LEVEL_NAMES.get(line.level, str(line.level)),
        "task": line.task_id,
        "message": escape_controls(line.message),
    }


# --- the generated config form -----------------------------------------------------------


class RunJobTypeForm(forms.Form):
    """Step 1 of "Run a job": the job type, among those the user may create."""

    job_type = forms.ChoiceField(label="Job type", choices=())

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        types = permissions.creatable_types(user)
        self.fields["job_type"].choices = [("", "---------"), *registry.choices(types=types)]


def config_form_class(job_type: registry.JobType) -> type[forms.Form]:
    """A Django form built from the job type's `describe_config()`."""
    fields: dict[str, forms.Field] = {}
    for info in job_type.describe_config():
        fields[info["name"]] = _form_field(info, secret=info["name"] in job_type.secret_fields)
    if job_type.requires_release:
        from releases.models import Release

        fields["release"] = forms.ModelChoiceField(
            queryset=Release.objects.order_by("slug"), required=True
        )
    fields["priority"] = forms.IntegerField(
        min_value=-100, max_value=100, initial=0, help_text="Higher runs first (-100…100)."
    )
    return type(f"{job_type.name}ConfigForm", (forms.Form,), fields)


def _form_field(info: dict[str, Any], *, secret: bool) -> forms.Field:
    required = bool(info.get("required")) and not info.get("allow_null")
    common: dict[str, Any] = {
        "label": info.get("label"),
        "help_text": info.get("help_text", ""),
        "required": required,
    }
    if "default" in info:
        common["initial"] = info["default"]
    kind = info.get("type")
    if kind == "integer":
        return forms.IntegerField(
            min_value=info.get("min_value"), max_value=info.get("max_value"), **common
        )
    if kind == "number":
        return forms.FloatField(
            min_value=info.get("min_value"), max_value=info.get("max_value"), **common
        )
    if kind == "boolean":
        common["required"] = False
        return forms.BooleanField(**common)
    if kind == "choice":
        choices = [(c, c) for c in info.get("choices", [])]
        if not required:
            choices = [("", "---------"), *choices]
        return forms.ChoiceField(choices=choices, **common)
    if kind in ("json", "list", "object"):
        return forms.JSONField(**common)
    widget = forms.PasswordInput(render_value=True) if secret else None
    return forms.CharField(max_length=info.get("max_length"), widget=widget, strip=False, **common)


def config_from_form(job_type: registry.JobType, form: forms.Form) -> dict[str, Any]:
    """The config dict for the serializer: blank optional fields are left to its defaults."""
    config: dict[str, Any] = {}
    for info in job_type.describe_config():
        name = info["name"]
        value = form.cleaned_data.get(name)
        if info["type"] != "boolean" and value in (None, "") and not info.get("required"):
            continue
        config[name] = value
    return config


def validate_into_form(job_type: registry.JobType, form: forms.Form, config: dict) -> dict | None:
    """Run the type's serializer; its errors land on the form's fields. Clean config or None."""
    serializer = job_type.config_serializer(data=config)
    if serializer.is_valid():
        return dict(serializer.data)
    for name, errors in serializer.errors.items():
        target = name if name in form.fields else None
        messages = errors if isinstance(errors, list) else [errors]
        for message in messages:
            form.add_error(target, str(message) if target else f"{name}: {message}")
    return None
