"""Writes and workflows on jobs: the one place for their rules.

Admin actions, API views, management commands, schedules and the django.tasks
backend all call these functions. Every status change is a conditional UPDATE
(`filter(pk=…, status__in=expected)`), so two workers, a redelivered broker
message and a person clicking cancel can never both win.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import permissions, queues, registry
from .exceptions import IllegalTransition
from .models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    AuditAction,
    AuditEvent,
    Job,
    JobLog,
    JobStatus,
    LogLevel,
    Task,
    TaskStatus,
)
from .queues import DEFAULT_QUEUE

logger = logging.getLogger(__name__)

RUNNER = "jobs.runner.run_job"
# The oldest finished jobs a cleanup may ask for (a hundred years; the API's limit too).
CLEANUP_MAX_DAYS = 36_500


# --- transitions --------------------------------------------------------------


def transition(
    job_id: int,
    *,
    action: str,
    expected: Iterable[str],
    to: str,
    attempt: int | None = None,
    **fields: Any,
) -> None:
    """Move job `job_id` from one of `expected` to `to` in one conditional UPDATE.

    Raises IllegalTransition (naming the current status) when the job was not in
    an expected status, i.e. when another actor won the race or the move is illegal.
    With `attempt` (a fencing token), only while the job is still on that attempt: a
    worker whose claim was swept and claimed again cannot finish the new attempt.
    """
    expected = tuple(expected)
    matching = Job.objects.filter(pk=job_id, status__in=expected)
    if attempt is not None:
        matching = matching.filter(attempts=attempt)
    updated = matching.update(status=to, **fields)
    if not updated:
        current = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        raise IllegalTransition(job_id, action, current, allowed=expected)


def audit(
    *, job: Job | None, user, via: str, action: str, detail: dict | None = None
) -> AuditEvent:
    actor = user if user is not None and user.is_authenticated else None
    return AuditEvent.objects.create(
        job=job, actor=actor, via=via, action=action, detail=detail or {}
    )


# --- enqueueing -----------------------------------------------------------------


def enqueue_wakeup(job_id: int | None = None, queue: str = DEFAULT_QUEUE) -> None:
    """Send one broker message asking a worker of `queue`'s cluster to run `job_id`
    (or any runnable job).

    The payload is the job id only, never user data; the message is a wake-up,
    a worker then claims jobs from the Job table itself.
    """
    from django_q.tasks import async_task

    cluster = queues.cluster_for(queue)
    async_task(
        RUNNER,
        job_id,
        save=False,
        cluster=cluster,
        broker=_broker(cluster),
        task_name=f"job-{job_id or 'any'}",
    )


_brokers: dict[tuple[Any, ...], Any] = {}


def _broker(cluster: str) -> Any:
    """django-q2's broker for `cluster`, made once per process and broker configuration.

    async_task would make a new one per message: for Redis a new client, connection
    pool and TCP connection each time; for the ORM broker a connection health check
    (a SELECT 1 round trip) each time. Redis clients are thread-safe and reconnect
    after a fork; the ORM broker holds no connection of its own.
    """
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    key = (cluster, Conf.BROKER_CLASS, Conf.ORM, repr(Conf.REDIS), repr(Conf.SQS), Conf.IRON_MQ)
    broker = _brokers.get(key)
    if broker is None:
        broker = get_broker(cluster)
        if type(broker) is ORM:
            broker = _outbox_orm_broker()(list_key=cluster)
        _brokers[key] = broker
    return broker


@functools.cache
def _outbox_orm_broker() -> type:
    """django-q2's ORM broker, writing a message with one plain INSERT when a transaction
    is open (the job's: see _wakeup_in_transaction) instead of OrmQ.objects.create(),
    whose per-field SQL compilation cost as much as the job's own INSERT."""
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf
    from django_q.models import OrmQ

    class OutboxORM(ORM):
        def enqueue(self, task):
            db = connections[Conf.ORM]
            if db.get_autocommit():
                return super().enqueue(task)  # as django-q2 does, stale-connection check too
            quote = db.ops.quote_name
            columns = ", ".join(
                quote(OrmQ._meta.get_field(f).column) for f in ("key", "payload", "lock")
            )
            sql = f"INSERT INTO {quote(OrmQ._meta.db_table)} ({columns}) VALUES (%s, %s, %s)"
            returning = db.features.can_return_columns_from_insert
            if returning:
                sql += f" RETURNING {quote(OrmQ._meta.pk.column)}"
            lock = db.ops.adapt_datetimefield_value(timezone.now())
            with db.cursor() as cursor:
                cursor.execute(sql, [self.list_key or Conf.CLUSTER_NAME, task, lock])
                return cursor.fetchone()[0] if returning else cursor.lastrowid

    return OutboxORM


def _wakeup_in_transaction(using: str) -> bool:
    """Whether wake-ups for jobs written on database `using` go in the same transaction.

    True for django-q2's ORM broker on that database (and not in sync mode, which would
    run the job right away): the message is then a row like the job's, written with it
    (a transactional outbox). It commits atomically with the job, is never sent for a
    rolled-back job, and costs no commit of its own. The ORM broker's rows are visible
    to workers once committed (their `lock` is the insert time, already past).
    """
    from django_q.conf import Conf

    return (
        using == Conf.ORM
        and not (Conf.BROKER_CLASS or Conf.IRON_MQ or isinstance(Conf.SQS, dict))
        and not Conf.SYNC
    )


def _enqueue_on_commit(job: Job) -> None:
    job_id, queue = job.pk, job.queue
    # robust: a broker hiccup after the commit must not fail the request that created
    # the job (a client retry would create it twice); the periodic tick wakes it.
    transaction.on_commit(lambda: enqueue_wakeup(job_id, queue), robust=True)


def _enqueue_with_commit(job: Job, using: str = DEFAULT_DB_ALIAS) -> None:
    """Send `job`'s wake-up as its transaction commits: in that transaction for the ORM
    broker on the same database (see _wakeup_in_transaction), after the commit otherwise.

    In the transaction, a failing INSERT fails the whole creation (nothing is committed,
    so a client retry creates no duplicate); any other error is logged and the periodic
    tick wakes the job, as for a broker hiccup after the commit.
    """
    if not _wakeup_in_transaction(using):
        _enqueue_on_commit(job)
        return
    try:
        enqueue_wakeup(job.pk, job.queue)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("could not send the wake-up of job %s; the periodic tick wakes it", job.pk)


# --- creation -------------------------------------------------------------------


def _validate_scheduling(
    *, priority: int, run_after: datetime | None, max_attempts: int | None
) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(priority, int) or isinstance(priority, bool) or not -100 <= priority <= 100:
        errors["priority"] = ["Priority must be an integer between -100 and 100."]
    if run_after is not None and timezone.is_naive(run_after):
        errors["run_after"] = ["run_after must be timezone-aware."]
    if max_attempts is not None and not (
        isinstance(max_attempts, int) and 1 <= max_attempts <= 100
    ):
        errors["max_attempts"] = ["max_attempts must be an integer between 1 and 100."]
    if errors:
        raise ValidationError(errors)


def validated_type_and_config(
    job_type: Any, config: Any, *, allow_internal: bool = False
) -> tuple[registry.JobType, dict]:
    """The registered type and its cleaned config; ValidationError naming the field."""
    jt = registry.get(job_type)
    if not jt.user_creatable and not allow_internal:
        raise ValidationError(
            {"job_type": [f"Jobs of type {job_type!r} can only be created by Jobdeck itself."]}
        )
    if jt.config_serializer is registry.EmptyConfig and (config is None or config == {}):
        return jt, {}  # what EmptyConfig's validation returns, without a serializer
    return jt, registry.validate_config(jt, config)


def job_build(
    *,
    job_type: str,
    config: Any = None,
    user=None,
    release=None,
    schedule=None,
    priority: int = 0,
    run_after: datetime | None = None,
    max_attempts: int | None = None,
    queue: str = DEFAULT_QUEUE,
    draft: bool = False,
    allow_internal: bool = False,
    now: datetime | None = None,
) -> tuple[Job, list[str]]:
    """Validate everything and return an unsaved Job with its task names.

    Raises ValidationError naming the field, or JobTypeDenied when `user` may not
    create jobs of the type (jobs.permissions: the check every front door goes
    through); nothing is written.
    """
    jt = registry.get(job_type)
    if jt.user_creatable:  # one only Jobdeck may create is a 400 (just below)
        permissions.require_create(user, jt, release=release)
    jt, clean_config = validated_type_and_config(job_type, config, allow_internal=allow_internal)
    _validate_scheduling(priority=priority, run_after=run_after, max_attempts=max_attempts)
    if jt.requires_release and release is None:
        raise ValidationError({"release": [f"Job type {job_type!r} needs a release."]})
    clean_config = registry.validate_for_release(jt, clean_config, release)
    permissions.require_create(user, jt, release=release, config=clean_config)
    if queue not in queues.known_queues():
        known = ", ".join(sorted(queues.known_queues()))
        raise ValidationError({"queue": [f"Unknown queue {queue!r}; known: {known}."]})
    names = jt.tasks(clean_config)
    now = now or timezone.now()
    job = Job(
        job_type=jt.name,
        status=JobStatus.DRAFT if draft else JobStatus.PENDING,
        config=clean_config,
        release=release,
        schedule=schedule,
        created_by=user if user is not None and user.is_authenticated else None,
        priority=priority,
        run_after=run_after,
        max_attempts=max_attempts or jt.max_attempts,
        queue=queue,
        created_at=now,
        queued_at=None if draft else now,
        progress_total=len(names),
        analysis={"state": "pending"} if draft else None,
    )
    return job, names


@transaction.atomic
def job_create(*, draft: bool = False, via: str = "system", **kwargs: Any) -> Job:
    """Create a job (pending, or a draft to analyse first) with its ordered tasks.

    A pending job is enqueued once the transaction commits; a rolled-back job never runs.
    With the ORM broker its wake-up is written in the same transaction (one commit for
    both, see _enqueue_with_commit), otherwise sent after the commit.
    A job a person creates is recorded in the audit trail with the front door used.
    """
    job, names = job_build(draft=draft, **kwargs)
    _insert_job_with_tasks(job, names)
    if job.created_by_id is not None:
        audit(job=job, user=job.created_by, via=via, action=AuditAction.CREATED)
    if draft:
        transaction.on_commit(lambda: enqueue_analysis(job.pk), robust=True)
    else:
        _enqueue_with_commit(job)
    return job


def _insert_job_with_tasks(job: Job, names: list[str]) -> None:
    """INSERT unsaved `job` and its tasks `names` (positions 1…n, every other task column
    at its default) and set job.pk, as job.save() plus Task.objects.bulk_create would.

    One statement on PostgreSQL (a data-modifying CTE: the tasks take the job's id on
    the server), two elsewhere, with the SQL built once per process: the ORM's per-field
    SQL compilation was most of a single job's creation time. Jobs and tasks have no
    save() override or save signal to skip.
    """
    job._prepare_related_fields_for_save(operation_name="save")  # an unsaved release raises
    job_fields, task_fields = _INSERT_FIELDS or _insert_fields()
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: each field asks it for db.ops
    values = [f.get_db_prep_save(f.pre_save(job, True), db) for f in job_fields]
    task_defaults = [f.get_db_prep_save(f.get_default(), db) for f in task_fields[3:]]
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            cursor.execute(_insert_sql("job+tasks"), [*values, *task_defaults, names])
            job.pk = cursor.fetchone()[0]
        else:
            cursor.execute(_insert_sql("job"), values)
            job.pk = (
                cursor.fetchone()[0]
                if db.features.can_return_columns_from_insert
                else cursor.lastrowid
            )
            for start in range(0, len(names), 500):  # within SQLite's parameter limit
                batch = names[start : start + 500]
                params: list[Any] = []
                for position, name in enumerate(batch, start=start + 1):
                    params += [job.pk, position, name, *task_defaults]
                cursor.execute(_insert_sql("tasks", len(batch)), params)
    job._state.adding = False
    job._state.db = db.alias


_INSERT_FIELDS: list[list[Any]] = []
_INSERT_SQL: dict[tuple[str, str, int], str] = {}


def _insert_fields() -> list[list[Any]]:
    """The concrete non-pk fields of Job, and of Task with job, position and name first."""
    if not _INSERT_FIELDS:
        first = ("job_id", "position", "name")
        task_fields = [f for f in Task._meta.concrete_fields if not f.primary_key]
        task_fields.sort(key=lambda f: first.index(f.attname) if f.attname in first else 3)
        _INSERT_FIELDS[:] = [
            [f for f in Job._meta.concrete_fields if not f.primary_key],
            task_fields,
        ]
    return _INSERT_FIELDS


def _insert_sql(kind: str, task_rows: int = 0) -> str:
    """The SQL of _insert_job_with_tasks: a job's INSERT (RETURNING its id where the
    database can), a multi-row INSERT of `task_rows` tasks, or (PostgreSQL) both in one
    statement, the tasks' names in a text array as the last parameter."""
    key = (connection.vendor, kind, task_rows)
    sql = _INSERT_SQL.get(key)
    if sql is not None:
        return sql
    job_fields, task_fields = _insert_fields()
    quote = connection.ops.quote_name
    pk = quote(Job._meta.pk.column)
    job_columns = ", ".join(quote(f.column) for f in job_fields)
    task_columns = ", ".join(quote(f.column) for f in task_fields)
    job_sql = (
        f"INSERT INTO {quote(Job._meta.db_table)} ({job_columns}) "
        f"VALUES ({', '.join(['%s'] * len(job_fields))})"
    )
    if connection.features.can_return_columns_from_insert:
        job_sql += f" RETURNING {pk}"
    task_table = quote(Task._meta.db_table)
    if kind == "job":
        sql = job_sql
    elif kind == "tasks":
        row = "(" + ", ".join(["%s"] * len(task_fields)) + ")"
        sql = f"INSERT INTO {task_table} ({task_columns}) VALUES {', '.join([row] * task_rows)}"
    else:
        defaults = ", ".join(f"%s::{f.cast_db_type(connection)}" for f in task_fields[3:])
        sql = (
            f"WITH new_job AS ({job_sql}), "
            f"new_tasks AS (INSERT INTO {task_table} ({task_columns}) "
            f"SELECT new_job.{pk}, t.position, t.name, {defaults} "
            f"FROM new_job, UNNEST(%s::text[]) WITH ORDINALITY AS t(name, position)) "
            f"SELECT {pk} FROM new_job"
        )
    _INSERT_SQL[key] = sql
    return sql


def enqueue_analysis(job_id: int) -> None:
    from django_q.tasks import async_task

    async_task("jobs.runner.analyze_job", job_id, save=False, task_name=f"analyze-{job_id}")


def job_analyze(*, job_id: int) -> dict:
    """Run the job type's analysis of a draft and store it on the job."""
    job = Job.objects.select_related("release").get(pk=job_id)
    try:
        analysis = registry.get(job.job_type).analyze(job.config, job.release)
        analysis = registry.redact_result(job.job_type, job.config, analysis)
        state = {"state": "ready", "analysis": analysis}
    except Exception as exc:  # an analysis that crashes is reported, not raised
        logger.exception("analysis of job %s failed", job_id)
        error = registry.redact_text(job.job_type, job.config, f"{type(exc).__name__}: {exc}")
        state = {"state": "failed", "analysis": {}, "error": error}
    Job.objects.filter(pk=job_id).update(analysis=state)
    return state


# --- human actions ------------------------------------------------------------


@transaction.atomic
def job_submit(*, job: Job, user=None, via: str = "system") -> Job:
    """Turn a draft into a pending job that runs; the submitter must be allowed to
    create jobs of its type (jobs.permissions), whoever made the draft."""
    _require_create_again(job, user)
    now = timezone.now()
    transition(
        job.pk, action="submit", expected=[JobStatus.DRAFT], to=JobStatus.PENDING, queued_at=now
    )
    audit(job=job, user=user, via=via, action=AuditAction.SUBMITTED)
    _enqueue_on_commit(job)
    job.refresh_from_db()
    return job


@transaction.atomic
def job_cancel(*, job: Job, user=None, via: str = "system") -> Job:
    """Cancel a job: a pending one at once, a running one at its next task boundary."""
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(
        status=JobStatus.CANCELLED, cancel_requested_at=now, finished_at=now
    ):
        Task.objects.filter(job_id=job.pk, status=TaskStatus.PENDING).update(
            status=TaskStatus.SKIPPED
        )
        detail = {"was": JobStatus.PENDING}
    elif Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        # A second cancel keeps the first request's time.
        cancel_requested_at=Coalesce(F("cancel_requested_at"), Value(now))
    ):
        detail = {"was": JobStatus.RUNNING}
    else:
        current = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        raise IllegalTransition(
            job.pk, "cancel", current, allowed=[JobStatus.PENDING, JobStatus.RUNNING]
        )
    audit(job=job, user=user, via=via, action=AuditAction.CANCELLED, detail=detail)
    job.refresh_from_db()
    return job


