"""Jobs that wait for other jobs: a child runs once each of its parents completed.

Each edge is a JobDependency row; a child's `waiting_on` counts its unsettled edges,
and the claim takes only jobs at 0 (its index holds no others). An edge is settled
once: when its parent completes, or, for a child created with on_parent_failure
"run", when the parent ends at all. A parent that fails or is cancelled cancels its
other pending children ("parent #12 failed"), and theirs in turn; retrying it puts
back to pending the children it cancelled (and theirs).

Races, and what settles them:
- A job created after a parent that finishes meanwhile: the creator locks the
  existing parents' rows before reading their status (parent_states), and the
  completion settles edges in a statement of its own after the parent's UPDATE
  (release_children, sql/<vendor>.sql): whichever commits first, the other sees it,
  so the edge is created settled or settled by the completion, never neither.
- The last two parents finishing at once on two workers: each settles its own edge
  once (`NOT settled`) and decrements the child under its row lock, so exactly one
  of them sees 0 and wakes a worker; `waiting_on >= 0` (a check constraint) would
  refuse a second count.
- A child's fate decided twice at once (a parent failing while another is retried):
  whoever decides locks the child's row first, in a statement of its own, and reads
  the parents' statuses after, so the later of the two sees the earlier's outcome.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from ..models import Job, JobDependency, JobStatus, Task, TaskStatus
from .queries import db_json, execute

S = JobStatus
RUN_ANYWAY = "run"
ENDED = (S.FAILED, S.CANCELLED)


def parent_states(parent_ids: Collection[int]) -> dict[int, str]:
    """The status of each existing job of `parent_ids`, their rows locked until the
    transaction ends (a parent cannot finish between this read and the new edges)."""
    if not parent_ids:
        return {}
    rows = Job.objects.filter(pk__in=list(parent_ids)).select_for_update(no_key=True)
    return dict(rows.order_by("pk").values_list("pk", "status"))


def settles(parent_status: str, on_parent_failure: str) -> bool:
    """Whether an edge to a parent in `parent_status` is settled when it is made."""
    if parent_status == S.COMPLETED:
        return True
    return parent_status in ENDED and on_parent_failure == RUN_ANYWAY


def link(edges: Iterable[tuple[int, int, bool]]) -> None:
    """The edges (child id, parent id, settled) of new jobs, in one statement
    (sql: insert_edges)."""
    rows = list(edges)
    if not rows:
        return
    if connection.vendor == "postgresql":
        children, parents, settled = (list(column) for column in zip(*rows, strict=True))
        execute("insert_edges", {"child_ids": children, "parent_ids": parents, "settled": settled})
    else:
        execute("insert_edges", {"edges": db_json([[c, p, int(s)] for c, p, s in rows])})


def release_children_sqlite(job_id: int) -> list[tuple[int, str]]:
    """SQLite: settle the edges of completed job `job_id` (in its completion's
    transaction); the (id, queue) of the children it left runnable."""
    rows, _ = execute("release_children", {"job_id": job_id})
    if rows:
        execute("settle_edges", {"job_id": job_id})
    return runnable(rows)


def runnable(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """Of release_children's rows, the (id, queue) of the jobs that may run now."""
    return [
        (int(r["id"]), str(r["queue"]))
        for r in rows
        if r["waiting_on"] == 0 and r["status"] == S.PENDING
    ]


def cancel_at_birth(children: Mapping[int, tuple[int, str]], now: datetime) -> None:
    """New jobs `children` ({id: (parent, its status)}) need a parent that already
    failed or was cancelled: cancelled at once in its name, their tasks skipped."""
    for child, (parent, status) in children.items():
        Job.objects.filter(pk=child, status=S.PENDING).update(
            status=S.CANCELLED,
            cancelled_by_parent_id=parent,
            error=f"parent #{parent} {status}",
            cancel_requested_at=now,
            finished_at=now,
        )
    Task.objects.filter(job_id__in=list(children), status=TaskStatus.PENDING).update(
        status=TaskStatus.SKIPPED
    )


def parents_ended(
    ended: Mapping[int, str], now: datetime
) -> tuple[list[int], list[tuple[int, str]]]:
    """Jobs `ended` ({id: failed or cancelled}) just ended without completing, in this
    transaction: settle their edges to children that run anyway, and cancel their other
    pending children, then those children's, level by level. Returns (the ids
    cancelled, the (id, queue) of children left runnable)."""
    cancelled: list[int] = []
    released: list[tuple[int, str]] = []
    frontier = dict(ended)
    while frontier:
        edges = list(
            JobDependency.objects.filter(parent_id__in=list(frontier), settled=False)
            .order_by("child_id", "parent_id")
            .values_list("child_id", "parent_id")
        )
        if not edges:
            break
        modes = _locked_children({child for child, _ in edges})
        anyway = [(c, p) for c, p in edges if modes.get(c) == RUN_ANYWAY]
        released += _settle(anyway)
        by_parent: dict[int, list[int]] = {}
        for child, parent in edges:
            if modes.get(child) != RUN_ANYWAY:
                by_parent.setdefault(parent, []).append(child)
        level: dict[int, str] = {}
        for parent, children in sorted(by_parent.items()):
            reason = f"parent #{parent} {frontier[parent]}"
            ids = list(
                Job.objects.filter(pk__in=children, status=S.PENDING)
                .exclude(pk__in=list(level))
                .values_list("pk", flat=True)
            )
            if not ids:
                continue
            Job.objects.filter(pk__in=ids, status=S.PENDING).update(
                status=S.CANCELLED,
                cancelled_by_parent_id=parent,
                error=reason,
                cancel_requested_at=now,
                finished_at=now,
            )
            Task.objects.filter(job_id__in=ids, status=TaskStatus.PENDING).update(
                status=TaskStatus.SKIPPED
            )
            level.update(dict.fromkeys(ids, S.CANCELLED))
        cancelled += list(level)
        frontier = level
    return cancelled, released


