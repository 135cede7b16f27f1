"""Helpers of the jobs admin: the estimated paginator, the generated config form, log
line formatting (the rights are jobs.permissions'). The ModelAdmin in `jobs/admin.py`
stays a thin caller of services.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
import unicodedata
from datetime import date
from typing import Any, NoReturn

from django import forms
from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections
from django.db.models import Count, DateTimeField, Field, Max, Min, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.text import capfirst

from . import permissions, registry
from .engine import queries
from .inputs import in_utc, parse_id
from .models import Job, JobLog, JobStatus, LogLevel
from .queues import known_queues
from .selectors import waiting_reasons
from .services import TIMEOUT_MAX_SECONDS

# --- read-only records -------------------------------------------------------------


class ReadOnlyAdminMixin:
    """Records nobody edits through the admin (history, immutable versions): view only."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- changelists that hostile query strings cannot break ------------------------------------


class CheckedLookupsMixin(ChangeList):
    """A changelist that checks its query string before any of it reaches the database.

    Refused, with a message, as Django refuses a lookup it cannot apply (a redirect
    to the bare list): a NUL anywhere (PostgreSQL cannot compare text with one), a
    date or time that is outside years 1-9999 once in UTC (an offset of +19:34 is
    readable, but neither database stores it), a date hierarchy year past 9998
    (Django's own drill-down adds a year to it). Date-time values are compared in UTC.
    Installed on every registered ModelAdmin by `check_changelist_lookups`.
    """

    def __init__(self, request, *args: Any, **kwargs: Any) -> None:
        self._request = request
        super().__init__(request, *args, **kwargs)

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        hierarchy = self.date_hierarchy
        parts = {f"{hierarchy}__{part}": part for part in _HIERARCHY_BOUNDS} if hierarchy else {}
        for key, values in lookup_params.items():
            clean = []
            for value in values:
                if "\x00" in key or "\x00" in value:
                    self._refuse(key, value, "it contains a NUL character")
                part = parts.get(key)
                if part is not None:
                    low, high = _HIERARCHY_BOUNDS[part]
                    if not (_DIGITS.fullmatch(value) and low <= int(value) <= high):
                        self._refuse(key, value, f"not a {part} from {low} to {high}")
                clean.append(self._in_utc(key, value))
            lookup_params[key] = clean
        return lookup_params

    def _in_utc(self, key: str, value: str) -> str:
        """A date-time lookup value as UTC ISO 8601 (others unchanged)."""
        field, lookups = _field_of(self.model, key)
        if not isinstance(field, DateTimeField) or lookups not in ([], ["exact"], *_RANGE):
            return value
        try:
            parsed = field.to_python(value)
        except Exception:  # unreadable: the filter itself refuses it
            return value
        utc = in_utc(parsed) if parsed is not None else None
        if utc is None:
            self._refuse(key, value, "outside the years 1-9999 in UTC")
        return utc.isoformat()

    def _refuse(self, key: str, value: str, why: str) -> NoReturn:
        shown = value.replace("\x00", "\\x00")[:40]
        messages.warning(self._request, f"Ignored the filter {key}={shown!r}: {why}.")
        raise IncorrectLookupParameters(f"{key}: {why}")


_RANGE = (["gt"], ["gte"], ["lt"], ["lte"])
_DIGITS = re.compile(r"[0-9]{1,4}")
# The date hierarchy's parts (Django's drill-down adds a year, a month or a day).
_HIERARCHY_BOUNDS = {"year": (1, 9998), "month": (1, 12), "day": (1, 31)}


def _field_of(model: type, key: str) -> tuple[Field | None, list[str]]:
    """The model field a lookup key names and the lookups after it."""
    parts = key.split(LOOKUP_SEP)
    for n in range(len(parts), 0, -1):
        try:
            fields = get_fields_from_path(model, LOOKUP_SEP.join(parts[:n]))
        except (FieldDoesNotExist, NotRelationField):
            continue
        return fields[-1], parts[n:]
    return None, []


@functools.cache
def _checked(base: type[ChangeList]) -> type[ChangeList]:
    if issubclass(base, CheckedLookupsMixin):
        return base
    return type(f"Checked{base.__name__}", (CheckedLookupsMixin, base), {})


def check_changelist_lookups(site) -> None:
    """Make every ModelAdmin registered on `site` (Jobdeck's and other apps': auth,
    django-q2, knox) use a CheckedLookupsMixin changelist. Called once the admin has
    autodiscovered every app's registrations (JobsConfig.ready)."""
    for model_admin in site._registry.values():
        if getattr(model_admin, "_checked_lookups", False):
            continue
        original = model_admin.get_changelist

        def get_changelist(request, _original=original, **kwargs):
            return _checked(_original(request, **kwargs))

        model_admin.get_changelist = get_changelist
        model_admin._checked_lookups = True


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
    object_list: QuerySet[Any]  # a ModelAdmin's changelist pages a queryset

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.estimated = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        connection = connections[qs.db]
        if connection.vendor == "postgresql" and not qs.query.where:
            table = connection.ops.quote_name(qs.model._meta.db_table)
            rows, _ = queries.execute("estimated_rows", {"table": table})
            estimate = rows[0]["estimate"] if rows else None
            if estimate is not None and estimate >= self.estimate_from:
                self.estimated = True
                return int(estimate)
        counted = qs.order_by()[: self.cap + 1].count()
        if counted > self.cap:
            self.estimated = True
            return self.cap
        return counted