@transaction.atomic
def job_retry(*, job: Job, user=None, via: str = "system", config: Any = None) -> Job:
    """Run a failed or cancelled job again: succeeded tasks are kept and skipped.

    With `config`, the job runs with that corrected config (validated; the change
    is recorded in the audit trail).
    """
    fields: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    names: list[str] | None = None
    if config is not None:
        jt = registry.get(job.job_type)
        if jt.user_creatable:  # a carrier's config cannot change at all (just below)
            permissions.require_create(user, jt, release=job.release)
        # A config copied from a masked display keeps the secrets it did not change.
        config = registry.unredact(job.job_type, config, job.config)
        clean = registry.validate_config(jt, config)
        clean = registry.validate_for_release(jt, clean, job.release)
        if clean != job.config and not jt.user_creatable:
            # A carrier job (tasks.call) names code to run: only Jobdeck may set that.
            raise ValidationError(
                {"config": [f"The config of {job.job_type!r} jobs cannot be changed."]}
            )
        if clean != job.config:
            fields["config"] = clean
            detail["config"] = {
                "old": registry.redact(job.job_type, job.config),
                "new": registry.redact(job.job_type, clean),
            }
            names = jt.tasks(clean)
    _require_create_again(job, user, fields.get("config"))
    now = timezone.now()
    transition(
        job.pk,
        action="retry",
        expected=[JobStatus.FAILED, JobStatus.CANCELLED],
        to=JobStatus.PENDING,
        error="",
        result=None,
        finished_at=None,
        cancel_requested_at=None,
        heartbeat_at=None,
        run_after=None,
        worker="",
        queued_at=now,
        **fields,
    )
    if names is not None:
        _replace_unfinished_tasks(job.pk, names)
    Task.objects.filter(job_id=job.pk).exclude(status=TaskStatus.SUCCEEDED).update(
        status=TaskStatus.PENDING,
        error="",
        result=None,
        started_at=None,
        finished_at=None,
        progress_done=0,
        progress_total=0,
    )
    audit(job=job, user=user, via=via, action=AuditAction.RETRIED, detail=detail)
    _enqueue_on_commit(job)
    job.refresh_from_db()
    return job


