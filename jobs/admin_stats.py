"""The admin's statistics page: runs, failure rate and duration percentiles per job type,
queue or schedule, as server-drawn SVG bars (no script, no CDN). Reads jobs.stats."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.response import TemplateResponse

from . import stats

BAR_WIDTH = 160
LABELS = {"job-types": "Job types", "queues": "Queues", "schedules": "Schedules"}


def _bar(value: float | None, top: float) -> dict[str, Any]:
    width = 0.0 if not value or not top else max(1.0, BAR_WIDTH * value / top)
    return {"value": value, "width": round(width, 1)}


def stats_context(request: HttpRequest, by: str, window: str) -> dict[str, Any]:
    """The page's rows: each figure with the width of its bar (scaled to the largest)."""
    data = stats.cached_job_stats(user=request.user, by=by, window=window)
    rows = data["results"]
    top_runs = max((r["runs"] for r in rows), default=0)
    top_duration = max((r["duration_seconds"]["p99"] or 0 for r in rows), default=0)
    for row in rows:
        row["runs_bar"] = _bar(row["runs"], top_runs)
        rate = row["failure_rate"]
        row["failure_bar"] = _bar(rate, 1.0)
        row["failure_percent"] = None if rate is None else round(100 * rate, 1)
        row["duration_bars"] = [
            {"name": name, **_bar(row["duration_seconds"][name], top_duration)}
            for name in ("p50", "p90", "p95", "p99")
        ]
    return {
        "stats": data,
        "rows": rows,
        "by": by,
        "window": window,
        "dimensions": list(LABELS.items()),
        "windows": list(stats.WINDOWS),
        "bar_width": BAR_WIDTH,
    }


def stats_view(model_admin: Any, request: HttpRequest) -> TemplateResponse:
    by = request.GET.get("by") or ""
    by = by if by in stats.DIMENSIONS else "job-types"
    window = request.GET.get("window") or ""
    window = window if window in stats.WINDOWS else "24h"
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Statistics: {LABELS[by].lower()}, last {window}",
        "opts": model_admin.opts,
        **stats_context(request, by, window),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/jobs/job/stats.html", context)


def stats_panel(user: Any, now: Any) -> dict[str, Any]:
    """The dashboard's link to the page (jobs.extensions): no query."""
    return {"template": "admin/jobs/dashboard_stats_link.html"}
