"""Workflows in the admin: the list, the workflow page (its graph drawn as server-side
SVG, recoloured live by workflow_live.js), Cancel and Retry, and the parents and
children a job page lists.

A thin caller of jobs.workflows (via="admin"): a refused cancel or retry is a
message, never a 500.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from . import permissions, workflows
from .admin_pages import timestamp
from .admin_views import SafeJSONEncoder
from .exceptions import IllegalTransition, one_line
from .models import ACTIVE_STATUSES, Job, JobDependency, JobStatus, Workflow

S = JobStatus
DRAW_MAX = 200  # more nodes than this: a summary per layer instead of the drawing
POLL_SECONDS = 2  # the workflow page re-reads its statuses this often while running
LINKS_SHOWN = 50  # parents or children a job page names (a fan-out root has 10,000)
# The drawing's geometry (px): layers are columns, left to right.
BOX_W, BOX_H, COL_GAP, ROW_GAP, PAD = 176, 44, 64, 14, 12
NAME_CHARS = 22


# --- layout -------------------------------------------------------------------------


def layers(ids: Sequence[int], edges: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Longest-path layering: each root at 0, each other job one past its deepest
    parent (Kahn's order, so every parent is placed before its children)."""
    known = set(ids)
    children: dict[int, list[int]] = {i: [] for i in ids}
    waiting = dict.fromkeys(ids, 0)
    for parent, child in edges:
        if parent in known and child in known:
            children[parent].append(child)
            waiting[child] += 1
    layer = dict.fromkeys(ids, 0)
    ready = deque(i for i in ids if waiting[i] == 0)
    while ready:
        node = ready.popleft()
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return layer  # a cycle (workflow_create refuses them) would stay in layer 0


@dataclass(frozen=True)
class Box:
    """A job's box in the drawing: its top-left corner."""

    job: Job
    x: int
    y: int


@dataclass(frozen=True)
class Drawing:
    svg: SafeString
    width: int
    height: int


