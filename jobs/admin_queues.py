"""The admin's Queues page (/admin/jobs/queues/): every queue's and job type's flow
rules and figures, live, with Pause/Resume and limits (jobs.flow reads, jobs.flow_changes
writes: the API and the CLI call the same)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from . import flow, flow_changes, permissions
from .exceptions import one_line
from .models import FlowScope

LIMIT_FIELDS = ("concurrency_limit", "rate_limit", "rate_period_seconds", "timeout_seconds")


def context(request: HttpRequest) -> dict[str, Any]:
    return {
        "jd_queues": flow.queue_figures(),
        "jd_types": flow.type_figures(),
        "jd_generated": timezone.localtime(),
        "jd_may_manage": permissions.may_manage_queues(request.user),
        "jd_changelist": reverse("admin:jobs_job_changelist"),
    }


@require_http_methods(["GET", "POST"])
def queues_view(request: HttpRequest, site: Any) -> HttpResponse:
    """GET: the page (`?fragment=1`: its figures, re-fetched every 2 s). POST: pause,
    resume or set limits of one queue or job type."""
    user = request.user
    if not (permissions.may_manage_queues(user) or permissions.sees_all_jobs(user)):
        raise PermissionDenied
    if request.method == "POST":
        return _change(request)
    if request.GET.get("fragment"):
        return TemplateResponse(request, "admin/jobs/queues_figures.html", context(request))
    return TemplateResponse(
        request,
        "admin/jobs/queues.html",
        {**site.each_context(request), **context(request), "title": "Queues and job types"},
    )


def _change(request: HttpRequest) -> HttpResponse:
    scope = request.POST.get("scope", "")
    name = request.POST.get("name", "")
    what = request.POST.get("action", "")
    label = "queue" if scope == FlowScope.QUEUE else "job type"
    try:
        if what in ("pause", "resume"):
            changes: dict[str, Any] = {"paused": what == "pause"}
        elif what == "set":
            changes = _limits(request)
        else:
            raise ValidationError({"action": [f"Unknown action {what!r}."]})
        flow_changes.update(scope=scope, name=name, changes=changes, user=request.user, via="admin")
    except (ValidationError, PermissionDenied) as exc:
        text = one_line(exc) if isinstance(exc, ValidationError) else str(exc)
        messages.error(request, f"Nothing changed for {label} {name}: {text}")
    else:
        done = {"pause": "paused", "resume": "resumed", "set": "updated"}[what]
        messages.success(request, f"The {label} {name} is {done}.")
    return HttpResponseRedirect(reverse("admin:jobs_queues"))


def _limits(request: HttpRequest) -> dict[str, Any]:
    """The limit fields of the form: empty means back to the default (null)."""
    changes: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in LIMIT_FIELDS:
        if field not in request.POST:
            continue
        raw = request.POST[field].strip()
        if raw == "":
            changes[field] = None
            continue
        try:
            changes[field] = int(raw)
        except ValueError:
            errors[field] = [f"{raw!r} is not a whole number."]
    if errors:
        raise ValidationError(errors)
    return changes
