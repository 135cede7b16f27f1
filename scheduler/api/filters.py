"""Filters of GET /api/schedules/: a value that cannot match is a 400 or an empty page."""

from __future__ import annotations

import django_filters

from jobs.api.filters import IdFilter, StrictBooleanFilter

from ..models import Schedule, ScheduleKind


class ScheduleFilter(django_filters.FilterSet):
    enabled = StrictBooleanFilter()
    kind = django_filters.ChoiceFilter(choices=ScheduleKind.choices)
    job_type = django_filters.CharFilter(max_length=100)
    # An id: a release that does not exist matches nothing (not a 400).
    release = IdFilter(field_name="release_id")

    class Meta:
        model = Schedule
        fields = ["enabled", "kind", "job_type", "release"]
