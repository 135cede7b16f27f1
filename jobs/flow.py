"""Flow control, read side: which queues and job types may start work now, how many
at once and how fast (docs/flow-control.md).

A rule comes from the job type's code (`concurrency_limit`, `rate_limit`,
`concurrency_key`…, see jobs.registry.JobType) and an operator's FlowSetting row
overrides it (paused, limits); a queue has only its row. While no rule is set the
engine claims with claim_next, the statement of a system without flow control; once
one is, with claim_governed, which walks one lane per open (queue, job type) pair.
This module works out those lanes and the rate windows; the engine makes the writes
(jobs.engine.transitions), jobs.flow_changes the operator's changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone

from . import registry
from .models import FlowScope, FlowSetting, Job, JobStatus, RateSlot

# Rate slots start as if last used long ago.
RATE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# The largest limit an operator may set (slots are numbered below it).
MAX_LIMIT = 10_000
# The longest rate period (a day).
MAX_PERIOD = 86_400

# A FlowSetting row that makes the claim governed (the guard of claim_next says the same).
ACTIVE = Q(paused=True) | Q(concurrency_limit__isnull=False) | Q(rate_limit__isnull=False)


@dataclass(frozen=True)
class Rules:
    """The rules in force for one queue or job type."""

    paused: bool = False
    concurrency_limit: int | None = None
    rate_limit: int | None = None
    rate_period: int | None = None
    timeout_seconds: int | None = None

    @property
    def rate(self) -> tuple[int, int] | None:
        if self.rate_limit is None:
            return None
        return self.rate_limit, self.rate_period or 60


def rate_scope(kind: str, name: str) -> str:
    """The RateSlot scope of a type ("type"), queue ("queue") or lock key ("key")."""
    return f"{kind}:{name}"


# --- the rules -------------------------------------------------------------------------


def code_rules(job_type: registry.JobType | None) -> Rules:
    """A job type's rules as its code sets them (none for an unknown type)."""
    if job_type is None:
        return Rules()
    rate = job_type.rate_limit
    return Rules(
        concurrency_limit=job_type.concurrency_limit,
        rate_limit=rate[0] if rate else None,
        rate_period=rate[1] if rate else None,
        timeout_seconds=job_type.timeout_seconds,
    )


def settings_rows() -> dict[tuple[str, str], FlowSetting]:
    """Every operator setting, by (scope, name): one query on a table of a few rows."""
    return {(row.scope, row.name): row for row in FlowSetting.objects.all()}


def merged(base: Rules, row: FlowSetting | None) -> Rules:
    """`base` with an operator's overrides (a null column keeps the base)."""
    if row is None:
        return base
    period = row.rate_period_seconds if row.rate_limit is not None else None
    return Rules(
        paused=row.paused,
        concurrency_limit=(
            row.concurrency_limit if row.concurrency_limit is not None else base.concurrency_limit
        ),
        rate_limit=row.rate_limit if row.rate_limit is not None else base.rate_limit,
        rate_period=(period or base.rate_period)
        if row.rate_limit is not None
        else base.rate_period,
        timeout_seconds=(
            row.timeout_seconds if row.timeout_seconds is not None else base.timeout_seconds
        ),
    )


def _registered(name: str) -> registry.JobType | None:
    try:
        return registry.get(name)
    except Exception:
        return None


def type_rules(name: str, rows: dict[tuple[str, str], FlowSetting] | None = None) -> Rules:
    rows = settings_rows() if rows is None else rows
    return _rules_of(_registered(name), name, rows)


def _rules_of(
    job_type: registry.JobType | None, name: str, rows: dict[tuple[str, str], FlowSetting]
) -> Rules:
    """The rules of the type registered as `name`: its code's, with its setting's overrides."""
    return merged(code_rules(job_type), rows.get((FlowScope.TYPE, name)))


def queue_rules(name: str, rows: dict[tuple[str, str], FlowSetting] | None = None) -> Rules:
    rows = settings_rows() if rows is None else rows
    return merged(Rules(), rows.get((FlowScope.QUEUE, name)))


def key_rate(job_type: registry.JobType | None) -> tuple[int, int] | None:
    """(starts, seconds) allowed per lock key of a job type with a concurrency_key."""
    if job_type is None or not job_type.concurrency_key:
        return None
    return job_type.key_rate_limit


def code_governed() -> bool:
    """Whether a registered job type's code sets a limit (then every claim is governed)."""
    return any(
        jt.concurrency_limit is not None
        or jt.rate_limit is not None
        or (jt.concurrency_key and jt.key_rate_limit is not None)
        for jt in registry.all_types()
    )