def _require_create_again(job: Job, user: Any, config: dict | None = None) -> None:
    """Running a job again (submit, retry) needs the right to create one of its type,
    checked for whoever acts now: the right may have been withdrawn since."""
    try:
        jt = registry.get(job.job_type)
    except ValidationError:
        return  # its type is gone: the runner fails it with that reason
    if not jt.user_creatable:
        return  # Jobdeck made it (tasks.call) and its config cannot change: may_act decides
    permissions.require_create(
        user, jt, release=job.release, config=job.config if config is None else config
    )


def _replace_unfinished_tasks(job_id: int, names: list[str]) -> None:
    """Keep succeeded tasks whose (position, name) still match; rebuild the rest."""
    kept = set(
        Task.objects.filter(job_id=job_id, status=TaskStatus.SUCCEEDED).values_list(
            "position", "name"
        )
    )
    wanted = set(enumerate(names, start=1))
    Task.objects.filter(job_id=job_id).exclude(
        position__in=[p for p, n in kept if (p, n) in wanted]
    ).delete()
    keep_positions = {p for p, n in kept if (p, n) in wanted}
    Task.objects.bulk_create(
        [
            Task(job_id=job_id, position=p, name=n)
            for p, n in sorted(wanted)
            if p not in keep_positions
        ]
    )
    Job.objects.filter(pk=job_id).update(
        progress_total=len(names), progress_done=len(keep_positions)
    )


