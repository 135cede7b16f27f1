"""The django-q2 adaptor: wake-up messages for jobs and drafts.

A broker message is only a wake-up naming a job id (never user data, never a
callable path from input); a woken worker claims jobs from the Job table itself.
With django-q2's ORM broker on the jobs' database, a new job's wake-up is a row
written in the job's own transaction (a transactional outbox); otherwise it is sent
once the transaction commits.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import socket
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone

from . import queues
from .engine import queries
from .queues import DEFAULT_QUEUE

logger = logging.getLogger(__name__)

# The django-q2 entry points, by the dotted path a message names.
RUNNER = "jobs.runner.run_job"
ANALYZER = "jobs.runner.analyze_job"


def enqueue_wakeup(job_id: int | None = None, queue: str = DEFAULT_QUEUE) -> None:
    """Send one message asking a worker of `queue`'s cluster to run `job_id` (or any
    runnable job)."""
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


def enqueue_analysis(job_id: int) -> None:
    from django_q.tasks import async_task

    async_task(ANALYZER, job_id, save=False, task_name=f"analyze-{job_id}")


def wake_workers(count: int, queue: str = DEFAULT_QUEUE) -> None:
    """`count` wake-ups for `queue` (each woken worker drains the queue's jobs)."""
    for _ in range(count):
        enqueue_wakeup(None, queue)


def wake_released(jobs: Sequence[tuple[int, str]]) -> None:
    """Jobs `jobs` ((id, queue)) just became runnable (created in bulk, or their last
    parent completed): a wake-up naming each while few, else as many as the idle
    workers of the queue's live clusters (wake_for_backlog). Called after the commit."""
    by_queue: dict[str, list[int]] = {}
    for job_id, queue in jobs:
        by_queue.setdefault(queue, []).append(job_id)
    for queue, ids in by_queue.items():
        if len(ids) <= workers_per_cluster():
            for job_id in ids:
                enqueue_wakeup(job_id, queue)
        else:
            wake_for_backlog(queue, backlog=len(ids))


def wake_on_commit(job_id: int, queue: str) -> None:
    """Wake job `job_id` once the current transaction commits (at once outside one).

    robust: a broker hiccup after the commit must not fail the request that created
    the job (a client retry would create it twice); the periodic tick wakes it.
    """
    transaction.on_commit(lambda: enqueue_wakeup(job_id, queue), robust=True)


def wake_with_commit(job_id: int, queue: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Wake new job `job_id` as its transaction commits: in that transaction for the
    ORM broker on the same database (see wakeup_in_transaction), after it otherwise.

    In the transaction, a failing INSERT fails the whole creation (nothing is
    committed, so a client retry creates no duplicate); any other error is logged and
    the periodic tick wakes the job, as for a broker hiccup after the commit.
    """
    if not wakeup_in_transaction(using):
        wake_on_commit(job_id, queue)
        return
    try:
        enqueue_wakeup(job_id, queue)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("could not send the wake-up of job %s; the periodic tick wakes it", job_id)


def wakeup_in_transaction(using: str) -> bool:
    """Whether wake-ups for jobs written on database `using` go in the same transaction.

    True for django-q2's ORM broker on that database (and not in sync mode, which would
    run the job right away): the message is then a row like the job's, written with it.
    It commits atomically with the job, is never sent for a rolled-back job, and costs
    no commit of its own. The ORM broker's rows are visible to workers once committed
    (their `lock` is the insert time, already past).
    """
    from django_q.conf import Conf

    return (
        using == Conf.ORM
        and not (Conf.BROKER_CLASS or Conf.IRON_MQ or isinstance(Conf.SQS, dict))
        and not Conf.SYNC
    )


# --- how many wake-ups: every cluster works --------------------------------------------
#
# Clusters started with one name (one per machine) share that name's broker list, and
# each cluster's pusher takes whatever message it sees first, then the next at once:
# it holds up to queue_limit + 1 messages beyond what its free workers run (django-q2
# pusher.py and cluster.py), so a burst of wake-ups mostly lands on one cluster while
# another's workers stay idle. Hence the rule: count the idle workers of *all* the
# queue's live clusters, not one cluster's, and send that many (bounded by the backlog,
# less the wake-ups still waiting in the list); and a draining worker that still sees a
# backlog repeats the count now and then (DrainFanOut), so messages one cluster kept
# are made up for until the idle workers elsewhere have theirs.


def idle_workers(cluster: str) -> int | None:
    """Worker processes of `cluster` (on every machine) alive by their heartbeat and
    running no job; None when none is alive (heartbeats off, or no worker started)."""
    from django.db.models import Exists, OuterRef

    from .models import Job, JobStatus, WorkerProcess

    # Three missed beats: a worker beats every JOBDECK_HEARTBEAT_SECONDS, busy or idle
    # (jobs.worker.heartbeat); a stopped cluster's rows stop counting soon after, and
    # at once on this machine, where a gone pid says so.
    window = min(3 * settings.JOBDECK_HEARTBEAT_SECONDS, settings.JOBDECK_STALE_SECONDS)
    running = Job.objects.filter(status=JobStatus.RUNNING, worker=OuterRef("name"))
    rows = (
        WorkerProcess.objects.filter(
            cluster=cluster, seen_at__gte=timezone.now() - timedelta(seconds=window)
        )
        .annotate(busy=Exists(running))
        .values_list("host", "pid", "busy")
    )
    here = socket.gethostname()
    alive = [busy for host, pid, busy in rows if host != here or _pid_exists(pid)]
    return alive.count(False) if alive else None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, another user's
    return True


def waiting_wakeups(cluster: str) -> int:
    """Messages in `cluster`'s broker list that no cluster has taken yet (each will wake
    a worker); 0 if the broker cannot say."""
    try:
        return int(_broker(cluster).queue_size() or 0)
    except Exception:  # a broker hiccup: count none, so at worst a few extra wake-ups
        logger.warning("could not count the waiting wake-ups of %s", cluster, exc_info=True)
        return 0


def wakeups_for(queue: str, backlog: int | None = None, *, at_least: int = 1) -> int:
    """How many wake-ups `queue` needs: one per idle worker of its live clusters, at
    least `at_least`, at most `backlog` runnable jobs, less the wake-ups already waiting
    in the list (each will wake a worker that drains the queue).

    `backlog` None: the queue's runnable jobs are counted (up to the number wanted),
    and only if a wake-up is wanted at all. `at_least` = 1 for creation, the tick and
    released jobs: a worker counted busy may end its drain before seeing the new jobs,
    and one waiting message covers that race; with no worker announced (heartbeats off,
    clusters starting) they want every cluster's worker count, as before. A draining
    worker's check (DrainFanOut) passes 0: it wakes only workers it knows are idle.
    """
    if backlog is not None and backlog <= 0:
        return 0
    cluster = queues.cluster_for(queue)
    idle = idle_workers(cluster)
    if idle is None:
        idle = workers_per_cluster() if at_least else 0
    wanted = max(at_least, idle)
    if backlog is not None:
        wanted = min(backlog, wanted)
    if wanted <= 0:
        return 0
    waiting = waiting_wakeups(cluster)
    if wanted <= waiting:
        return 0
    if backlog is None:
        from .models import Job

        backlog = Job.objects.runnable(queues=[queue]).values("pk")[:wanted].count()
    # The waiting wake-ups cover the first runnable jobs; wake for those beyond them.
    return max(0, min(backlog, wanted) - waiting)


def wake_for_backlog(queue: str, backlog: int | None = None, *, at_least: int = 1) -> int:
    """Send wakeups_for(…) wake-ups for `queue`; returns how many."""
    count = wakeups_for(queue, backlog, at_least=at_least)
    wake_workers(count, queue)
    return count


class DrainFanOut:
    """A draining worker's check, at its first job (`at_once`) and every `interval`
    seconds after: while its queues have runnable jobs and their clusters idle workers,
    it wakes them (wakeups_for with no backlog given, none at least), so idle workers
    of another cluster never wait long for messages that went elsewhere. A check is a
    query or three; `interval` bounds how often a worker pays it."""

    def __init__(self, served: Sequence[str], *, interval: float, at_once: bool = True) -> None:
        self.served = list(served)
        self.interval = interval
        self.next_check = time.monotonic() + (0.0 if at_once else interval)

    def __call__(self) -> int:
        """Check if due; the wake-ups sent."""
        now = time.monotonic()
        if self.interval < 0 or now < self.next_check:
            return 0
        self.next_check = now + self.interval
        try:
            return sum(wake_for_backlog(queue, None, at_least=0) for queue in self.served)
        except Exception:  # never fail the drain: the next claim meets a real outage
            logger.warning("could not wake idle workers", exc_info=True)
            return 0


# The time a wake-up written now becomes visible (wake_at); None: at once.
_visible_at: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "jobdeck_wake_visible_at", default=None
)


def wake_at(queue: str, at: datetime) -> bool:
    """A wake-up for `queue` that workers see only from `at` on (a rate window that
    opens then: jobs.flow.next_opening). The ORM broker's message is visible once its
    `lock` time has passed, so it is written with lock = `at`. Other brokers cannot
    delay a message: False, and the periodic tick wakes the queue instead."""
    if not wakeup_in_transaction(DEFAULT_DB_ALIAS):
        return False
    token = _visible_at.set(at)
    try:
        with transaction.atomic():
            enqueue_wakeup(None, queue)
    finally:
        _visible_at.reset(token)
    return True


def workers_per_cluster() -> int:
    return int(settings.Q_CLUSTER.get("workers") or 1)


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
    """django-q2's ORM broker, writing a message with one plain INSERT when a
    transaction is open (the job's: see wakeup_in_transaction) instead of
    OrmQ.objects.create(), whose per-field SQL compilation cost as much as the job's
    own INSERT (sql: enqueue_orm_message)."""
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    class OutboxORM(ORM):
        def enqueue(self, task: str) -> Any:
            db = connections[Conf.ORM]
            if db.get_autocommit():
                return super().enqueue(task)  # as django-q2 does, stale-connection check too
            params = {
                "key": self.list_key or Conf.CLUSTER_NAME,
                "payload": task,
                "lock": queries.db_datetime(_visible_at.get() or timezone.now()),
            }
            rows, _ = queries.execute("enqueue_orm_message", params)
            return rows[0]["id"]

    return OutboxORM