def settings_active() -> bool:
    """Whether an operator's setting pauses or limits anything."""
    return FlowSetting.objects.filter(ACTIVE).exists()


def is_active(row: FlowSetting) -> bool:
    """ACTIVE, for a row already read."""
    return row.paused or row.concurrency_limit is not None or row.rate_limit is not None


def governed() -> bool:
    return code_governed() or settings_active()


_timeouts: tuple[float, dict[str, int]] = (0.0, {})


def timeout_override(job_type: str) -> int | None:
    """An operator's timeout for new jobs of `job_type` (None: the code's), read at most
    every JOBDECK_FLOW_REFRESH_SECONDS per process: creating a job costs no query for
    it, and a changed timeout applies to jobs created from then on."""
    global _timeouts
    expires, overrides = _timeouts
    now = time.monotonic()
    if now >= expires:
        overrides = {
            name: timeout
            for name, timeout in FlowSetting.objects.filter(
                scope=FlowScope.TYPE, timeout_seconds__isnull=False
            ).values_list("name", "timeout_seconds")
            if timeout is not None
        }
        _timeouts = (now + settings.JOBDECK_FLOW_REFRESH_SECONDS, overrides)
    return overrides.get(job_type)


def forget_timeouts() -> None:
    """Drop the cached overrides (after a change in this process; tests)."""
    global _timeouts
    _timeouts = (0.0, {})


# --- the lanes of a claim -----------------------------------------------------------------


@dataclass(frozen=True)
class Lane:
    queue: str
    job_type: str
    type_limit: int | None
    queue_limit: int | None


@dataclass
class Snapshot:
    """What a governed claim may take from: its open lanes, and the rate scopes each
    claimed job must take a slot of (with their (starts, seconds))."""

    lanes: list[Lane]
    governed: bool = True  # False: no rule is set (claim_next claims alone)
    type_rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    queue_rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    key_rates: dict[str, tuple[int, int]] = field(default_factory=dict)

    def rate_scopes(self, job: Job) -> list[tuple[str, tuple[int, int]]]:
        """The (scope, rate) a claimed `job` starts under."""
        scopes = []
        if (rate := self.type_rates.get(job.job_type)) is not None:
            scopes.append((rate_scope("type", job.job_type), rate))
        if (rate := self.queue_rates.get(job.queue)) is not None:
            scopes.append((rate_scope("queue", job.queue), rate))
        if job.lock and (rate := self.key_rates.get(job.job_type)) is not None:
            scopes.append((rate_scope("key", job.lock), rate))
        return scopes

    def without(self, scope: str) -> None:
        """Close the lanes of a type or queue scope whose window turned out full."""
        kind, _, name = scope.partition(":")
        if kind == "type":
            self.lanes = [lane for lane in self.lanes if lane.job_type != name]
        elif kind == "queue":
            self.lanes = [lane for lane in self.lanes if lane.queue != name]


def snapshot(queues: Sequence[str], now: datetime | None = None) -> Snapshot:
    """The open lanes of `queues`: every registered job type in every queue, less the
    paused ones and those whose rate window is full (one query on the settings, one on
    the rate slots when a rate is set); `governed` False when no rule is set at all."""
    now = now or timezone.now()
    rows = settings_rows()
    if not code_governed() and not any(is_active(row) for row in rows.values()):
        return Snapshot(lanes=[], governed=False)
    open_queues = {q: queue_rules(q, rows) for q in queues}
    open_queues = {q: r for q, r in open_queues.items() if not r.paused}
    types = {jt.name: _rules_of(jt, jt.name, rows) for jt in registry.all_types()}
    types = {name: r for name, r in types.items() if not r.paused}
    snap = Snapshot(lanes=[])
    snap.type_rates = {n: r.rate for n, r in types.items() if r.rate is not None}
    snap.queue_rates = {q: r.rate for q, r in open_queues.items() if r.rate is not None}
    snap.key_rates = {
        jt.name: rate for jt in registry.all_types() if (rate := key_rate(jt)) is not None
    }
    full = full_scopes(
        {rate_scope("type", n): r for n, r in snap.type_rates.items()}
        | {rate_scope("queue", q): r for q, r in snap.queue_rates.items()},
        now,
    )
    snap.lanes = [
        Lane(queue, name, t.concurrency_limit, q.concurrency_limit)
        for queue, q in sorted(open_queues.items())
        if rate_scope("queue", queue) not in full
        for name, t in sorted(types.items())
        if rate_scope("type", name) not in full
    ]
    return snap