def _columns(jobs: Sequence[Job], layer: dict[int, int]) -> list[list[Job]]:
    """The jobs per layer, each layer in id order (`jobs` come in id order)."""
    columns: list[list[Job]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for job in jobs:
        columns[layer[job.pk]].append(job)
    return columns


def _short(text: str, size: int = NAME_CHARS) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def draw(jobs: Sequence[Job], edges: Sequence[tuple[int, int]], site_name: str) -> Drawing:
    """The graph as SVG: a box per job (node name, id, type and status, coloured by its
    status through admin.css, a link to its job page), a curve per edge. Each column
    is centred on the tallest one."""
    columns = _columns(jobs, layers([j.pk for j in jobs], edges))
    rows = max((len(c) for c in columns), default=1)
    step_x, step_y = BOX_W + COL_GAP, BOX_H + ROW_GAP
    width = 2 * PAD + len(columns) * step_x - COL_GAP
    height = 2 * PAD + rows * step_y - ROW_GAP
    boxes: dict[int, Box] = {}
    for n, column in enumerate(columns):
        top = PAD + (rows - len(column)) * step_y // 2
        for m, job in enumerate(column):
            boxes[job.pk] = Box(job, PAD + n * step_x, top + m * step_y)
    lines = []
    for parent, child in edges:
        a, b = boxes.get(parent), boxes.get(child)
        if a is None or b is None:
            continue
        x1, y1, x2, y2 = a.x + BOX_W, a.y + BOX_H // 2, b.x - 4, b.y + BOX_H // 2
        middle = (x1 + x2) // 2
        lines.append((parent, child, x1, y1, middle, y1, middle, y2, x2, y2))
    edge_svg = format_html_join(
        "\n",
        '<path class="jd-edge" data-parent="{}" data-child="{}" '
        'd="M{} {} C{} {} {} {} {} {}" marker-end="url(#jd-arrow)"/>',
        lines,
    )
    node_svg = format_html_join(
        "\n",
        '<a href="{}" class="jd-node jd-{}" id="jd-node-{}" data-job="{}" data-status="{}">'
        "<title>{} — job #{} {} ({})</title>"
        '<rect x="{}" y="{}" width="{}" height="{}" rx="6"/>'
        '<text x="{}" y="{}" class="jd-node-name">{}</text>'
        '<text x="{}" y="{}" class="jd-node-info">#{} {} · <tspan class="jd-node-status">{}'
        "</tspan></text></a>",
        (
            (
                reverse("admin:jobs_job_change", args=[b.job.pk], current_app=site_name),
                b.job.status,
                b.job.pk,
                b.job.pk,
                b.job.status,
                b.job.workflow_node,
                b.job.pk,
                b.job.job_type,
                b.job.status,
                b.x,
                b.y,
                BOX_W,
                BOX_H,
                b.x + 8,
                b.y + 18,
                _short(b.job.workflow_node or f"#{b.job.pk}"),
                b.x + 8,
                b.y + 35,
                b.job.pk,
                _short(b.job.job_type, 14),
                b.job.status,
            )
            for b in boxes.values()
        ),
    )
    svg = format_html(
        '<svg class="jd-graph" id="jd-graph" xmlns="http://www.w3.org/2000/svg" '
        'width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<defs><marker id="jd-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="8" '
        'markerHeight="8" orient="auto"><path d="M0 0 L8 4 L0 8 z" class="jd-arrow"/></marker>'
        "</defs>\n{}\n{}\n</svg>",
        width,
        height,
        width,
        height,
        f"the workflow's {len(jobs)} jobs in {len(columns)} layers",
        edge_svg,
        node_svg,
    )
    return Drawing(svg, width, height)


def layer_counts(
    statuses: dict[int, str], edges: Sequence[tuple[int, int]]
) -> list[dict[str, int]]:
    """For a workflow too big to draw: per layer, its jobs' counts by status."""
    ids = sorted(statuses)
    columns: list[dict[str, int]] = []
    for pk, n in layers(ids, edges).items():
        while len(columns) <= n:
            columns.append({})
        counts = columns[n]
        counts[statuses[pk]] = counts.get(statuses[pk], 0) + 1
    return [dict(sorted(c.items())) for c in columns]


def _statuses_and_edges(workflow: Workflow) -> tuple[dict[int, str], list[tuple[int, int]]]:
    """{job id: status} and the edges of a workflow, as plain values (two queries)."""
    statuses = dict(
        Job.objects.filter(workflow=workflow).order_by("pk").values_list("pk", "status")
    )
    edges = list(
        JobDependency.objects.filter(child__workflow=workflow)
        .order_by()
        .values_list("parent_id", "child_id")
    )
    return statuses, edges


def read(workflow: Workflow) -> tuple[workflows.WorkflowStatus, list[dict[str, int]] | None]:
    """The workflow's state, and for one too big to draw (its annotated total past
    DRAW_MAX) its counts per layer, from one read of its jobs' statuses and edges
    (the state's `nodes` left empty: nobody draws them)."""
    if workflow.total <= DRAW_MAX:  # type: ignore[attr-defined]
        return workflows.workflow_status(workflow), None
    statuses, edges = _statuses_and_edges(workflow)
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    state = workflows.WorkflowStatus(
        workflows.aggregate(counts),
        counts.get(S.COMPLETED, 0),
        len(statuses),
        dict(sorted(counts.items())),
        {},
    )
    return state, layer_counts(statuses, edges)


# --- the admin ------------------------------------------------------------------------


def progress_html(done: int, total: int) -> str:
    percent = done * 100 // total if total else 0
    return format_html(
        '<span class="jd-progress" role="progressbar" aria-valuenow="{}" aria-valuemin="0" '
        'aria-valuemax="100"><span class="jd-progress-fill" style="width: {}%"></span></span>'
        ' <span class="jd-progress-text">{} / {}</span>',
        percent,
        percent,
        done,
        total,
    )


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    """Workflows: a list with their status and progress, a read-only page with the
    graph, Cancel and Retry. Visible as the jobs are (visible_workflows)."""

    list_display = ("id", "name", "status_badge", "progress", "created_by", "created_when")
    list_display_links = ("id", "name")
    search_fields = ("=id", "name")
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-id",)
    actions = ()

    class Media:
        css = {"all": ("jobs/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        visible = workflows.visible_workflows(super().get_queryset(request), request.user)
        return workflows.with_counts(visible)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may open the jobs admin sees the workflows (their own, or all).
        user = request.user
        return bool(
            user.is_active and (user.has_perm("jobs.view_job") or user.has_perm("jobs.change_job"))
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created through POST /api/workflows/ (the whole graph at once)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its state is its jobs'; it changes through Cancel and Retry

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="status")
    def status_badge(self, obj: Workflow) -> str:
        status = workflows.status_of(obj)
        return format_html('<span class="jd-badge jd-{}">{}</span>', status, status)

    @admin.display(description="done / total")
    def progress(self, obj: Workflow) -> str:
        return progress_html(obj.done, obj.total)  # type: ignore[attr-defined]

    @admin.display(description="created", ordering="created_at")
    def created_when(self, obj: Workflow) -> str:
        return timestamp(obj.created_at)

    # --- pages -------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def wrap(view):
            return self.admin_site.admin_view(view)

        return [
            path("<path:object_id>/status/", wrap(self.status_view), name="%s_%s_status" % info),
            path(
                "<path:object_id>/cancel/",
                wrap(require_POST(self.cancel_view)),
                name="%s_%s_cancel" % info,
            ),
            path(
                "<path:object_id>/retry/",
                wrap(require_POST(self.retry_view)),
                name="%s_%s_retry" % info,
            ),
            *super().get_urls(),
        ]

    def _visible(self, request: HttpRequest, object_id: str) -> Workflow:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            pk = int(unquote(object_id))
        except ValueError:
            raise Http404("No such workflow.") from None
        workflow = self.get_queryset(request).filter(pk=pk).first()
        if workflow is None:
            raise Http404("No such workflow.")
        return workflow

    def _change_url(self, workflow: Workflow) -> str:
        return reverse(
            "admin:jobs_workflow_change", args=[workflow.pk], current_app=self.admin_site.name
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        """The workflow page: status, progress, Cancel / Retry, the graph (or, past
        DRAW_MAX jobs, a summary per layer)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            workflow = self._visible(request, object_id)
        except Http404:
            # Django's own answer to a missing object: the index, with a message.
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        state, by_layer = read(workflow)
        drawing = None
        summary: list[dict[str, Any]] = []
        if by_layer is None:
            jobs, edges = workflows.graph(workflow)
            drawing = draw(jobs, edges, self.admin_site.name)
        else:
            summary = [
                {"layer": n + 1, "total": sum(c.values()), "counts": c}
                for n, c in enumerate(by_layer)
            ]
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "title": str(workflow),
            "opts": self.opts,
            "original": workflow,
            "state": state,
            "flags": self._flags(request, workflow, state),
            "progress": progress_html(state.done, state.total),
            "created_html": timestamp(workflow.created_at),
            "drawing": drawing,
            "summary": summary,
            "draw_max": DRAW_MAX,
            "poll_ms": POLL_SECONDS * 1000,
            "has_view_permission": True,
            "is_nav_sidebar_enabled": False,  # the graph gets the page's width
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/jobs/workflow/change_form.html", context)

    @staticmethod
    def _flags(
        request: HttpRequest, workflow: Workflow, state: workflows.WorkflowStatus
    ) -> dict[str, bool]:
        manage = permissions.may_act(request.user, Job(created_by_id=workflow.created_by_id))
        active = any(state.counts.get(s) for s in ACTIVE_STATUSES)
        ended = bool(state.counts.get(S.FAILED) or state.counts.get(S.CANCELLED))
        return {"can_cancel": manage and active, "can_retry": manage and ended}

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """What the workflow page recolours (workflow_live.js): the status, the counts,
        and each job's status ({id: status}) or, past DRAW_MAX jobs, the counts per
        layer."""
        workflow = self._visible(request, object_id)
        state, by_layer = read(workflow)
        data: dict[str, Any] = {
            "id": workflow.pk,
            "status": state.status,
            "done": state.done,
            "total": state.total,
            "counts": state.counts,
            "finished": state.status != "running",
            **self._flags(request, workflow, state),
        }
        if by_layer is None:
            data["nodes"] = {str(pk): status for pk, status in state.nodes.values()}
        else:
            data["layers"] = by_layer
        return JsonResponse(data, encoder=SafeJSONEncoder)

    def _button(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponseRedirect:
        workflow = self._visible(request, object_id)
        call = workflows.workflow_cancel if verb == "cancel" else workflows.workflow_retry
        try:
            ids = call(workflow=workflow, user=request.user, via="admin")
        except (IllegalTransition, PermissionDenied, ValidationError) as exc:
            self.message_user(request, f"Refused: {one_line(exc)}.", messages.ERROR)
            return HttpResponseRedirect(self._change_url(workflow))
        # A job cancelled (or put back) along the graph in a parent's name is not among
        # `ids`: the message counts what is left to run.
        left = Job.objects.filter(workflow=workflow, status__in=ACTIVE_STATUSES).count()
        head = f"Workflow #{workflow.pk}: {'cancelled' if verb == 'cancel' else 'retried'}"
        self.message_user(
            request, f"{head} {_jobs(len(ids))}; {_jobs(left)} left to run.", messages.SUCCESS
        )
        self.log_change(request, workflow, f"{verb} via admin")
        return HttpResponseRedirect(self._change_url(workflow))

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        return self._button(request, object_id, "cancel")

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        return self._button(request, object_id, "retry")


def _jobs(n: int) -> str:
    return f"{n} job{'s' if n != 1 else ''}" if n else "no jobs"


# --- the job page: its workflow, parents and children ------------------------------------


def link_statuses(job: Job) -> dict[str, str]:
    """{id: status} of the parents and children a job page lists (job_links), for its
    poll: two queries, asked for only by a page that lists some."""
    parents = JobDependency.objects.filter(child_id=job.pk).order_by("parent_id")
    children = JobDependency.objects.filter(parent_id=job.pk).order_by("child_id")
    rows = [
        *parents.values_list("parent_id", "parent__status"),
        *children.values_list("child_id", "child__status")[:LINKS_SHOWN],
    ]
    return {str(pk): status for pk, status in rows}


def job_links(job: Job, user: Any, site_name: str) -> dict[str, Any]:
    """The job page's "Workflow" section: its workflow, its parents and (the first
    LINKS_SHOWN of) its children, each with its status; a job the user may not see is
    named without a link. Three queries at most, whatever the fan-out."""
    sees_all = permissions.sees_all_jobs(user)

    def rows(edges: QuerySet[JobDependency], side: str) -> list[dict[str, Any]]:
        fields = ("pk", "job_type", "status", "workflow_node", "created_by_id")
        out = []
        for values in edges.values_list("settled", *(f"{side}__{f}" for f in fields)):
            settled, pk, job_type, status, node, owner = values
            visible = sees_all or (owner is not None and owner == user.pk)
            out.append(
                {
                    "id": pk,
                    "job_type": job_type if visible else "",
                    "status": status,
                    "node": node if visible else "",
                    "settled": settled,
                    "url": reverse("admin:jobs_job_change", args=[pk], current_app=site_name)
                    if visible
                    else "",
                }
            )
        return out

    parents = rows(JobDependency.objects.filter(child_id=job.pk).order_by("parent_id"), "parent")
    children_qs = JobDependency.objects.filter(parent_id=job.pk).order_by("child_id")
    children = rows(children_qs[:LINKS_SHOWN], "child")
    more = children_qs.count() - len(children) if len(children) == LINKS_SHOWN else 0
    workflow = None
    if job.workflow_id is not None:
        workflow = {
            "id": job.workflow_id,
            "node": job.workflow_node,
            "url": reverse(
                "admin:jobs_workflow_change", args=[job.workflow_id], current_app=site_name
            ),
        }
    return {
        "workflow": workflow,
        "parents": parents,
        "children": children,
        "more_children": more,
        "on_parent_failure": job.on_parent_failure,
        "show": bool(workflow or parents or children),
    }