@transaction.atomic
def job_delete(
    *,
    job: Job,
    user=None,
    via: str = "system",
    statuses: Iterable[str] = (*FINISHED_STATUSES, JobStatus.DRAFT),
    action: str = "delete",
) -> None:
    """Delete a job in one of `statuses` (by default finished jobs and drafts) with its
    tasks and logs; active jobs are always refused. The status check and the delete
    happen under one row lock, so a job cannot change status in between."""
    deletable = tuple(s for s in statuses if s not in ACTIVE_STATUSES)
    locked = Job.objects.select_for_update().filter(pk=job.pk, status__in=deletable)
    if not locked.exists():
        current = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        raise IllegalTransition(job.pk, action, current, allowed=deletable)
    audit(
        job=None,
        user=user,
        via=via,
        action=AuditAction.DELETED,
        detail={"job": job.pk, "job_type": job.job_type},
    )
    _delete_jobs([job.pk])


# --- logs and progress ------------------------------------------------------------


def clean_log_message(message: str) -> str:
    """Bounded, and storable everywhere (PostgreSQL text cannot hold NUL)."""
    limit = settings.JOBDECK_LOG_MESSAGE_MAX
    message = message.replace("\x00", "\\x00")
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    return message


def job_log(
    *, job_id: int, message: str, level: int = LogLevel.INFO, task_id: int | None = None
) -> JobLog:
    """Append one log line (one INSERT; the id is the follow cursor)."""
    from .logbuffer import flush_active

    flush_active(job_id)  # lines the running job buffered come first
    return JobLog.objects.create(
        job_id=job_id, task_id=task_id, level=level, message=clean_log_message(message)
    )


