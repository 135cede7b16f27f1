"""Pagination shared by every list endpoint: cursor-based, so no COUNT(*) over millions."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


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

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        choices: dict[str, str] = getattr(view, "cursor_orderings", {}) or {}
        requested = request.query_params.get(self.ordering_query_param)
        if requested in choices:
            return (choices[requested],)
        return super().get_ordering(request, queryset, view)
