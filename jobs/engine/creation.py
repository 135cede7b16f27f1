"""New jobs: the rows that begin a job's life (pending, or a draft) and its tasks.

Creation is where a job's status is first written, so it lives in the engine with
the other writers of it. One statement per job on PostgreSQL (sql: insert_job), two
on SQLite; bulk creation one statement for the jobs and one for their tasks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from ..models import Job, JobStatus
from .queries import db_datetime, db_json, execute


def insert(job: Job, task_names: Sequence[str]) -> int | None:
    """INSERT unsaved `job` (pending or draft) with its tasks (positions 1…n named
    `task_names`, every other task column at its initial value); sets and returns
    job.pk. Only the columns a new job sets are taken from `job`; the rest start at
    their initial values (sql: insert_job). None, and nothing written, when a job with
    its unique key is pending or running (the database decides)."""
    if job.status not in (JobStatus.PENDING, JobStatus.DRAFT):
        raise ValueError(f"a new job is pending or a draft, not {job.status}")
    params = {
        "job_type": job.job_type,
        "status": job.status,
        "config": db_json(job.config),
        "release_id": job.release_id,
        "schedule_id": job.schedule_id,
        "created_by_id": job.created_by_id,
        "queue": job.queue,
        "lock": job.lock,
        "priority": job.priority,
        "run_after": db_datetime(job.run_after),
        "max_attempts": job.max_attempts,
        "created_at": db_datetime(job.created_at),
        "queued_at": db_datetime(job.queued_at),
        "progress_total": job.progress_total,
        "analysis": db_json(job.analysis),
        "lock_limit": job.lock_limit,
        "unique_key": job.unique_key,
        "timeout_seconds": job.timeout_seconds,
        "waiting_on": job.waiting_on,
        "on_parent_failure": job.on_parent_failure,
        "workflow_id": job.workflow_id,
        "workflow_node": job.workflow_node,
    }
    if connection.vendor == "postgresql":
        rows, _ = execute("insert_job", {**params, "task_names": list(task_names)})
        if not rows:
            return None
        job.pk = rows[0]["id"]
    else:
        rows, _ = execute("insert_job", params)
        if not rows:
            return None
        job.pk = rows[0]["id"]
        if task_names:
            execute("insert_tasks_of", {"job_id": job.pk, "task_names": db_json(list(task_names))})
    # As save() leaves an instance (Model._state is documented: it is saved, and where).
    job._state.adding = False
    job._state.db = connection.alias
    return job.pk


@dataclass(frozen=True)
class NewJob:
    """One pending job of a bulk creation, validated."""

    job_type: str
    config: Any  # its value as the database takes it (see db_json); shared by equal configs
    release_id: int | None
    queue: str
    lock: str | None
    priority: int
    run_after: datetime | None
    max_attempts: int
    task_names: Sequence[str]
    lock_limit: int = 1
    timeout_seconds: int | None = None  # seconds per attempt (services.resolved_timeout)
    waiting_on: int = 0  # parents not yet settled (engine.dependencies)
    on_parent_failure: str = "cancel"
    workflow_node: str = ""


def insert_many(
    jobs: Sequence[NewJob],
    *,
    created_by_id: int | None,
    now: datetime,
    workflow_id: int | None = None,
) -> list[int]:
    """INSERT pending `jobs` and their tasks: one statement for the jobs and one for
    the tasks (sql: insert_jobs, insert_tasks). Returns the ids in input order."""

    created_at = db_datetime(now)
    if connection.vendor == "postgresql":
        rows, _ = execute(
            "insert_jobs",
            {
                "created_by_id": created_by_id,
                "created_at": created_at,
                "job_types": [j.job_type for j in jobs],
                "configs": [j.config for j in jobs],
                "release_ids": [j.release_id for j in jobs],
                "queues": [j.queue for j in jobs],
                "locks": [j.lock for j in jobs],
                "priorities": [j.priority for j in jobs],
                "run_afters": [j.run_after for j in jobs],
                "max_attempts": [j.max_attempts for j in jobs],
                "progress_totals": [len(j.task_names) for j in jobs],
                "lock_limits": [j.lock_limit for j in jobs],
                "timeout_seconds": [j.timeout_seconds for j in jobs],
                "waiting_ons": [j.waiting_on for j in jobs],
                "on_parent_failures": [j.on_parent_failure for j in jobs],
                "workflow_nodes": [j.workflow_node for j in jobs],
                "workflow_id": workflow_id,
            },
        )
    else:
        values = [
            [
                j.job_type,
                j.config,
                j.release_id,
                j.queue,
                j.lock,
                j.priority,
                db_datetime(j.run_after),
                j.max_attempts,
                len(j.task_names),
                j.lock_limit,
                j.timeout_seconds,
                j.waiting_on,
                j.on_parent_failure,
                j.workflow_node,
            ]
            for j in jobs
        ]
        rows, _ = execute(
            "insert_jobs",
            {
                "created_by_id": created_by_id,
                "created_at": created_at,
                "jobs": _sqlite_json(values),
                "workflow_id": workflow_id,
            },
        )
    ids = sorted(row["id"] for row in rows)
    tasks = [
        (job_id, position, name)
        for job_id, job in zip(ids, jobs, strict=True)
        for position, name in enumerate(job.task_names, start=1)
    ]
    if tasks:
        if connection.vendor == "postgresql":
            job_ids, positions, names = (list(column) for column in zip(*tasks, strict=True))
            execute("insert_tasks", {"job_ids": job_ids, "positions": positions, "names": names})
        else:
            execute("insert_tasks", {"tasks": db_json([list(t) for t in tasks])})
    return ids


def _sqlite_json(values: list[list[Any]]) -> str:
    """The bulk rows as one JSON list. Each config (the second item) is JSON text
    already: it is spliced in as JSON, not quoted as a string, so `-> 1` reads it
    back as the object, and equal configs are not encoded again per job."""
    rows = (
        f"[{json.dumps(row[0])}, {row[1] or 'null'}, {json.dumps(row[2:])[1:-1]}]" for row in values
    )
    return "[" + ", ".join(rows) + "]"