def job_log_many(job_id: int, lines: Sequence[tuple[int | None, datetime, int, str]]) -> None:
    """Append `lines` ((task_id, created_at, level, clean message), in order) to a job in
    one multi-row INSERT; ids follow the given order (the worker's log buffer)."""
    adapt = connection.ops.adapt_datetimefield_value
    _bulk_insert(
        JobLog,
        [
            {
                "job_id": job_id,
                "task_id": task_id,
                "created_at": adapt(created_at),
                "level": level,
                "message": message,
            }
            for task_id, created_at, level, message in lines
        ],
        returning=False,
    )


def job_task_progress(*, job_id: int, task: Task | None, done: int, total: int) -> None:
    if task is None:
        return
    Task.objects.filter(pk=task.pk, job_id=job_id).update(
        progress_done=max(0, done), progress_total=max(0, total)
    )


def job_cancel_requested(*, job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested_at__isnull=False).exists()


# --- cleanup and recovery -----------------------------------------------------------


def _deletion_plan(model: type) -> tuple[Any, ...] | None:
    """How to delete rows of `model` with plain SQL, read from the model _meta so that
    a relation added later is covered: for each relation pointing at `model`, CASCADE
    (recursively, leaf models first), SET_NULL, or nothing (DO_NOTHING and the DB_*
    variants the database applies itself). None when a relation needs Django's
    collector (PROTECT, RESTRICT, SET_DEFAULT, SET(...), generic relations, a cycle)."""
    from django.db.models import deletion

    def plan(model: type, seen: frozenset) -> tuple[Any, ...] | None:
        if (
            model in seen
            or model._meta.parents
            or any(hasattr(f, "bulk_related_objects") for f in model._meta.private_fields)
        ):
            return None
        cascades, set_nulls = [], []
        for rel in deletion.get_candidate_relations_to_delete(model._meta):
            field, on_delete = rel.field, rel.on_delete
            if on_delete is deletion.CASCADE:
                sub = plan(rel.related_model, seen | {model})
                if sub is None:
                    return None
                cascades.append((field, sub))
            elif on_delete is deletion.SET_NULL:
                set_nulls.append(field)
            elif on_delete not in deletion.SKIP_COLLECTION:
                return None
        cascades.sort(key=lambda step: len(step[1][1]))  # leaves first: fewer empty probes
        return (model, tuple(cascades), tuple(set_nulls))

    return plan(model, frozenset())


def _plan_models(plan: tuple[Any, ...]) -> Iterable[type]:
    model, cascades, _ = plan
    yield model
    for _, sub in cascades:
        yield from _plan_models(sub)


