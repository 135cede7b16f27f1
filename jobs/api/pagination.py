"""Pagination shared by every list endpoint: cursor-based, so no COUNT(*) over millions."""

from rest_framework.pagination import CursorPagination


class JobdeckCursorPagination(CursorPagination):
    """`{"next", "previous", "results"}`; `?page_size=` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"
