"""Next-occurrence computation in the schedule's own timezone, across DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.timing import GAP, REPEATED, Spec, describe, next_occurrence, occurrences

# Spring-forward and fall-back days of 2026.
DST_DAYS = {
    "Europe/Paris": (date(2026, 3, 29), date(2026, 10, 25)),  # 02:00→03:00, 03:00→02:00
    "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),  # 02:00→03:00, 02:00→01:00
}
ZONES = list(DST_DAYS)


def chain(spec: Spec, start: datetime, end: datetime) -> list[datetime]:
    """Occurrences as the firing loop walks them: each next computed from the previous."""
    out, at = [], next_occurrence(spec, start)
    while at < end:
        out.append(at)
        at = next_occurrence(spec, at)
    return out


def around(day: date, tz: ZoneInfo, days: int = 3) -> tuple[datetime, datetime]:
    start = datetime.combine(day - timedelta(days=days), time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=days + 1), time(), tzinfo=tz)
    return start, end


def local_dates(ats: list[datetime], tz: ZoneInfo) -> list[date]:
    return [a.astimezone(tz).date() for a in ats]


def expected_dates(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    first, last = start.astimezone(tz).date(), (end - timedelta(seconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("which", ["spring", "fall"])
def test_a_daily_0230_schedule_fires_exactly_once_every_day_across_a_dst_change(zone, which):
    tz = ZoneInfo(zone)
    day = DST_DAYS[zone][0 if which == "spring" else 1]
    spec = Spec(kind="daily", timezone=zone, time=time(2, 30))
    start, end = around(day, tz)

    ats = chain(spec, start, end)

    assert local_dates(ats, tz) == expected_dates(start, end, tz)  # none skipped or doubled
    for at in ats:
        local = at.astimezone(tz)
        if local.date() == day and which == "spring":
            assert local.strftime("%H:%M") == "03:00"  # first valid instant after the gap
        else:
            assert local.strftime("%H:%M") == "02:30"
    assert all(b - a >= timedelta(hours=23) for a, b in itertools.pairwise(ats))


def test_a_daily_0230_schedule_fires_at_the_first_of_two_0230s_when_clocks_go_back_in_paris():
    tz = ZoneInfo("Europe/Paris")
    spec = Spec(kind="daily", timezone="Europe/Paris", time=time(2, 30))

    [firing] = occurrences(spec, datetime(2026, 10, 25, tzinfo=UTC) - timedelta(hours=2), 1)

    assert firing.dst == REPEATED
    assert firing.at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, not 02:30 CET
    assert firing.at.astimezone(tz).utcoffset() == timedelta(hours=2)
    # Fired at the first 02:30: the second 02:30 (an hour later) does not fire again.
    assert next_occurrence(spec, firing.at) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)
    assert next_occurrence(spec, firing.at + timedelta(minutes=59)) == datetime(
        2026, 10, 26, 1, 30, tzinfo=UTC
    )


def test_a_daily_0130_schedule_in_new_york_fires_once_in_the_repeated_hour():
    tz = ZoneInfo("America/New_York")
    spec = Spec(kind="daily", timezone="America/New_York", time=time(1, 30))
    start, end = around(date(2026, 11, 1), tz)

    ats = chain(spec, start, end)

    assert local_dates(ats, tz) == expected_dates(start, end, tz)
    on_the_day = [a for a in ats if a.astimezone(tz).date() == date(2026, 11, 1)]
    assert on_the_day == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]  # 01:30 EDT (-04:00)


def test_a_spring_forward_gap_is_reported_with_what_the_schedule_does():
    spec = Spec(kind="daily", timezone="America/New_York", time=time(2, 30))

    [firing] = occurrences(spec, datetime(2026, 3, 8, 0, 0, tzinfo=UTC), 1)

    assert firing.dst == GAP
    assert firing.at == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("which", ["spring", "fall"])
def test_a_daily_0900_schedule_keeps_its_local_time_across_a_dst_change(zone, which):
    tz = ZoneInfo(zone)
    day = DST_DAYS[zone][0 if which == "spring" else 1]
    spec = Spec(kind="daily", timezone=zone, time=time(9, 0))
    start, end = around(day, tz)

    ats = chain(spec, start, end)

    assert local_dates(ats, tz) == expected_dates(start, end, tz)
    assert {a.astimezone(tz).strftime("%H:%M") for a in ats} == {"09:00"}
    # The UTC hour changes by one across the switch: the local time does not.
    assert len({a.hour for a in ats}) == 2


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("which", ["spring", "fall"])
@pytest.mark.parametrize("at", [time(2, 30), time(9, 0)])
def test_a_weekly_schedule_fires_once_on_each_chosen_day_across_a_dst_change(zone, which, at):
    tz = ZoneInfo(zone)
    day = DST_DAYS[zone][0 if which == "spring" else 1]  # a Sunday
    spec = Spec(kind="weekly", timezone=zone, time=at, weekdays=(0, 6))  # Monday, Sunday
    start, end = around(day, tz, days=8)

    ats = chain(spec, start, end)

    dates = local_dates(ats, tz)
    assert dates == [d for d in expected_dates(start, end, tz) if d.weekday() in (0, 6)]
    assert day in dates
    for a in ats:
        hhmm = a.astimezone(tz).strftime("%H:%M")
        gap_day = a.astimezone(tz).date() == day and which == "spring" and at == time(2, 30)
        assert hhmm == ("03:00" if gap_day else at.strftime("%H:%M"))


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("which", ["spring", "fall"])
@pytest.mark.parametrize(("cron", "hhmm"), [("30 2 * * *", "02:30"), ("0 9 * * *", "09:00")])
def test_a_daily_cron_schedule_fires_once_a_day_across_a_dst_change(zone, which, cron, hhmm):
    tz = ZoneInfo(zone)
    day = DST_DAYS[zone][0 if which == "spring" else 1]
    spec = Spec(kind="cron", timezone=zone, cron=cron)
    start, end = around(day, tz)

    ats = chain(spec, start, end)

    assert local_dates(ats, tz) == expected_dates(start, end, tz)
    for a in ats:
        local = a.astimezone(tz)
        gap_day = local.date() == day and which == "spring" and hhmm == "02:30"
        assert local.strftime("%H:%M") == ("03:00" if gap_day else hhmm)


def test_an_hourly_cron_collapses_the_skipped_hour_and_fires_the_repeated_hour_once():
    tz = ZoneInfo("Europe/Paris")
    spec = Spec(kind="cron", timezone="Europe/Paris", cron="0 * * * *")

    def whole_day(day: date) -> list[datetime]:
        start, end = around(day, tz, days=0)
        return chain(spec, start - timedelta(seconds=1), end)

    spring, fall = whole_day(date(2026, 3, 29)), whole_day(date(2026, 10, 25))

    # 23 real hours on the spring day, 02:00 does not exist: 23 firings, none doubled.
    assert len(spring) == len(set(spring)) == 23
    assert "02:00" not in {a.astimezone(tz).strftime("%H:%M") for a in spring}
    # 25 real hours on the fall day, but 02:00 fires once: 24 firings.
    assert len(fall) == 24
    assert [a.astimezone(tz).strftime("%H") for a in fall] == [f"{h:02d}" for h in range(24)]


def test_an_every_15_minutes_cron_fires_once_at_the_end_of_the_gap():
    tz = ZoneInfo("America/New_York")
    spec = Spec(kind="cron", timezone="America/New_York", cron="*/15 1-3 * * *")

    day = chain(spec, *around(date(2026, 3, 8), tz, days=0))

    assert [a.astimezone(tz).strftime("%H:%M") for a in day] == [
        "01:00", "01:15", "01:30", "01:45", "03:00", "03:15", "03:30", "03:45",
    ]  # fmt: skip


def test_an_interval_schedule_follows_elapsed_time_through_dst_changes():
    spec = Spec(kind="interval", timezone="Europe/Paris", interval_minutes=60)
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)

    ats = chain(spec, start, start + timedelta(hours=6))

    assert [b - a for a, b in itertools.pairwise(ats)] == [timedelta(hours=1)] * 4
    assert ats[0] == datetime(2026, 10, 24, 23, 0, tzinfo=UTC)


def test_an_interval_is_aligned_to_a_fixed_utc_grid_so_every_cluster_agrees():
    spec = Spec(kind="interval", timezone="UTC", interval_minutes=15)

    assert next_occurrence(spec, datetime(2026, 1, 1, 10, 7, 31, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 15, tzinfo=UTC
    )
    assert next_occurrence(spec, datetime(2026, 1, 1, 10, 15, tzinfo=UTC)) == datetime(
        2026, 1, 1, 10, 30, tzinfo=UTC
    )


def test_schedules_are_described_in_words():
    assert describe(Spec(kind="interval", interval_minutes=1)) == "Every minute"
    assert describe(Spec(kind="interval", interval_minutes=90)) == "Every 90 minutes"
    assert describe(Spec(kind="interval", interval_minutes=120)) == "Every 2 hours"
    assert describe(Spec(kind="daily", timezone="Europe/Paris", time=time(9, 0))) == (
        "Every day at 09:00 (Europe/Paris)"
    )
    assert describe(
        Spec(kind="weekly", timezone="UTC", time=time(7, 5), weekdays=(0, 1, 2, 3, 4))
    ) == ("At 07:05, Monday through Friday (UTC)")
    assert describe(Spec(kind="weekly", timezone="UTC", time=time(7, 5), weekdays=(2,))) == (
        "At 07:05, on Wednesday (UTC)"
    )
    assert describe(Spec(kind="cron", timezone="UTC", cron="0 9 * * 1-5")) == (
        "At 09:00, Monday through Friday (UTC)"
    )
