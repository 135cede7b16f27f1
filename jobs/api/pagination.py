"""Pagination shared by every list endpoint: cursor-based, so no COUNT(*) over millions.

It is also where every list endpoint refuses query parameters it does not know: a
misspelt filter (`?relase=3`) is a 400 naming it, never a silently unfiltered list.
"""

from __future__ import annotations

from collections.abc import Iterable

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.settings import api_settings

from jobs.inputs import parse_id


def filter_names(view, queryset) -> set[str]:
    """The query parameters the view's django-filter FilterSet reads (none if it has none)."""
    # DRF applies filter backends to a viewset's `list` only; a custom list action
    # (a release's jobs, a schedule's history) filters nothing.
    if getattr(view, "action", "list") != "list":
        return set()
    names: set[str] = set()
    for backend in getattr(view, "filter_backends", ()):
        if issubclass(backend, DjangoFilterBackend):
            filterset_class = backend().get_filterset_class(view, queryset)
            if filterset_class is not None:
                names.update(filterset_class.base_filters)
    return names


def reject_unknown_query_params(
    request: Request, known: Iterable[str], prefixes: Iterable[str] = ()
) -> None:
    """400 `{"<name>": ["Unknown query parameter; …"]}` for each parameter not in `known`
    and not starting with one of `prefixes` (`config.`: open-ended names)."""
    allowed = {*known, api_settings.URL_FORMAT_OVERRIDE}
    prefixes = tuple(prefixes)
    unknown = sorted(
        name
        for name in set(request.query_params) - allowed
        if not (prefixes and name.startswith(prefixes))
    )
    if unknown:
        accepted = ", ".join([*sorted(a for a in allowed if a), *(f"{p}<key>" for p in prefixes)])
        accepted = accepted or "none"
        message = f"Unknown query parameter; this list accepts: {accepted}."
        raise ValidationError({name: [message] for name in unknown})


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

    def paginate_queryset(self, queryset, request, view=None):
        # Every paginated list passes here, so this is the one place that knows a
        # list's whole vocabulary: its filters plus the pagination's own parameters.
        known = {self.cursor_query_param, self.page_size_query_param}
        if getattr(view, "cursor_orderings", None):
            known.add(self.ordering_query_param)
        prefixes = (
            getattr(view, "query_param_prefixes", ())
            if getattr(view, "action", "list") == "list"
            else ()
        )
        reject_unknown_query_params(request, known | filter_names(view, queryset), prefixes)
        return super().paginate_queryset(queryset, request, view)

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