def _in_ids(column: str, ids: list[int]) -> tuple[str, list[Any]]:
    """`column` among `ids`: one array parameter on PostgreSQL (a list of thousands of
    parameters costs more to send and parse than the delete itself), else IN (…)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _run_deletion_plan(
    cursor: Any,
    plan: tuple[Any, ...],
    where: tuple[str, list[Any]],
    counts: dict[str, int],
    ids: list[int] | None = None,
) -> None:
    """Delete the rows of the plan's model matching `where` (SQL on its table; their
    primary keys are `ids` when known) after what cascades from them, and null the
    SET_NULL references to them: one statement per relation."""
    model, cascades, set_nulls = plan
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)

    def pointing_at(field: Any) -> tuple[str, str, list[Any]]:
        """(table, condition, params) of the rows of field.model pointing at `where`."""
        column = f"{qn(field.model._meta.db_table)}.{qn(field.column)}"
        if ids is not None and field.target_field == model._meta.pk:
            return (qn(field.model._meta.db_table), *_in_ids(column, ids))
        target = f"{table}.{qn(field.target_field.column)}"
        sql = f"{column} IN (SELECT {target} FROM {table} WHERE {where[0]})"
        return qn(field.model._meta.db_table), sql, where[1]

    for field, sub in cascades:
        _, sql, params = pointing_at(field)
        _run_deletion_plan(cursor, sub, (sql, params), counts)
    for field in set_nulls:
        related, sql, params = pointing_at(field)
        cursor.execute(f"UPDATE {related} SET {qn(field.column)} = NULL WHERE {sql}", params)
    cursor.execute(f"DELETE FROM {table} WHERE {where[0]}", where[1])
    counts[model._meta.label] = counts.get(model._meta.label, 0) + max(cursor.rowcount, 0)


def _delete_jobs(ids: list[int]) -> dict[str, int]:
    """Delete jobs `ids` and what cascades from them (tasks, logs, audit events, …);
    SET_NULL references to them (schedules, occurrences, …) are nulled. Returns counts.

    Call it inside a transaction holding the jobs' row locks. One DELETE or UPDATE
    per relation found in the models' _meta, by primary keys, instead of Django's
    collector (which loads every job and task). Falls back to the collector when a
    relation or a delete signal receiver needs it.
    """
    from django.db.models import signals

    if not ids:
        return {"jobs": 0, "tasks": 0, "logs": 0}
    counts: dict[str, int] = {}
    plan = _deletion_plan(Job)
    if plan is None or any(
        signals.pre_delete.has_listeners(m) or signals.post_delete.has_listeners(m)
        for m in _plan_models(plan)
    ):
        _, counts = Job.objects.filter(pk__in=ids).delete()
    else:
        qn = connection.ops.quote_name
        pk = f"{qn(Job._meta.db_table)}.{qn(Job._meta.pk.column)}"
        with connection.cursor() as cursor:
            _run_deletion_plan(cursor, plan, _in_ids(pk, ids), counts, ids)
    return {
        "jobs": counts.get(Job._meta.label, 0),
        "tasks": counts.get(Task._meta.label, 0),
        "logs": counts.get(JobLog._meta.label, 0),
    }


def job_cleanup(
    *,
    older_than: timedelta,
    dry_run: bool = False,
    user=None,
    via: str = "system",
    batch_size: int | None = None,
    pause: float | None = None,
) -> dict[str, Any]:
    """Delete finished jobs (with tasks and logs) that finished before now - `older_than`.

    Never touches draft, pending or running jobs. Works in batches (in id order), each
    in its own short transaction with the batch's rows locked, so a concurrent retry
    either happens first (and the job is kept) or finds the job gone; a job locked by
    someone else is skipped (SKIP LOCKED) and left for the next cleanup. `pause`
    (default JOBDECK_CLEANUP_PAUSE_SECONDS) sleeps between batches, leaving the
    database and the cores to the workers: a slower cleanup, a steadier drain.
    """
    if not permissions.may_clean_up(user):
        raise PermissionDenied(f"cleanup needs the {permissions.CLEANUP_JOBS} permission")
    if older_than < timedelta(0):
        raise ValidationError({"older_than_days": ["Must be zero or more."]})
    if older_than > timedelta(days=CLEANUP_MAX_DAYS):
        raise ValidationError({"older_than_days": [f"At most {CLEANUP_MAX_DAYS}."]})
    cutoff = timezone.now() - older_than
    candidates = Job.objects.filter(status__in=FINISHED_STATUSES, finished_at__lt=cutoff)
    if dry_run:
        return {
            "dry_run": True,
            "cutoff": cutoff.isoformat(),
            "jobs": candidates.count(),
            "tasks": Task.objects.filter(job__in=candidates).count(),
            "logs": JobLog.objects.filter(job__in=candidates).count(),
        }
    batch_size = batch_size or settings.JOBDECK_CLEANUP_BATCH_SIZE
    pause = settings.JOBDECK_CLEANUP_PAUSE_SECONDS if pause is None else pause
    totals = {"jobs": 0, "tasks": 0, "logs": 0}
    last = 0  # keyset: each batch starts after the previous one, not over its dead rows
    while True:
        if last and pause > 0:
            time.sleep(pause)
        with transaction.atomic():
            ids = list(
                candidates.filter(pk__gt=last)
                .select_for_update(skip_locked=True)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            last = ids[-1]
            for key, value in _delete_jobs(ids).items():
                totals[key] += value
        if len(ids) < batch_size:  # the rest is locked by others (skipped) or none
            break
    summary = {"dry_run": False, "cutoff": cutoff.isoformat(), **totals}
    audit(job=None, user=user, via=via, action=AuditAction.CLEANUP, detail=summary)
    return summary


def retry_delay(job: Job, base: float | None = None) -> timedelta:
    """Exponential backoff with jitter: base * 2^(attempt-1), ±50 %."""
    base = settings.JOBDECK_RETRY_BACKOFF_SECONDS if base is None else base
    seconds = base * (2 ** max(0, job.attempts - 1)) * random.uniform(0.5, 1.5)
    return timedelta(seconds=min(seconds, 3600))


def sweep_stale_jobs(
    *, now: datetime | None = None, workers: Collection[str] | None = None
) -> dict[str, int]:
    """Recover running jobs whose worker stopped heartbeating (killed, machine lost).

    Each is re-queued while attempts remain, else failed with a clear error. The
    UPDATE re-checks staleness, so a worker that heartbeats meanwhile keeps its job.

    With `workers` ("host:pid" names the caller knows to be dead: `manage.py serve`
    after killing its cluster), their running jobs are recovered by the same rules at
    once, whatever their last heartbeat.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.JOBDECK_STALE_SECONDS)
    lost = Q(heartbeat_at__lt=cutoff) if workers is None else Q(worker__in=list(workers))
    stale = Job.objects.filter(lost, status=JobStatus.RUNNING)
    counts = {"requeued": 0, "failed": 0, "cancelled": 0}
    fields = ("pk", "attempts", "max_attempts", "worker", "heartbeat_at", "job_type", "queue")
    for job in stale.only(*fields, "cancel_requested_at"):
        if workers is None:
            reason = (
                f"worker lost: no heartbeat from {job.worker or 'its worker'} "
                f"since {job.heartbeat_at.isoformat()}"
            )
        else:
            reason = f"worker stopped: {job.worker} was killed when its cluster shut down"
        with transaction.atomic():
            still_stale = Job.objects.filter(
                lost, pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts
            )
            if job.cancel_requested_at is not None:
                # Someone asked to cancel it: a lost worker does not earn a re-run.
                outcome = "cancelled"
                won = still_stale.update(
                    status=JobStatus.CANCELLED, error=reason, finished_at=now, heartbeat_at=None
                )
            elif job.attempts < job.max_attempts:
                outcome = "requeued"
                won = still_stale.filter(cancel_requested_at__isnull=True).update(
                    status=JobStatus.PENDING,
                    error=reason,
                    worker="",
                    heartbeat_at=None,
                    run_after=now + retry_delay(job),
                )
            else:
                outcome = "failed"
                won = still_stale.update(
                    status=JobStatus.FAILED, error=reason, finished_at=now, heartbeat_at=None
                )
            if not won:
                continue
            Task.objects.filter(job_id=job.pk, status=TaskStatus.RUNNING).update(
                status=TaskStatus.FAILED, error=reason, finished_at=now
            )
            if outcome == "cancelled":
                Task.objects.filter(job_id=job.pk, status=TaskStatus.PENDING).update(
                    status=TaskStatus.SKIPPED
                )
            suffix = {
                "requeued": "re-queued",
                "failed": "attempts exhausted",
                "cancelled": "cancelled as requested",
            }[outcome]
            JobLog.objects.create(
                job_id=job.pk, level=LogLevel.ERROR, message=f"{reason} — {suffix}"
            )
            counts[outcome] += 1
            if outcome == "requeued":
                _enqueue_on_commit(job)
    return counts


