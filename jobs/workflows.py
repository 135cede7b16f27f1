"""Workflows: a graph of jobs created in one call, each waiting for the jobs it names.

`{"name": …, "jobs": {"<node>": {<a job spec as for POST /api/jobs/>, "after": […]}}}`
is validated as a whole (node names, unknown names in `after`, cycles, each node's
config and the caller's right to run its type) and written in one transaction: the
jobs in an order where every parent precedes its children (so ids follow the graph),
then the edges. The jobs then run by the dependency rules of jobs.engine.dependencies;
a workflow's status is its jobs'. Every front door (API, admin, schedules) comes here.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from . import broker, engine, permissions, services
from .engine import dependencies
from .exceptions import IllegalTransition, validation_errors
from .models import ACTIVE_STATUSES, AuditAction, Job, JobDependency, JobStatus, Workflow

S = JobStatus
MAX_JOBS = 20_000
MAX_NAME = 100
NODE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
NODE_NAME_HELP = "letters, digits, and _ . : - (at most 100 characters)"


@dataclass(frozen=True)
class WorkflowStatus:
    """A workflow's state, from its jobs: `status` is running while any job is pending
    or running, else completed when all completed, else failed when any failed, else
    cancelled; `done` counts the completed jobs of `total`; `nodes` maps each node
    to (job id, status)."""

    status: str
    done: int
    total: int
    counts: dict[str, int]
    nodes: dict[str, tuple[int, str]]


def _order(jobs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The node names, parents before children (Kahn's algorithm, ties by name: the
    jobs' ids follow the graph and a node's name orders it among its peers), or
    ValidationError naming unknown parents or the nodes of a cycle."""
    errors: dict[str, dict[str, list[str]]] = {}
    after: dict[str, list[str]] = {}
    for name, spec in jobs.items():
        parents = spec.get("after", [])
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            errors[name] = {"after": ["after must be a list of node names."]}
            continue
        unknown = sorted({p for p in parents if p not in jobs})
        if unknown:
            errors[name] = {"after": [f"Unknown node(s): {', '.join(unknown)}."]}
        elif name in parents:
            errors[name] = {"after": ["A job cannot wait for itself."]}
        after[name] = sorted(set(parents))
    if errors:
        raise services.BulkValidationError(errors)
    waiting = {name: len(parents) for name, parents in after.items()}
    children: dict[str, list[str]] = {name: [] for name in after}
    for name, parents in after.items():
        for parent in parents:
            children[parent].append(name)
    ready = sorted(name for name, n in waiting.items() if n == 0)  # a sorted list is a heap
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(after):
        cycle = sorted(name for name, n in waiting.items() if n > 0)
        shown = ", ".join(cycle[:10]) + (", …" if len(cycle) > 10 else "")
        raise ValidationError({"jobs": [f"The jobs form a cycle: {shown}."]})
    return order


