"""How the apps built on jobs add to it, so that jobs imports none of them.

`releases` and `scheduler` depend on `jobs`, never the other way (import-linter
checks it, pyproject.toml). Where a job's lock, its waiting reason or the dashboard
needs what another app knows, that app registers a function here from its
AppConfig.ready():

- `register_lock_key(fn)`: fn(job) → the lock key a new job takes, or None. The
  first non-None answer wins. (releases: "release:<id>" for a release's jobs.)
- `register_lock_label(prefix, fn, related=())`: fn(job) → a label for the lock
  key of `job` (which starts with `prefix`), naming what a job waiting behind it
  waits for ("release Shop"); `related` names the job's foreign keys fn reads, which
  the reader loads with the job (select_related), so no query per label.
- `register_dashboard_panel(fn)`: fn(user, now) → {"template": …, …context} or
  None, a panel the admin dashboard shows (scheduler: failing schedules).
- `register_job_finished(fn)`: fn(job_ids) is called once the transaction that
  finished those jobs (completed, failed, cancelled) has committed, in the process
  that finished them (notifications: deliveries for the rules they match). It must
  not raise: an error is logged, never the finishing job's problem.
- `register_jobs_runnable(fn)`: fn([(job id, queue), …]) is called once the
  transaction that made waiting jobs runnable (their last parent completed) has
  committed (jobs.broker: wake-ups for them). The same rule: it must not raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Job

LockKey = Callable[["Job"], str | None]
LockLabel = Callable[["Job"], str]
DashboardPanel = Callable[[Any, datetime], dict[str, Any] | None]
JobFinished = Callable[[Sequence[int]], None]
JobsRunnable = Callable[[Sequence[tuple[int, str]]], None]

logger = logging.getLogger(__name__)

_lock_keys: list[LockKey] = []
_lock_labels: dict[str, tuple[LockLabel, tuple[str, ...]]] = {}
_dashboard_panels: list[DashboardPanel] = []
_job_finished: list[JobFinished] = []
_jobs_runnable: list[JobsRunnable] = []


def register_lock_key(fn: LockKey) -> None:
    if fn not in _lock_keys:
        _lock_keys.append(fn)


def lock_key(job: Job) -> str | None:
    """The lock key of new job `job` (None: it runs beside anything)."""
    for fn in _lock_keys:
        key = fn(job)
        if key is not None:
            return key
    return None


def register_lock_label(prefix: str, fn: LockLabel, related: tuple[str, ...] = ()) -> None:
    _lock_labels[prefix] = (fn, related)


def lock_label_relations() -> list[str]:
    """The foreign keys of Job that the registered label functions read."""
    return sorted({name for _, related in _lock_labels.values() for name in related})


def lock_label(job: Job) -> str:
    """What a job waiting behind `job` (which holds a lock key) waits for."""
    key = job.lock or ""
    for prefix, (fn, _) in _lock_labels.items():
        if key.startswith(prefix):
            return fn(job)
    return f"lock {key}"


def register_dashboard_panel(fn: DashboardPanel) -> None:
    if fn not in _dashboard_panels:
        _dashboard_panels.append(fn)


def dashboard_panels(user: Any, now: datetime) -> list[dict[str, Any]]:
    return [panel for fn in _dashboard_panels if (panel := fn(user, now)) is not None]


def register_job_finished(fn: JobFinished) -> None:
    if fn not in _job_finished:
        _job_finished.append(fn)


def job_finished(job_ids: Sequence[int]) -> None:
    """Tell the registered functions that `job_ids` finished (called after the commit)."""
    if not job_ids:
        return
    for fn in _job_finished:
        try:
            fn(job_ids)
        except Exception:  # a listener's bug never fails the job that finished
            logger.exception("job-finished listener %r failed for jobs %s", fn, list(job_ids))


def register_jobs_runnable(fn: JobsRunnable) -> None:
    if fn not in _jobs_runnable:
        _jobs_runnable.append(fn)


def jobs_runnable(jobs: Sequence[tuple[int, str]]) -> None:
    """Tell the registered functions that `jobs` ((id, queue)) may run now (after the
    commit that released them)."""
    if not jobs:
        return
    for fn in _jobs_runnable:
        try:
            fn(jobs)
        except Exception:
            logger.exception("jobs-runnable listener %r failed for %d jobs", fn, len(jobs))