def full_scopes(rates: dict[str, tuple[int, int]], now: datetime) -> dict[str, datetime]:
    """The scopes among `rates` whose window is full now, with when a slot opens."""
    if not rates:
        return {}
    used: dict[str, list[datetime]] = {}
    for scope, slot, started in RateSlot.objects.filter(scope__in=rates).values_list(
        "scope", "slot", "started_at"
    ):
        if slot < rates[scope][0]:
            used.setdefault(scope, []).append(started)
    full = {}
    for scope, (limit, period) in rates.items():
        starts = used.get(scope, [])
        window = timedelta(seconds=period)
        recent = [s for s in starts if s > now - window]
        if len(recent) >= limit:
            full[scope] = min(recent) + window
    return full


def recent_starts(scope: str, rate: tuple[int, int], now: datetime) -> list[datetime]:
    """The starts within the current window of a rate scope, oldest first."""
    limit, period = rate
    cutoff = now - timedelta(seconds=period)
    return sorted(
        RateSlot.objects.filter(scope=scope, slot__lt=limit, started_at__gt=cutoff).values_list(
            "started_at", flat=True
        )
    )


def next_opening(queues: Sequence[str], now: datetime | None = None) -> datetime | None:
    """When the earliest full rate window of `queues`' lanes opens (None: none is full
    while a job waits in it): the drain sleeps until then, or leaves a wake-up for it."""
    now = now or timezone.now()
    rows = settings_rows()
    rates: dict[str, tuple[int, int]] = {}
    for q in queues:
        if (rate := queue_rules(q, rows).rate) is not None:
            rates[rate_scope("queue", q)] = rate
    for jt in registry.all_types():
        rate = _rules_of(jt, jt.name, rows).rate
        if rate is not None:
            rates[rate_scope("type", jt.name)] = rate
        if (krate := key_rate(jt)) is not None:
            waiting_keys = (
                Job.objects.filter(
                    status=JobStatus.PENDING, waiting_on=0, job_type=jt.name, queue__in=queues
                )
                .exclude(lock=None)
                .values_list("lock", flat=True)
                .distinct()[:100]
            )
            for lock in waiting_keys:
                if lock is not None:
                    rates[rate_scope("key", lock)] = krate
    full = full_scopes(rates, now)
    if not full:
        return None
    waiting = _scopes_with_pending(full, queues)
    openings = [at for scope, at in full.items() if scope in waiting]
    return min(openings) if openings else None


def _scopes_with_pending(scopes: Iterable[str], queues: Sequence[str]) -> set[str]:
    pending = Job.objects.filter(status=JobStatus.PENDING, waiting_on=0, queue__in=queues)
    found = set()
    for scope in scopes:
        kind, _, name = scope.partition(":")
        lookup = {"type": "job_type", "queue": "queue", "key": "lock"}[kind]
        if pending.filter(**{lookup: name}).exists():
            found.add(scope)
    return found


# --- what is open now (the readable definition, and the figures) ---------------------------


@dataclass(frozen=True)
class Closed:
    """The queues and types no job may start in now, with why (for runnable() and the
    waiting reasons)."""

    queues: dict[str, str]
    types: dict[str, str]


def closed(queues: Iterable[str] | None = None, now: datetime | None = None) -> Closed:
    """Queues and job types that start nothing now: paused, at their concurrency limit,
    or at their rate limit (until when)."""
    now = now or timezone.now()
    rows = settings_rows()
    names = set(queues) if queues is not None else set()
    names |= {name for scope, name in rows if scope == FlowScope.QUEUE}
    running_by = running_counts()
    shut_queues: dict[str, str] = {}
    for q in sorted(names):
        r = queue_rules(q, rows)
        if reason := _closed_reason("queue", q, r, running_by["queue"].get(q, 0), now):
            shut_queues[q] = reason
    shut_types: dict[str, str] = {}
    type_names = {jt.name for jt in registry.all_types()}
    type_names |= {name for scope, name in rows if scope == FlowScope.TYPE}
    for name in sorted(type_names):
        r = type_rules(name, rows)
        if reason := _closed_reason("type", name, r, running_by["type"].get(name, 0), now):
            shut_types[name] = reason
    return Closed(shut_queues, shut_types)


