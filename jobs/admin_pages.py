"""Pages of the admin that are no model's: the workers page, and display helpers the
console shares (timestamps with seconds and zone, relative on hover; sizes)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince, timeuntil

from . import selectors


def relative(value: datetime, now: datetime | None = None) -> str:
    """ "3 minutes ago" or "in 2 hours"."""
    now = now or timezone.now()
    if value <= now:
        return f"{timesince(value, now)} ago"
    return f"in {timeuntil(value, now)}"


def timestamp(value: datetime | None, now: datetime | None = None) -> str:
    """A <time> with seconds and the zone; its relative form on hover (title)."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}" class="jd-time">{}</time>',
        value.isoformat(),
        relative(value, now),
        f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}",
    )


def plain_timestamp(value: datetime | None) -> str:
    """The same text as `timestamp`, without markup (JSON for the live pages)."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def human_bytes(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def human_duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def may_view_jobs(request: HttpRequest) -> bool:
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and (user.has_perm("jobs.view_job") or user.has_perm("jobs.change_job"))
    )


def workers_view(site: Any, request: HttpRequest) -> TemplateResponse:
    """/admin/jobs/workers/: each cluster's host, pid, uptime, busy and idle workers,
    the job each runs, last heartbeat and memory. Refreshes itself (refresh.js)."""
    if not may_view_jobs(request):
        raise PermissionDenied
    now = timezone.now()
    clusters = selectors.worker_overview(request.user, now)
    for cluster in clusters:
        cluster["uptime_text"] = human_duration(cluster["uptime"])
        cluster["rss_text"] = human_bytes(cluster["rss_bytes"])
        cluster["heartbeat_html"] = timestamp(cluster["last_heartbeat"], now)
        for worker in cluster["workers"]:
            worker["rss_text"] = human_bytes(worker["rss_bytes"])
            worker["seen_html"] = timestamp(worker["seen_at"], now)
            worker["uptime_text"] = (
                human_duration(now - worker["started_at"]) if worker["started_at"] else "—"
            )
    context = {
        **site.each_context(request),
        "title": "Workers",
        "clusters": clusters,
        "generated": now,
        "stale_seconds": int(settings.JOBDECK_STALE_SECONDS),
        "totals": {
            "clusters": sum(1 for c in clusters if c["alive"]),
            "busy": sum(c["busy"] for c in clusters),
            "idle": sum(c["idle"] for c in clusters),
        },
    }
    request.current_app = site.name
    return TemplateResponse(request, "admin/jobs/workers.html", context)


# --- audit details: changes as diffs ------------------------------------------------------


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON value as {dotted key: leaf}, so two configs compare key by key."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flat(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "(value)": value}


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, cls=DjangoJSONEncoder)


def diff_lines(old: Any, new: Any, prefix: str = "") -> list[tuple[str, str]]:
    """("-", "key: old") / ("+", "key: new") lines for what differs between two values."""
    before, after = _flat(old, prefix), _flat(new, prefix)
    lines: list[tuple[str, str]] = []
    for key in sorted(set(before) | set(after)):
        if key in before and key in after and before[key] == after[key]:
            continue
        if key in before:
            lines.append(("-", f"{key}: {_shown(before[key])}"))
        if key in after:
            lines.append(("+", f"{key}: {_shown(after[key])}"))
    return lines


def audit_diff(detail: dict) -> list[tuple[str, str]]:
    """The changes an audit event records as diff lines: a retry's config
    ({"config": {"old", "new"}}) or a schedule's and release's fields
    ({"changes": {field: {"old", "new"}}})."""
    lines: list[tuple[str, str]] = []
    for key, change in sorted((detail or {}).items()):
        if isinstance(change, dict) and set(change) == {"old", "new"}:
            lines += diff_lines(change["old"], change["new"], key)
    for field, change in sorted(((detail or {}).get("changes") or {}).items()):
        if isinstance(change, dict) and set(change) == {"old", "new"}:
            lines += diff_lines(change["old"], change["new"], field)
    return lines


def detail_html(detail: dict) -> str:
    """An audit event's detail: its changes as a diff, the rest as key: value."""
    if not detail:
        return "—"
    lines = audit_diff(detail)
    rest = {
        k: v
        for k, v in detail.items()
        if k != "changes" and not (isinstance(v, dict) and set(v) == {"old", "new"})
    }
    diff = (
        format_html(
            '<pre class="jd-diff">{}</pre>',
            format_html_join(
                "",  # each line is a block: no newline between them inside the <pre>
                '<span class="jd-diff-{}">{} {}</span>',
                (("del" if sign == "-" else "add", sign, text) for sign, text in lines),
            ),
        )
        if lines
        else ""
    )
    other = (
        format_html(
            '<span class="jd-detail">{}</span>',
            "; ".join(f"{k}: {_shown(v)}" for k, v in sorted(rest.items())),
        )
        if rest
        else ""
    )
    return format_html("{}{}", diff, other) or "—"