# --- bulk creation ------------------------------------------------------------------

BULK_MAX_JOBS = 10_000


class BulkValidationError(ValidationError):
    """Bulk creation refused; `errors` maps each bad item's index to its field errors."""

    def __init__(self, errors: dict[int, dict[str, list[str]]]):
        self.errors = errors
        # A readable summary for front doors that only print messages (commands).
        summary = [
            f"job {index}: {field}: {'; '.join(messages)}"
            for index, fields in list(errors.items())[:20]
            for field, messages in fields.items()
        ]
        super().__init__({"jobs": summary})


_BulkCacheEntry = tuple[registry.JobType, dict, list[str]] | ValidationError


def _bulk_validated_config(
    job_type: Any,
    config: Any,
    release: Any,
    user: Any,
    cache: dict[tuple[str, str, Any], _BulkCacheEntry],
) -> tuple[registry.JobType, dict, list[str]]:
    """The job type, clean config and task names, validated once per distinct item.

    Bulk calls usually repeat a few configs; a config serializer is a pure function
    of its input, so validating each distinct (type, config, release) once is what
    makes 10,000 jobs per second possible. Raises JobTypeDenied (the whole call is
    refused) when `user` may not create the type.
    """
    try:
        key: tuple[str, str, Any] | None = (
            str(job_type),
            json.dumps(config, sort_keys=True),
            release.pk if release is not None else None,
        )
    except (TypeError, ValueError):  # not plain JSON: validate it, never cache it
        key = None
    entry = cache.get(key) if key is not None else None
    if entry is None:
        try:
            jt = registry.get(job_type)
            if jt.user_creatable:
                permissions.require_create(user, jt, release=release)
            jt, clean = validated_type_and_config(job_type, config)
            if jt.requires_release and release is None:
                raise ValidationError({"release": [f"Job type {jt.name!r} needs a release."]})
            clean = registry.validate_for_release(jt, clean, release)
            permissions.require_create(user, jt, release=release, config=clean)
            entry = (jt, clean, jt.tasks(clean))
        except ValidationError as exc:
            entry = exc
        if key is not None:
            cache[key] = entry
    if isinstance(entry, ValidationError):
        raise entry
    return entry