def _shape(spec: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """The workflow's name and nodes, checked for shape; ValidationError otherwise."""
    if not isinstance(spec, Mapping):
        raise ValidationError({"jobs": ["A workflow is a JSON object with a jobs object."]})
    name = spec.get("name") or ""
    if not isinstance(name, str) or len(name) > 200:
        raise ValidationError({"name": ["name must be a string of at most 200 characters."]})
    jobs = spec.get("jobs")
    if not isinstance(jobs, Mapping) or not jobs:
        raise ValidationError({"jobs": ["jobs must be an object of at least one named job."]})
    if len(jobs) > MAX_JOBS:
        raise ValidationError({"jobs": [f"At most {MAX_JOBS} jobs per workflow."]})
    bad = [n for n in jobs if not isinstance(n, str) or not NODE_NAME.match(n)]
    if bad:
        raise ValidationError({"jobs": [f"Bad node name {bad[0]!r}: {NODE_NAME_HELP}."]})
    if not all(isinstance(node, Mapping) for node in jobs.values()):
        raise ValidationError({"jobs": ["Each job is a JSON object (a job spec)."]})
    return name, {n: dict(node) for n, node in jobs.items()}


def _release(ref: Any) -> Any:
    """A node's release: as given if already one (or None), else by id or slug (a spec
    is JSON); ValidationError when there is none."""
    releases = Job._meta.get_field("release").related_model
    if ref is None or isinstance(ref, releases):
        return ref
    found = None
    if isinstance(ref, int) and not isinstance(ref, bool):
        found = releases._default_manager.filter(pk=ref).first()
    elif isinstance(ref, str) and ref:
        found = releases._default_manager.filter(slug=ref).first()
    if found is None:
        raise ValidationError({"release": [f"There is no release {ref!r} (give its id or slug)."]})
    return found


def _items(
    jobs: Mapping[str, Mapping[str, Any]], order: list[str], build: services.BulkBuilder
) -> dict[str, services.BulkItem]:
    """Each node's job validated (in `order`), or BulkValidationError naming each bad one."""
    errors: dict[str, dict[str, list[str]]] = {}
    items: dict[str, services.BulkItem] = {}
    for node in order:
        node_spec = {k: v for k, v in jobs[node].items() if k != "after"}
        if node_spec.get("unique_key") or node_spec.get("depends_on"):
            errors[node] = {"unique_key": ["A workflow's jobs take no unique_key or depends_on."]}
            continue
        try:
            node_spec["release"] = _release(node_spec.get("release"))
            items[node] = build(node_spec)
        except ValidationError as exc:
            errors[node] = validation_errors(exc)
    if errors:
        raise services.BulkValidationError(errors)
    return items


def validate_spec(spec: Any, user: Any = None) -> None:
    """Check `spec` as workflow_create would, writing nothing (a schedule that fires it
    validates it when saved): the same ValidationError, BulkValidationError or
    JobTypeDenied (`user` None: Jobdeck itself, no right checked)."""
    _, jobs = _shape(spec)
    _items(jobs, _order(jobs), services.BulkBuilder(user, timezone.now()))


def workflow_create(
    *,
    spec: Any,
    user: Any = None,
    via: str = "system",
    schedule: Any = None,
    now: datetime | None = None,
) -> tuple[Workflow, dict[str, int]]:
    """Create the workflow `spec` describes, all or nothing: (the workflow, {node: job
    id}). BulkValidationError naming each bad node, ValidationError for the graph's
    fault (a cycle), JobTypeDenied when `user` may not run a type."""
    name, jobs = _shape(spec)
    order = _order(jobs)
    now = now or timezone.now()
    items = _items(jobs, order, services.BulkBuilder(user, now))
    owner = user if user is not None and user.is_authenticated else None
    after = {node: sorted(set(jobs[node].get("after", []))) for node in order}
    new_jobs = []
    for node in order:
        job = items[node].job
        assert isinstance(job, engine.NewJob)  # no unique keys here (refused above)
        new_jobs.append(replace(job, waiting_on=len(after[node]), workflow_node=node))
    with transaction.atomic():
        workflow = Workflow.objects.create(
            name=name, created_by=owner, schedule=schedule, created_at=now
        )
        ids = engine.insert_many(
            new_jobs,
            created_by_id=owner.pk if owner is not None else None,
            now=now,
            workflow_id=workflow.pk,
        )
        by_node = dict(zip(order, ids, strict=True))
        dependencies.link(
            (by_node[node], by_node[parent], False) for node in order for parent in after[node]
        )
        services.write_tag_sets((by_node[node], items[node].tags) for node in order)
        services.audit(
            job=None,
            user=user,
            via=via,
            action=AuditAction.CREATED,
            target=workflow,
            detail={"workflow": workflow.pk, "jobs": len(ids)},
        )
        roots = [(by_node[n], items[n].job.queue) for n in order if not after[n]]
        transaction.on_commit(lambda: broker.wake_released(roots), robust=True)
    return workflow, by_node


def visible_workflows(workflows: QuerySet[Workflow], user: Any) -> QuerySet[Workflow]:
    """The workflows `user` may see: their own, or all with view_all_jobs."""
    if user is None:
        return workflows
    if not user.is_authenticated:
        return workflows.none()
    if permissions.sees_all_jobs(user):
        return workflows
    return workflows.filter(created_by=user)


def workflow_status(workflow: Workflow) -> WorkflowStatus:
    """The workflow's aggregated state: two queries (counts, nodes)."""
    jobs = Job.objects.filter(workflow=workflow).order_by()
    counts = dict(jobs.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    nodes = {
        node: (pk, status)
        for pk, node, status in jobs.order_by("pk").values_list("pk", "workflow_node", "status")
    }
    return WorkflowStatus(
        aggregate(counts), counts.get(S.COMPLETED, 0), sum(counts.values()), counts, nodes
    )


def with_counts(workflows_qs: QuerySet[Workflow]) -> QuerySet[Workflow]:
    """Workflows with their jobs' counts by state (`total`, `done`, `active`, `failed`,
    `cancelled`): one query for a page of them (the API's list, the admin's)."""
    return workflows_qs.select_related("created_by").annotate(
        total=Count("jobs"),
        done=Count("jobs", filter=Q(jobs__status=S.COMPLETED)),
        active=Count("jobs", filter=Q(jobs__status__in=ACTIVE_STATUSES)),
        failed=Count("jobs", filter=Q(jobs__status=S.FAILED)),
        cancelled=Count("jobs", filter=Q(jobs__status=S.CANCELLED)),
    )


def status_of(workflow: Workflow) -> str:
    """The status of a workflow read through with_counts()."""
    counts = {
        S.PENDING: workflow.active,  # type: ignore[attr-defined]
        S.COMPLETED: workflow.done,  # type: ignore[attr-defined]
        S.FAILED: workflow.failed,  # type: ignore[attr-defined]
        S.CANCELLED: workflow.cancelled,  # type: ignore[attr-defined]
    }
    return aggregate({k: v for k, v in counts.items() if v})


def aggregate(counts: Mapping[str, int]) -> str:
    """The status of a workflow whose jobs have these status counts."""
    if any(counts.get(s) for s in ACTIVE_STATUSES):
        return "running"
    if counts and set(counts) == {S.COMPLETED}:
        return S.COMPLETED
    if counts.get(S.FAILED):
        return S.FAILED
    return S.CANCELLED if counts else S.COMPLETED


def _require_act(user: Any, workflow: Workflow) -> None:
    if user is None:
        return
    if not permissions.may_act(user, Job(created_by_id=workflow.created_by_id)):
        raise PermissionDenied(f"workflow #{workflow.pk}: you may only act on your own workflows")


def workflow_cancel(*, workflow: Workflow, user: Any = None, via: str = "system") -> list[int]:
    """Cancel every pending and running job of the workflow (each as job_cancel would:
    a pending one at once, a running one at its next task boundary; children of a
    cancelled job are cancelled in its name). Returns the ids acted on."""
    _require_act(user, workflow)
    acted: list[int] = []
    jobs = Job.objects.filter(workflow=workflow, status__in=ACTIVE_STATUSES).order_by("pk")
    for job in jobs:
        try:
            services.job_cancel(job=job, user=user, via=via)
        except IllegalTransition:
            continue  # it finished, or a parent's cancel reached it first
        acted.append(job.pk)
    if not acted and not Job.objects.filter(workflow=workflow, status__in=ACTIVE_STATUSES).exists():
        raise IllegalTransition(None, f"cancel workflow #{workflow.pk}", "finished")
    return acted


def workflow_retry(*, workflow: Workflow, user: Any = None, via: str = "system") -> list[int]:
    """Run the workflow's failed and cancelled jobs again: each one that failed or was
    cancelled by itself (not in a parent's name) is retried, and its retry puts back the
    children it cancelled. Returns the ids retried."""
    _require_act(user, workflow)
    heads = Job.objects.filter(
        workflow=workflow, status__in=(S.FAILED, S.CANCELLED), cancelled_by_parent__isnull=True
    ).order_by("pk")
    retried: list[int] = []
    with transaction.atomic():
        for job in heads:
            try:
                services.job_retry(job=job, user=user, via=via)
            except IllegalTransition:
                continue  # an earlier retry put it back already, or a parent still holds it
            retried.append(job.pk)
    if not retried:
        raise IllegalTransition(None, f"retry workflow #{workflow.pk}", "not failed or cancelled")
    return retried


def graph(workflow: Workflow) -> tuple[list[Job], list[tuple[int, int]]]:
    """The workflow's jobs (in id order) and its edges (parent id, child id)."""
    jobs = list(
        Job.objects.filter(workflow=workflow)
        .order_by("pk")
        .only("pk", "workflow_node", "status", "job_type", "progress_done", "progress_total")
    )
    ids = [j.pk for j in jobs]
    edges = list(
        JobDependency.objects.filter(child_id__in=ids)
        .order_by("parent_id", "child_id")
        .values_list("parent_id", "child_id")
    )
    return jobs, edges