def _closed_reason(kind: str, name: str, rules: Rules, running: int, now: datetime) -> str:
    label = "queue" if kind == "queue" else "job type"
    if rules.paused:
        return f"{label} {name} is paused"
    if rules.concurrency_limit is not None and running >= rules.concurrency_limit:
        field = "queue" if kind == "queue" else "job_type"
        holders = (
            Job.objects.filter(status=JobStatus.RUNNING, **{field: name})
            .order_by("pk")
            .values_list("pk", flat=True)[:5]
        )
        named = ", ".join(f"#{pk}" for pk in holders) + (", …" if running > 5 else "")
        return (
            f"{label} {name} is at its concurrency limit "
            f"({running}/{rules.concurrency_limit} running: {named})"
        )
    if rules.rate is not None:
        scope = rate_scope(kind, name)
        opens = full_scopes({scope: rules.rate}, now).get(scope)
        if opens is not None:
            limit, period = rules.rate
            return (
                f"{label} {name} is at its rate limit ({limit} per {period} s); "
                f"next start at {opens:%H:%M:%S} UTC"
            )
    return ""


def running_counts() -> dict[str, dict[str, int]]:
    """Running jobs by type and by queue (one query; running jobs are few)."""
    counts: dict[str, dict[str, int]] = {"type": {}, "queue": {}}
    for row in (
        Job.objects.filter(status=JobStatus.RUNNING)
        .values("job_type", "queue")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        counts["type"][row["job_type"]] = counts["type"].get(row["job_type"], 0) + row["n"]
        counts["queue"][row["queue"]] = counts["queue"].get(row["queue"], 0) + row["n"]
    return counts


def full_keys(locks: Iterable[str | None], now: datetime | None = None) -> dict[str, str]:
    """The lock keys among `locks` at their key's rate limit now, with why."""
    now = now or timezone.now()
    rates: dict[str, tuple[int, int]] = {}
    holders = dict(
        Job.objects.filter(lock__in=set(locks))
        .values_list("lock", "job_type")
        .order_by()
        .distinct()
    )
    for lock, job_type in holders.items():
        if lock is not None and (rate := key_rate(_registered(job_type))) is not None:
            rates[rate_scope("key", lock)] = rate
    reasons = {}
    for scope, opens in full_scopes(rates, now).items():
        limit, period = rates[scope]
        lock = scope.partition(":")[2]
        reasons[lock] = (
            f"key {lock} is at its rate limit ({limit} per {period} s); "
            f"next start at {opens:%H:%M:%S} UTC"
        )
    return reasons


def queue_figures(names: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every queue that has jobs waiting or running, a setting, or is known: its state
    and figures (GET /api/queues/, the admin's Queues page). Three queries."""
    from .queues import known_queues

    now = timezone.now()
    rows = settings_rows()
    pending: dict[str, dict[str, Any]] = {
        row["queue"]: dict(row)
        for row in Job.objects.filter(status=JobStatus.PENDING)
        .values("queue")
        .annotate(n=Count("pk"), oldest=Min("queued_at"))
        .order_by()
    }
    running = running_counts()["queue"]
    every = set(names) | known_queues() | set(pending) | set(running)
    every |= {name for scope, name in rows if scope == FlowScope.QUEUE}
    figures = []
    for name in sorted(every):
        r = queue_rules(name, rows)
        oldest = pending.get(name, {}).get("oldest")
        figures.append(
            {
                "name": name,
                "paused": r.paused,
                "pending": pending.get(name, {}).get("n", 0),
                "running": running.get(name, 0),
                "oldest_pending_seconds": (
                    round((now - oldest).total_seconds(), 3) if oldest is not None else None
                ),
                "concurrency_limit": r.concurrency_limit,
                "rate_limit": r.rate_limit,
                "rate_period_seconds": r.rate[1] if r.rate else None,
            }
        )
    return figures


def type_figures() -> list[dict[str, Any]]:
    """Every registered job type's flow rules and whether each comes from the code or
    an operator (GET /api/job-types/, the Queues page). Two queries."""
    rows = settings_rows()
    running = running_counts()["type"]
    figures = []
    for jt in registry.all_types():
        row = rows.get((FlowScope.TYPE, jt.name))
        r = merged(code_rules(jt), row)
        key = key_rate(jt)
        figures.append(
            {
                "name": jt.name,
                "paused": r.paused,
                "running": running.get(jt.name, 0),
                "concurrency_limit": r.concurrency_limit,
                "rate_limit": r.rate_limit,
                "rate_period_seconds": r.rate[1] if r.rate else None,
                "timeout_seconds": r.timeout_seconds,
                "concurrency_key": jt.concurrency_key,
                "concurrency_key_limit": jt.concurrency_key_limit if jt.concurrency_key else None,
                "key_rate_limit": key[0] if key else None,
                "key_rate_period_seconds": key[1] if key else None,
                "overridden": sorted(
                    f
                    for f in ("paused", "concurrency_limit", "rate_limit", "timeout_seconds")
                    if row is not None and getattr(row, f) not in (None, False)
                ),
            }
        )
    return figures