def _error_dict(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def _wake_workers(count: int) -> None:
    for _ in range(count):
        enqueue_wakeup(None)


def _bulk_insert(
    model: type, rows: list[dict[str, Any]], *, returning: bool, batch_size: int = 1000
) -> list[int]:
    """INSERT `rows` (column → db-ready value; omitted columns get the field default).

    Django's bulk_create prepares every value of every field in Python, which is
    most of its cost at 10,000 rows; here the defaults are prepared once and the
    varying values come in ready. Ids come back in row order with RETURNING, the
    same guarantee bulk_create relies on.
    """
    if not rows:
        return []
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {
        f.column: f.get_db_prep_save(f.get_default(), connection)
        for f in fields
        if f.column not in rows[0]
    }
    columns = [f.column for f in fields]
    quote = connection.ops.quote_name
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, columns))}) VALUES "
    tail = f" RETURNING {quote(model._meta.pk.column)}" if returning else ""
    if connection.vendor == "postgresql":
        # One array per column through UNNEST (as Django's own bulk_create does on
        # PostgreSQL): a handful of parameters instead of one per value, which
        # psycopg would otherwise have to splice into a huge statement.
        casts = ", ".join(f"%s::{f.cast_db_type(connection)}[]" for f in fields)
        head = head.removesuffix(" VALUES ") + f" SELECT * FROM UNNEST({casts})"
        batch_size = 5000
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            if connection.vendor == "postgresql":
                params = [[row.get(c, defaults.get(c)) for row in batch] for c in columns]
                sql = head + tail
            else:
                params = [row.get(c, defaults.get(c)) for row in batch for c in columns]
                sql = head + ", ".join([row_sql] * len(batch)) + tail
            cursor.execute(sql, params)
            if returning:
                ids.extend(r[0] for r in cursor.fetchall())
    return ids


def job_bulk_create(
    *,
    specs: Sequence[Mapping[str, Any]],
    user=None,
    via: str = "system",
    now: datetime | None = None,
) -> list[int]:
    """Create up to BULK_MAX_JOBS pending jobs with their tasks, all or nothing.

    Each spec holds job_type, config and optionally release (an object), priority,
    run_after and max_attempts, as for `job_create`. Every item is validated before
    anything is written; BulkValidationError names each bad item by its index.
    Jobs and tasks go in with multi-row INSERTs, and once the transaction commits
    only min(n, workers) wake-up messages are sent, not one per job: each woken
    worker keeps claiming runnable jobs from the table, so the broker is never the
    limit. Returns the new jobs' ids in input order.
    """
    if not specs:
        raise ValidationError({"jobs": ["At least one job is required."]})
    if len(specs) > BULK_MAX_JOBS:
        raise ValidationError({"jobs": [f"At most {BULK_MAX_JOBS} jobs per call."]})
    now = now or timezone.now()
    owner = user if user is not None and user.is_authenticated else None
    adapt_dt = connection.ops.adapt_datetimefield_value
    config_field = Job._meta.get_field("config")
    db_now = adapt_dt(now)
    cache: dict[tuple[str, str, Any], _BulkCacheEntry] = {}
    # id(clean config) → (the config, its db value): made once per distinct config; the
    # config is kept referenced so its id cannot be reused by another item's.
    db_configs: dict[int, tuple[dict, Any]] = {}
    errors: dict[int, dict[str, list[str]]] = {}
    job_rows: list[dict[str, Any]] = []
    task_names: list[list[str]] = []
    for index, spec in enumerate(specs):
        try:
            if spec.get("draft"):
                raise ValidationError({"draft": ["Bulk creation makes pending jobs only."]})
            release = spec.get("release")
            jt, clean, names = _bulk_validated_config(
                spec.get("job_type"), spec.get("config"), release, user, cache
            )
            priority = spec.get("priority", 0)
            max_attempts = spec.get("max_attempts")
            run_after = spec.get("run_after")
            _validate_scheduling(priority=priority, run_after=run_after, max_attempts=max_attempts)
        except ValidationError as exc:
            errors[index] = _error_dict(exc)
            continue
        if id(clean) not in db_configs:
            db_configs[id(clean)] = (clean, config_field.get_db_prep_save(clean, connection))
        job_rows.append(
            {
                "job_type": jt.name,
                "status": JobStatus.PENDING.value,
                "config": db_configs[id(clean)][1],
                "release_id": release.pk if release is not None else None,
                "created_by_id": owner.pk if owner is not None else None,
                "priority": priority,
                "run_after": adapt_dt(run_after) if run_after is not None else None,
                "max_attempts": max_attempts or jt.max_attempts,
                "created_at": db_now,
                "queued_at": db_now,
                "progress_total": len(names),
            }
        )
        task_names.append(names)
    if errors:
        raise BulkValidationError(errors)
    with transaction.atomic():
        ids = _bulk_insert(Job, job_rows, returning=True)
        pending = TaskStatus.PENDING.value
        _bulk_insert(
            Task,
            [
                {"job_id": job_id, "position": position, "name": name, "status": pending}
                for job_id, names in zip(ids, task_names, strict=True)
                for position, name in enumerate(names, start=1)
            ],
            returning=False,
        )
        audit(
            job=None,
            user=user,
            via=via,
            action=AuditAction.CREATED,
            detail={"bulk": len(ids), "first": ids[0], "last": ids[-1]},
        )
        wakeups = min(len(ids), int(settings.Q_CLUSTER.get("workers") or 1))
        transaction.on_commit(lambda: _wake_workers(wakeups), robust=True)
    return ids