def parent_retried(job_id: int, now: datetime) -> list[int]:
    """Job `job_id` was just put back to pending (a retry), in this transaction: the
    children it cancelled go back to pending (and theirs, level by level), unless
    another of their parents failed or was cancelled too: they then stay cancelled,
    now in that parent's name. Returns the ids put back to pending."""
    restored: list[int] = []
    frontier = [job_id]
    while frontier:
        candidates = JobDependency.objects.filter(parent_id__in=frontier).values("child_id")
        locked = _locked_children(set(candidates.values_list("child_id", flat=True)))
        mine = Job.objects.filter(
            pk__in=list(locked), status=S.CANCELLED, cancelled_by_parent_id__in=frontier
        )
        blocked = dict(_ended_parents(mine.values_list("pk", flat=True)))
        for child, (parent, status) in blocked.items():
            mine.filter(pk=child).update(
                cancelled_by_parent_id=parent, error=f"parent #{parent} {status}"
            )
        level = list(mine.exclude(pk__in=list(blocked)).values_list("pk", flat=True))
        if not level:
            break
        Job.objects.filter(pk__in=level, status=S.CANCELLED).update(
            status=S.PENDING,
            cancelled_by_parent_id=None,
            error="",
            finished_at=None,
            cancel_requested_at=None,
            queued_at=now,
        )
        Task.objects.filter(job_id__in=level).exclude(status=TaskStatus.SUCCEEDED).update(
            status=TaskStatus.PENDING, error="", started_at=None, finished_at=None
        )
        recount(level)
        restored += level
        frontier = level
    return restored


def recount(job_ids: Sequence[int]) -> None:
    """Set the waiting_on of jobs `job_ids` (being put back to pending) from their
    unsettled edges: a parent deleted meanwhile (cleanup of old failed jobs) no longer
    counts."""
    unsettled = (
        JobDependency.objects.filter(child_id=OuterRef("pk"), settled=False)
        .order_by()
        .values("child_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    Job.objects.filter(pk__in=list(job_ids)).update(
        waiting_on=Coalesce(Subquery(unsettled), Value(0))
    )


def blocking_parent(job_id: int) -> tuple[int, str] | None:
    """A parent of `job_id` that failed or was cancelled and holds it back (its edge
    unsettled: the child does not run anyway), as (id, status); None if there is none."""
    return dict(_ended_parents([job_id])).get(job_id)


def _ended_parents(child_ids: Iterable[int]) -> list[tuple[int, tuple[int, str]]]:
    """(child, (parent, status)) for each child of `child_ids` with an unsettled
    parent that failed or was cancelled (the lowest such parent)."""
    rows = (
        JobDependency.objects.filter(
            child_id__in=list(child_ids), settled=False, parent__status__in=ENDED
        )
        .order_by("child_id", "-parent_id")
        .values_list("child_id", "parent_id", "parent__status")
    )
    return list({child: (child, (parent, status)) for child, parent, status in rows}.values())


def _locked_children(child_ids: set[int]) -> dict[int, str]:
    """Lock the rows of `child_ids` (their latest versions: another transaction that
    decided their fate has committed) and return each one's on_parent_failure."""
    if not child_ids:
        return {}
    rows = Job.objects.filter(pk__in=sorted(child_ids)).select_for_update()
    return dict(rows.order_by("pk").values_list("pk", "on_parent_failure"))


def _settle(edges: Sequence[tuple[int, int]]) -> list[tuple[int, str]]:
    """Settle `edges` (child, parent) still unsettled and count them off their
    children (their rows are locked); the (id, queue) of the children left runnable."""
    if not edges:
        return []
    pairs = set(edges)
    found = JobDependency.objects.filter(
        child_id__in={c for c, _ in pairs}, parent_id__in={p for _, p in pairs}, settled=False
    ).values_list("pk", "child_id", "parent_id")
    picked = [(pk, child) for pk, child, parent in found if (child, parent) in pairs]
    JobDependency.objects.filter(pk__in=[pk for pk, _ in picked]).update(settled=True)
    counts: dict[int, int] = {}
    for _, child in picked:
        counts[child] = counts.get(child, 0) + 1
    by_count: dict[int, list[int]] = {}
    for child, n in counts.items():
        by_count.setdefault(n, []).append(child)
    for n, children in by_count.items():
        Job.objects.filter(pk__in=children).update(waiting_on=F("waiting_on") - n)
    rows = Job.objects.filter(pk__in=list(counts), waiting_on=0, status=S.PENDING)
    return list(rows.values_list("pk", "queue"))