# The job list's state tabs: (state, label, what it holds). "waiting", "scheduled" and
# "retrying" are pending jobs: due now, delayed by run_after, and delayed after a failure.
STATE_PARAM = "state"
STATES = (
    ("running", "Running", "claimed by a worker"),
    ("waiting", "Waiting", "pending and due: starts when a worker is free"),
    ("scheduled", "Scheduled", "pending with a start time in the future"),
    ("retrying", "Retrying", "pending again after a failed attempt"),
    ("failed", "Failed", "failed for good (retry them)"),
    ("cancelled", "Cancelled", "cancelled by a person"),
    ("completed", "Completed", "every task succeeded"),
    ("draft", "Drafts", "analysed, not submitted"),
)


def state_filter(state: str, now=None) -> Q | None:
    """The rows of a state tab, as a filter on Job."""
    now = now or timezone.now()
    due = Q(run_after__isnull=True) | Q(run_after__lte=now)
    pending = Q(status=JobStatus.PENDING)
    return {
        "running": Q(status=JobStatus.RUNNING),
        "waiting": pending & due,
        "scheduled": pending & Q(run_after__gt=now),
        "retrying": pending & Q(attempts__gt=0),
        "failed": Q(status=JobStatus.FAILED),
        "cancelled": Q(status=JobStatus.CANCELLED),
        "completed": Q(status=JobStatus.COMPLETED),
        "draft": Q(status=JobStatus.DRAFT),
    }.get(state)


def capped_status_counts(jobs: QuerySet[Job], cap: int) -> dict[str, int]:
    """Rows per status, each counted up to `cap` + 1 only, in one query: per status a
    `COUNT(*)` over `… WHERE status = s LIMIT cap + 1`, which stops early on the
    (status, id) index. A GROUP BY status walks the whole index instead: 2.6 s at
    10,000,000 jobs (docs/benchmarks.md, issue 21)."""
    parts, params = [], []
    for status in JobStatus.values:
        rows = jobs.filter(status=status).order_by().values("pk")[: cap + 1]
        sql, sql_params = rows.query.sql_with_params()
        parts.append(f"SELECT %s, (SELECT COUNT(*) FROM ({sql}) capped)")
        params += [status, *sql_params]
    with connections[jobs.db].cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {status: n for status, n in cursor.fetchall() if n}


def state_counts(jobs: QuerySet[Job], now=None) -> dict[str, int]:
    """Jobs per state tab in two queries: the rows per status, each counted up to
    EstimatedCountPaginator.cap + 1 (a tab shows "10,000+" past it), then the pending
    rows alone, counted exactly and split by run_after and attempts."""
    now = now or timezone.now()
    by_status = capped_status_counts(jobs, EstimatedCountPaginator.cap)
    pending = jobs.filter(status=JobStatus.PENDING).aggregate(
        total=Count("pk"),
        scheduled=Count("pk", filter=Q(run_after__gt=now)),
        retrying=Count("pk", filter=Q(attempts__gt=0)),
    )
    by_status[JobStatus.PENDING] = pending["total"]
    return {
        "all": sum(by_status.values()),
        "running": by_status.get(JobStatus.RUNNING, 0),
        "waiting": pending["total"] - pending["scheduled"],
        "scheduled": pending["scheduled"],
        "retrying": pending["retrying"],
        "failed": by_status.get(JobStatus.FAILED, 0),
        "cancelled": by_status.get(JobStatus.CANCELLED, 0),
        "completed": by_status.get(JobStatus.COMPLETED, 0),
        "draft": by_status.get(JobStatus.DRAFT, 0),
    }


