"""When a schedule fires: occurrences in the schedule's own timezone, DST rules, words.

Pure functions of a `Spec` and an instant, no database: two clusters computing
the next occurrence of the same schedule always get the same answer, which the
exactly-once firing relies on.

DST rules (daily, weekly and cron schedules follow the local wall clock):

- A wall time inside a spring-forward gap (02:30 in Europe/Paris on the last
  Sunday of March) does not exist; the occurrence fires at the first valid
  instant after the gap (03:00 local). Several cron times inside one gap collapse
  into that one firing.
- A wall time inside a fall-back repeated hour (02:30 in Europe/Paris on the
  last Sunday of October) exists twice; the occurrence fires once, at the first
  of the two (the earlier UTC instant, `fold=0`).

Interval schedules follow elapsed time, not the wall clock: every N minutes on
a grid anchored at the Unix epoch in UTC (so "every 15 minutes" fires at :00,
:15, :30, :45 UTC), unaffected by DST.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError, croniter

from .models import ScheduleKind

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# Upper bound on cron candidates examined for one answer (a repeated hour of an
# every-minute cron skips 60); guards against pathological expressions.
MAX_CRON_STEPS = 10_000

GAP = "gap"
REPEATED = "repeated"


@dataclass(frozen=True)
class Spec:
    """The timing part of a schedule."""

    kind: str
    timezone: str = "UTC"
    interval_minutes: int | None = None
    time: dtime | None = None
    weekdays: tuple[int, ...] = field(default_factory=tuple)
    cron: str = ""

    @classmethod
    def of(cls, schedule) -> Spec:
        """The spec of a Schedule instance (or anything with the same attributes)."""
        return cls(
            kind=schedule.kind,
            timezone=schedule.timezone,
            interval_minutes=schedule.interval_minutes,
            time=schedule.time,
            weekdays=tuple(schedule.weekdays or ()),
            cron=schedule.cron or "",
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Firing:
    """One occurrence: when it fires (UTC), the wall time it stands for, and its DST case."""

    at: datetime  # aware, UTC
    nominal: datetime  # naive local wall time the schedule asked for
    dst: str = ""  # "", GAP or REPEATED


# --- validation helpers --------------------------------------------------------


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone_names() -> list[str]:
    """Every IANA timezone name, sorted (the admin's searchable choice)."""
    return sorted(_zones())


def is_valid_timezone(name: object) -> bool:
    return isinstance(name, str) and name in _zones()


def parse_time(value: object) -> dtime:
    """`"HH:MM"` (or a time) → time; ValueError otherwise."""
    if isinstance(value, dtime):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    if isinstance(value, str):
        match = TIME_RE.match(value.strip())
        if match:
            return dtime(int(match[1]), int(match[2]))
    raise ValueError("Enter a time as HH:MM (00:00 to 23:59).")


def check_cron(expr: object) -> str:
    """The expression normalised to single spaces; ValueError if croniter refuses it."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("Enter a cron expression.")
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(
            "A cron expression has five fields: minute hour day-of-month month day-of-week."
        )
    expr = " ".join(parts)
    try:
        valid = croniter.is_valid(expr)
    except Exception:  # croniter raises more than its own errors on odd input
        valid = False
    if not valid:
        raise ValueError(f"Invalid cron expression: {expr!r}.")
    try:
        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ValueError(f"The cron expression {expr!r} never fires.") from exc
    except Exception as exc:  # CroniterBadCronError and odd input croniter accepted
        raise ValueError(f"Invalid cron expression: {expr!r}.") from exc
    return expr


# --- local wall time → instant -------------------------------------------------


def resolve_local(naive: datetime, tz: ZoneInfo) -> tuple[datetime, str]:
    """The instant a local wall time stands for, by the module's DST rules.

    Returns (aware datetime in `tz`, "" | GAP | REPEATED).
    """
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first, ""
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        return first, REPEATED  # exists twice: fire at the first
    # In a gap, fold=1 maps before the transition and fold=0 after it: find the
    # transition instant between them (whole seconds) by bisection.
    lo = int(second.astimezone(UTC).timestamp())
    hi = int(first.astimezone(UTC).timestamp())
    after = first.astimezone(UTC).astimezone(tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, tz), GAP


def local_dst_note(at: datetime, tz: ZoneInfo) -> str:
    """REPEATED if the instant's local wall time occurs twice that day, else ""."""
    naive = at.astimezone(tz).replace(tzinfo=None)
    return REPEATED if resolve_local(naive, tz)[1] == REPEATED else ""


# --- occurrences ------------------------------------------------------------------


def firings(spec: Spec, after: datetime) -> Iterator[Firing]:
    """Occurrences strictly after `after`, in order, without end."""
    if after.tzinfo is None:
        raise ValueError("`after` must be timezone-aware")
    # Compare in UTC only: aware datetimes sharing a tzinfo compare by wall time,
    # ignoring `fold`, which would confuse the two passes of a repeated hour.
    after = after.astimezone(UTC)
    if spec.kind == ScheduleKind.INTERVAL:
        yield from _interval_firings(spec, after)
    elif spec.kind in (ScheduleKind.DAILY, ScheduleKind.WEEKLY):
        yield from _daily_firings(spec, after)
    elif spec.kind == ScheduleKind.CRON:
        yield from _cron_firings(spec, after)
    else:
        raise ValueError(f"unknown schedule kind {spec.kind!r}")


def next_occurrence(spec: Spec, after: datetime) -> datetime:
    """The first occurrence strictly after `after`, as an aware UTC datetime."""
    return next(firings(spec, after)).at


def occurrences(spec: Spec, after: datetime, n: int) -> list[Firing]:
    it = firings(spec, after)
    return [next(it) for _ in range(n)]


def _interval_firings(spec: Spec, after: datetime) -> Iterator[Firing]:
    step = int(spec.interval_minutes or 0) * 60
    if step <= 0:
        raise ValueError("interval_minutes must be at least 1")
    tz = spec.tz
    ts = (int(after.timestamp()) // step + 1) * step
    while True:
        at = datetime.fromtimestamp(ts, UTC)
        yield Firing(at, at.astimezone(tz).replace(tzinfo=None), local_dst_note(at, tz))
        ts += step


def _daily_firings(spec: Spec, after: datetime) -> Iterator[Firing]:
    if spec.time is None:
        raise ValueError("time is required")
    days = set(range(7)) if spec.kind == ScheduleKind.DAILY else set(spec.weekdays)
    if not days:
        raise ValueError("weekdays is required")
    tz = spec.tz
    # Start the day before: a local date's occurrence can never be earlier than
    # the previous date's, so this visits every candidate in order.
    day: date = after.astimezone(tz).date() - timedelta(days=1)
    while True:
        if day.weekday() in days:
            nominal = datetime.combine(day, spec.time)
            local, dst = resolve_local(nominal, tz)
            at = local.astimezone(UTC)
            if at > after:
                yield Firing(at, nominal, dst)
        day += timedelta(days=1)


def _cron_firings(spec: Spec, after: datetime) -> Iterator[Firing]:
    # croniter walks naive local wall times (no DST arithmetic of its own); each
    # candidate is then resolved by resolve_local, so the DST rules are the same
    # as for daily schedules. Candidates not after the last answer are dropped:
    # the second pass of a repeated hour, and gap times collapsed onto one instant.
    tz = spec.tz
    last = after
    start = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    it = croniter(spec.cron, start)
    steps = 0
    while True:
        try:
            nominal = it.get_next(datetime)
        except CroniterBadDateError as exc:
            raise ValueError(f"the cron expression {spec.cron!r} never fires") from exc
        local, dst = resolve_local(nominal, tz)
        at = local.astimezone(UTC)
        if at > last:
            steps = 0
            last = at
            yield Firing(at, nominal, dst)
            continue
        steps += 1
        if steps > MAX_CRON_STEPS:
            raise ValueError(f"the cron expression {spec.cron!r} found no next occurrence")


# --- words ----------------------------------------------------------------------------


def dst_detail(firing: Firing, spec: Spec) -> str:
    """What the schedule does at an occurrence flagged as a DST gap or repeated hour."""
    wall = firing.nominal.strftime("%H:%M")
    local = firing.at.astimezone(spec.tz)
    if firing.dst == GAP:
        return (
            f"{wall} does not exist on {firing.nominal.date().isoformat()} (clocks go "
            f"forward); fires at {local:%H:%M} local, the first valid time after the gap."
        )
    if firing.dst == REPEATED:
        if spec.kind == ScheduleKind.INTERVAL:
            return (
                f"{wall} occurs twice on {firing.nominal.date().isoformat()} (clocks go "
                "back); interval schedules follow elapsed time and fire in both passes."
            )
        return (
            f"{wall} occurs twice on {firing.nominal.date().isoformat()} (clocks go back); "
            f"fires once, at the first ({local:%H:%M %Z}, UTC{_offset(local)})."
        )
    return ""


def _offset(local: datetime) -> str:
    offset = local.utcoffset()
    if offset is None:
        raise ValueError(f"{local!r} is naive: it has no UTC offset")
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _weekday_words(days: tuple[int, ...]) -> str:
    days = tuple(sorted(set(days)))
    if days == tuple(range(7)):
        return "every day"
    if days == tuple(range(5)):
        return "Monday through Friday"
    if days == (5, 6):
        return "on Saturday and Sunday"
    return "on " + _join([WEEKDAY_NAMES[d] for d in days])


def describe(spec: Spec) -> str:
    """The schedule in words, e.g. "At 09:00, Monday through Friday (Europe/Paris)"."""
    try:
        if spec.kind == ScheduleKind.INTERVAL:
            n = int(spec.interval_minutes or 0)
            if n == 1:
                return "Every minute"
            if n % 1440 == 0:
                return "Every day (every 1440 minutes)" if n == 1440 else f"Every {n // 1440} days"
            if n % 60 == 0:
                return "Every hour" if n == 60 else f"Every {n // 60} hours"
            return f"Every {n} minutes"
        at = spec.time.strftime("%H:%M") if spec.time else "?"
        if spec.kind == ScheduleKind.DAILY:
            return f"Every day at {at} ({spec.timezone})"
        if spec.kind == ScheduleKind.WEEKLY:
            return f"At {at}, {_weekday_words(spec.weekdays)} ({spec.timezone})"
        if spec.kind == ScheduleKind.CRON:
            from cron_descriptor import get_description

            return f"{get_description(spec.cron)} ({spec.timezone})"
    except Exception:  # words are for display; never let them break a page
        pass
    return spec.cron or spec.kind
