"""Pagination shared by every list endpoint: cursor-based, so no COUNT(*) over millions."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination

from jobs.inputs import parse_id


class JobdeckCursorPagination(CursorPagination):
    """`{"next", "previous", "results"}`; `?page_size=` up to 200.

    A view may set `cursor_orderings = {"<ordering param value>": "<field>", …}` to
    let `?ordering=` pick among unique, indexed keys (the cursor needs one).
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"
    ordering_query_param = "ordering"

    def get_page_size(self, request) -> int:
        """`?page_size=`: a whole number from 1 (larger than 200 is capped); else a 400."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        size = parse_id(raw.strip())
        if size is None:
            raise ValidationError({self.page_size_query_param: ["A whole number from 1."]})
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        choices: dict[str, str] = getattr(view, "cursor_orderings", {}) or {}
        requested = request.query_params.get(self.ordering_query_param)
        if requested in choices:
            return (choices[requested],)
        return super().get_ordering(request, queryset, view)