class JobChangeList(CheckedLookupsMixin, ChangeList):
    """Defers the heavy columns and draws a date hierarchy without DISTINCT scans."""

    heavy_fields = ("config", "result", "error", "analysis")

    def get_queryset(self, request, exclude_parameters=None):
        return super().get_queryset(request, exclude_parameters).defer(*self.heavy_fields)

    def get_results(self, request) -> None:
        super().get_results(request)
        reasons = waiting_reasons(self.result_list)
        for job in self.result_list:
            job.waiting_note = reasons.get(job.pk, "")
        self.state_counts = state_counts(self.root_queryset)

    def _tab_count(self, state: str) -> int | str:
        """A state's count, or "10,000+" past the cap (for All: the paginator's figure,
        the planner's estimate on a big unfiltered table)."""
        cap = EstimatedCountPaginator.cap
        count = self.state_counts.get(state, 0)
        if state == "all" and count > cap:
            paginator = EstimatedCountPaginator(self.root_queryset, 1)
            if paginator.count > cap:
                return f"≈{paginator.count:,}"
        return f"{cap:,}+" if count > cap else count

    def state_tabs(self) -> list[dict[str, Any]]:
        """The state tabs above the list (Sidekiq's Busy/Enqueued/Retries/Scheduled/Dead),
        each with its count and a link keeping the other filters."""
        current = self.params.get(STATE_PARAM) or ""
        if isinstance(current, list):
            current = current[-1] if current else ""
        tabs = [{"state": "", "label": "All", "count": self._tab_count("all")}]
        tabs += [
            {"state": state, "label": label, "count": self._tab_count(state)}
            for state, label, _help in STATES
        ]
        for tab in tabs:
            tab["current"] = tab["state"] == current
            tab["link"] = (
                self.get_query_string({STATE_PARAM: tab["state"]}, ["p", "status__exact"])
                if tab["state"]
                else self.get_query_string({}, [STATE_PARAM, "p", "status__exact"])
            )
        return tabs

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
        field = self.fields["job_type"]
        assert isinstance(field, forms.ChoiceField)  # declared above
        field.choices = [("", "---------"), *registry.choices(types=types)]


def config_form_class(job_type: registry.JobType, *, config_only: bool = False) -> type[forms.Form]:
    """A Django form built from the job type's `describe_config()`; with `config_only`,
    without the release and priority (a retry keeps those, a schedule has its own)."""
    fields: dict[str, forms.Field] = {}
    for info in job_type.describe_config():
        fields[info["name"]] = _form_field(info, secret=info["name"] in job_type.secret_fields)
    if config_only:
        return type(f"{job_type.name}ConfigForm", (forms.Form,), fields)
    if job_type.requires_release:
        # The release model through Job's field: jobs imports nothing of the app.
        releases = Job._meta.get_field("release").related_model._default_manager
        fields["release"] = forms.ModelChoiceField(
            queryset=releases.order_by("slug"), required=True
        )
    fields["priority"] = forms.IntegerField(
        min_value=-100, max_value=100, initial=0, help_text="Higher runs first (-100…100)."
    )
    fields["timeout_seconds"] = forms.IntegerField(
        label="Timeout (seconds)",
        min_value=1,
        max_value=TIMEOUT_MAX_SECONDS,
        required=False,
        help_text=(
            "Past it the running attempt is interrupted and fails “timed out after N s” "
            "(or is retried). Blank: "
            + (
                f"the type's default ({job_type.timeout_seconds} s)."
                if job_type.timeout_seconds
                else "no timeout."
            )
        ),
    )
    # Named apart from any config field (a type's config may have a "queue").
    fields["run_queue"] = forms.ChoiceField(
        label="Queue",
        choices=[(q, q) for q in sorted(known_queues())],
        initial="default",
        required=False,
        help_text="The queue it runs in (its cluster, its flow rules).",
    )
    fields["run_unique_key"] = forms.CharField(
        label="Unique key",
        max_length=200,
        required=False,
        help_text="While a job with this key is pending or running, nothing new is created.",
    )
    # Not "tags": a job type's config may have a field of that name.
    fields[TAGS_FIELD] = forms.CharField(
        label="Tags",
        required=False,
        max_length=1100,
        help_text="Separated by commas or spaces; find them with tag:NAME in the job search.",
    )
    fields["run_depends_on"] = DependsOnField(
        label="Depends on",
        required=False,
        help_text="Job ids (12, 13 or #12 #13): this job waits until each of them completed.",
    )
    fields["run_on_parent_failure"] = forms.ChoiceField(
        label="On parent failure",
        choices=[
            ("cancel", "cancel: a parent that fails or is cancelled cancels this job"),
            ("run", "run: this job runs once every parent ended, whatever happened"),
        ],
        initial="cancel",
        required=False,
    )
    return type(f"{job_type.name}ConfigForm", (forms.Form,), fields)


TAGS_FIELD = "job_tags"
# The Run form's own fields, named apart from any config field, by job_create's names.
RUN_FIELDS = {
    "queue": "run_queue",
    "unique_key": "run_unique_key",
    "depends_on": "run_depends_on",
    "on_parent_failure": "run_on_parent_failure",
}


class DependsOnField(forms.CharField):
    """Job ids separated by commas or spaces (a leading # allowed), as a list of ints."""

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        text = super().to_python(value) or ""
        ids: list[int] = []
        for token in re.split(r"[\s,]+", text):
            if not token:
                continue
            job_id = parse_id(token.removeprefix("#"))
            if job_id is None:
                raise forms.ValidationError(f"{token!r} is not a job id.", code="invalid")
            if job_id not in ids:
                ids.append(job_id)
        return ids


def tags_from_form(form: forms.Form) -> list[str]:
    """The Run form's tags field as a list (jobs.tags validates each)."""
    return [t for t in re.split(r"[\s,]+", form.cleaned_data.get(TAGS_FIELD) or "") if t]


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
