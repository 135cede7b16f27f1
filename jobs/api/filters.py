"""Filters of GET /api/jobs/; every one is served by an index on the Job table."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from jobs import search
from jobs.inputs import MAX_ID, in_utc, parse_id
from jobs.models import Job, JobStatus
from jobs.tags import MAX_TAG_LENGTH


class StatusListField(forms.CharField):
    """`status=pending,running`: comma-separated, each a known status."""

    def clean(self, value: str | None) -> list[str] | None:
        value = super().clean(value)
        if not value:
            return None
        statuses = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [s for s in statuses if s not in JobStatus.values]
        if unknown:
            raise forms.ValidationError(
                f"Unknown status {', '.join(unknown)}; use {', '.join(JobStatus.values)}."
            )
        return statuses


class StatusListFilter(django_filters.Filter):
    field_class = StatusListField

    def filter(self, qs: QuerySet, value: list[str] | None) -> QuerySet:
        return qs.filter(status__in=value) if value else qs


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time in any offset, compared in UTC: PostgreSQL stores no offset
    beyond ±15:59, and 9999-12-31T23:59-05:00 is past year 9999 in UTC (a 400)."""

    default_error_messages = {"out_of_range": "Out of range once converted to UTC."}

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        utc = in_utc(value)
        if utc is None:
            raise forms.ValidationError(self.error_messages["out_of_range"], "out_of_range")
        return utc


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class IdField(forms.IntegerField):
    """A database id: ASCII digits, 1 … 2**63-1 (else a 400, not an overflow below)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


@extend_schema_field(ID_SCHEMA)
class IdFilter(django_filters.NumberFilter):
    field_class = IdField


class StrictBooleanField(forms.Field):
    """`true`/`false` (or 1/0); anything else is a 400, not "no filter" as
    django-filter's NullBooleanField would read it."""

    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        try:
            return self.VALUES[str(value).strip().lower()]
        except KeyError:
            raise forms.ValidationError("Use true or false.", "invalid") from None


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


@extend_schema_field({"type": "string", "minLength": search.LOG_MIN, "maxLength": search.LOG_MAX})
class LogTextFilter(django_filters.CharFilter):
    """`log_contains=disk full`: 3 to 200 characters (a trigram index needs three)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_length", search.LOG_MIN)
        kwargs.setdefault("max_length", search.LOG_MAX)
        super().__init__(**kwargs)


class ConfigSearchBackend:
    """`?config.<key>=<JSON value>` (any number of them): jobs whose config holds that
    value at that key (jobs.search.filter_config). Not a FilterSet filter, since the
    parameter names are open-ended; the pagination accepts every name with the
    view's `query_param_prefixes`."""

    def filter_queryset(self, request, queryset: QuerySet, view) -> QuerySet:
        for name in sorted(request.query_params):
            if not name.startswith(search.CONFIG_PREFIX):
                continue
            raw = request.query_params.get(name, "")
            if "\x00" in name or "\x00" in raw:
                raise forms.ValidationError({name: ["NUL characters are not allowed."]})
            path = search.parse_config_key(name[len(search.CONFIG_PREFIX) :], field=name)
            queryset = search.filter_config(
                queryset, path, search.parse_json_value(raw, field=name)
            )
        return queryset

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return []  # described in the list's documentation: OpenAPI has no open names


class JobFilter(django_filters.FilterSet):
    status = StatusListFilter(help_text="Comma-separated statuses, e.g. `pending,running`.")
    job_type = django_filters.CharFilter(max_length=100)
    release = IdFilter(field_name="release_id")
    release_id = IdFilter(field_name="release_id", help_text="Alias of `release`.")
    schedule = IdFilter(field_name="schedule_id")
    created_by = django_filters.CharFilter(
        method="filter_created_by", max_length=150, help_text="A username or a user id."
    )
    user_id = IdFilter(field_name="created_by_id", help_text="Alias of `created_by` (a user id).")
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")
    tag = django_filters.CharFilter(
        method="filter_tag", max_length=MAX_TAG_LENGTH, help_text="Jobs carrying this tag."
    )
    log_contains = LogTextFilter(
        method="filter_log_contains",
        help_text="Jobs with a log line containing this text (case-insensitive, 3-200 "
        "characters; on SQLite among the newest log lines only).",
    )
    # Served by the cursor pagination as id order (ids follow creation): a unique,
    # indexed key, so pages stay cheap at any depth. See JobdeckCursorPagination.
    ordering = django_filters.ChoiceFilter(
        choices=[("created_at", "oldest first"), ("-created_at", "newest first")],
        method="filter_noop",
    )

    class Meta:
        model = Job
        fields = [
            "status",
            "job_type",
            "release",
            "release_id",
            "schedule",
            "created_by",
            "user_id",
            "created_after",
            "created_before",
            "tag",
            "log_contains",
            "ordering",
        ]

    def filter_created_by(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        """A user id (ASCII digits) or a username; anything else matches no one."""
        user_id = parse_id(value)
        if user_id is not None:
            return qs.filter(created_by_id=user_id)
        if value.isascii() and value.isdigit():  # an id too large to exist
            return qs.none()
        return qs.filter(created_by__username=value)

    def filter_tag(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return search.filter_tag(qs, value) if value else qs

    def filter_log_contains(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return search.filter_log_text(qs, value) if value else qs

    def filter_noop(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs
