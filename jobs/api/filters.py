"""Filters of GET /api/jobs/; every one is served by an index on the Job table."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

from jobs.models import Job, JobStatus


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


class JobFilter(django_filters.FilterSet):
    status = StatusListFilter(help_text="Comma-separated statuses, e.g. `pending,running`.")
    job_type = django_filters.CharFilter(max_length=100)
    release = django_filters.NumberFilter(field_name="release_id", min_value=1)
    release_id = django_filters.NumberFilter(
        field_name="release_id", min_value=1, help_text="Alias of `release`."
    )
    schedule = django_filters.NumberFilter(field_name="schedule_id", min_value=1)
    created_by = django_filters.CharFilter(
        method="filter_created_by", max_length=150, help_text="A username or a user id."
    )
    user_id = django_filters.NumberFilter(
        field_name="created_by_id", min_value=1, help_text="Alias of `created_by` (a user id)."
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
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
            "ordering",
        ]

    def filter_created_by(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        if value.isdigit():
            return qs.filter(created_by_id=int(value))
        return qs.filter(created_by__username=value)

    def filter_noop(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs
