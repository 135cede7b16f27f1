"""Schedule rules: validation, writes, and firing with misfire, overlap and dry-run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from jobs import broker
from jobs.models import Job, JobStatus
from scheduler import services
from scheduler.models import Occurrence, Schedule
from tests.support.schedule_fixtures import NOW

pytestmark = pytest.mark.django_db


def jobs_of(schedule: Schedule) -> list[Job]:
    return list(Job.objects.filter(schedule=schedule).order_by("id"))


def reload(schedule: Schedule) -> Schedule:
    return Schedule.objects.get(pk=schedule.pk)


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "cron", "cron": "61 * * * *"}, "cron"),
        ({"kind": "cron", "cron": "* * *"}, "cron"),
        ({"kind": "cron", "cron": "0 0 30 2 *"}, "cron"),  # never fires
        ({"kind": "cron", "cron": ""}, "cron"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"kind": "weekly", "time": "09:00", "weekdays": [7]}, "weekdays"),
        ({"kind": "weekly", "time": "09:00", "weekdays": []}, "weekdays"),
        ({"kind": "weekly", "time": "09:00", "weekdays": ["mon"]}, "weekdays"),
        ({"kind": "daily", "time": "25:00"}, "time"),
        ({"kind": "daily", "time": "9h"}, "time"),
        ({"kind": "daily", "time": None}, "time"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"interval_minutes": None}, "interval_minutes"),
        ({"kind": "hourly"}, "kind"),
        ({"config": {"steps": 0}}, "config"),
        ({"job_type": "no.such.type"}, "job_type"),
        ({"misfire_policy": "burst"}, "misfire_policy"),
        ({"name": "  "}, "name"),
    ],
)
def test_an_invalid_schedule_is_refused_with_an_error_naming_the_field(
    make_schedule, fields, field
):
    with pytest.raises(ValidationError) as caught:
        make_schedule(**fields)

    assert field in caught.value.message_dict
    assert not Schedule.objects.exists()


def test_a_duplicate_name_is_refused(make_schedule):
    make_schedule(name="nightly")

    with pytest.raises(ValidationError) as caught:
        make_schedule(name="nightly")

    assert "name" in caught.value.message_dict


def test_creating_a_schedule_stores_its_first_occurrence_and_clears_other_kinds_fields(
    make_schedule,
):
    schedule = make_schedule(
        kind="weekly", time="09:00", weekdays=[4, 0, 0], cron="* * * * *", interval_minutes=5,
        timezone="Europe/Paris",
    )  # fmt: skip

    assert schedule.weekdays == [0, 4]
    assert schedule.time == time(9, 0)
    assert schedule.cron == "" and schedule.interval_minutes is None
    # 2026-06-01 is a Monday; 12:00 UTC is past 09:00 Paris, so Friday 09:00 CEST.
    assert schedule.next_run_at == datetime(2026, 6, 5, 7, 0, tzinfo=UTC)


def test_changing_the_timing_recomputes_next_run_and_other_edits_keep_it(make_schedule):
    schedule = make_schedule(kind="daily", time="13:00")
    assert schedule.next_run_at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)

    schedule = services.schedule_update(schedule=schedule, config={"steps": 2}, now=NOW)
    assert schedule.next_run_at == datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    assert schedule.config["steps"] == 2

    schedule = services.schedule_update(schedule=schedule, time="11:00", now=NOW)
    assert schedule.next_run_at == datetime(2026, 6, 2, 11, 0, tzinfo=UTC)


# --- firing ---------------------------------------------------------------------------------


def test_a_due_schedule_fires_one_job_records_the_occurrence_and_advances(make_schedule, user):
    schedule = make_schedule(kind="interval", interval_minutes=5)
    fire_at = schedule.next_run_at

    counts = services.fire_due_schedules(now=fire_at + timedelta(seconds=20))

    assert counts["fired"] == 1
    [job] = jobs_of(schedule)
    assert job.status == JobStatus.PENDING
    assert job.created_by == user and job.config == {"steps": 1, "delay": 0.0, **job.config}
    schedule = reload(schedule)
    assert schedule.next_run_at == fire_at + timedelta(minutes=5)
    assert schedule.last_job == job
    assert list(Occurrence.objects.values_list("fire_at", "job")) == [(fire_at, job.pk)]
    # The same cycle again (another cluster, a redelivered message): nothing more.
    assert services.fire_due_schedules(now=fire_at + timedelta(seconds=40))["fired"] == 0
    assert len(jobs_of(schedule)) == 1


def test_a_schedule_not_yet_due_does_not_fire(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=5)

    services.fire_due_schedules(now=schedule.next_run_at - timedelta(seconds=1))

    assert jobs_of(schedule) == []


def test_on_time_occurrences_due_together_each_fire_once(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=1, overlap_policy="queue")
    first = schedule.next_run_at

    counts = services.fire_due_schedules(now=first + timedelta(minutes=2, seconds=5))

    assert counts["fired"] == 3  # within the misfire grace: late, not missed
    assert sorted(Occurrence.objects.values_list("fire_at", flat=True)) == [
        first, first + timedelta(minutes=1), first + timedelta(minutes=2)
    ]  # fmt: skip
    assert reload(schedule).next_run_at == first + timedelta(minutes=3)


def test_misfire_skip_drops_missed_occurrences_and_jumps_to_the_future(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=30, misfire_policy="skip")
    outage_end = schedule.next_run_at + timedelta(hours=3, minutes=10)

    counts = services.fire_due_schedules(now=outage_end)

    assert counts == {**counts, "fired": 0, "missed": 1}
    assert jobs_of(schedule) == []
    schedule = reload(schedule)
    assert outage_end < schedule.next_run_at <= outage_end + timedelta(minutes=30)
    [occurrence] = Occurrence.objects.all()
    assert occurrence.job is None and "missed" in occurrence.skipped_reason


def test_misfire_run_once_fires_one_catch_up_run_then_jumps_to_the_future(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=30, misfire_policy="run_once")
    missed_first = schedule.next_run_at
    outage_end = missed_first + timedelta(hours=3, minutes=10)  # 7 occurrences missed

    counts = services.fire_due_schedules(now=outage_end)
    services.fire_due_schedules(now=outage_end + timedelta(seconds=30))

    assert counts["fired"] == 1 and counts["missed"] == 1
    assert len(jobs_of(schedule)) == 1  # one catch-up run, never a burst
    assert reload(schedule).next_run_at == missed_first + timedelta(hours=3, minutes=30)
    assert list(Occurrence.objects.values_list("fire_at", flat=True)) == [missed_first]


def test_overlap_skip_does_not_fire_while_the_previous_run_is_active(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=1, overlap_policy="skip")
    first = schedule.next_run_at
    services.fire_due_schedules(now=first)
    [previous] = jobs_of(schedule)  # still pending: no worker in this test

    counts = services.fire_due_schedules(now=first + timedelta(minutes=1))

    assert counts["skipped"] == 1 and counts["fired"] == 0
    assert jobs_of(schedule) == [previous]
    skipped = Occurrence.objects.get(fire_at=first + timedelta(minutes=1))
    assert skipped.job is None and f"#{previous.pk}" in skipped.skipped_reason
    assert reload(schedule).next_run_at == first + timedelta(minutes=2)

    Job.objects.filter(pk=previous.pk).update(status=JobStatus.COMPLETED)
    assert services.fire_due_schedules(now=first + timedelta(minutes=2))["fired"] == 1


def test_overlap_queue_fires_even_while_the_previous_run_is_active(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=1, overlap_policy="queue")
    first = schedule.next_run_at

    services.fire_due_schedules(now=first)
    services.fire_due_schedules(now=first + timedelta(minutes=1))

    assert [j.status for j in jobs_of(schedule)] == [JobStatus.PENDING, JobStatus.PENDING]


def test_a_dry_run_schedule_creates_drafts_with_analysis_and_never_a_running_job(
    make_schedule, django_capture_on_commit_callbacks, monkeypatch
):
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)  # the analysis runs in-process, as a worker would
    enqueued: list[int] = []
    monkeypatch.setattr(
        broker, "enqueue_wakeup", lambda job_id=None, queue="default": enqueued.append(job_id)
    )
    schedule = make_schedule(
        kind="interval", interval_minutes=1, dry_run=True, config={"steps": 2, "delay": 0.5}
    )
    first = schedule.next_run_at

    with django_capture_on_commit_callbacks(execute=True):
        services.fire_due_schedules(now=first)
    with django_capture_on_commit_callbacks(execute=True):
        services.fire_due_schedules(now=first + timedelta(minutes=1))  # drafts never overlap

    jobs = jobs_of(schedule)
    assert [j.status for j in jobs] == [JobStatus.DRAFT, JobStatus.DRAFT]
    assert jobs[0].analysis["state"] == "ready"
    assert jobs[0].analysis["analysis"]["tasks"] == ["step 1", "step 2"]
    assert jobs[0].started_at is None and enqueued == []  # no worker was ever asked to run it


def test_disabling_stops_firing_at_once(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=1)
    due = schedule.next_run_at

    services.schedule_toggle(schedule=schedule, enabled=False, now=NOW)
    counts = services.fire_due_schedules(now=due + timedelta(minutes=1))

    assert counts["fired"] == 0 and jobs_of(schedule) == []


def test_enabling_computes_the_next_occurrence_from_now_without_a_burst(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=10)
    services.schedule_toggle(schedule=schedule, enabled=False, now=NOW)
    later = NOW + timedelta(hours=5, minutes=3)

    schedule = services.schedule_toggle(schedule=schedule, enabled=True, now=later)
    services.fire_due_schedules(now=later)

    assert schedule.next_run_at == datetime(2026, 6, 1, 17, 10, tzinfo=UTC)
    assert jobs_of(schedule) == []


def test_enabling_with_misfire_run_once_catches_up_once_for_runs_missed_while_disabled(
    make_schedule,
):
    schedule = make_schedule(kind="interval", interval_minutes=10, misfire_policy="run_once")
    services.schedule_toggle(schedule=schedule, enabled=False, now=NOW)
    later = NOW + timedelta(hours=5, minutes=3)

    services.schedule_toggle(schedule=schedule, enabled=True, now=later)
    services.fire_due_schedules(now=later)
    services.fire_due_schedules(now=later + timedelta(minutes=1))

    assert len(jobs_of(schedule)) == 1
    assert reload(schedule).next_run_at == datetime(2026, 6, 1, 17, 10, tzinfo=UTC)


def test_run_now_creates_a_job_without_moving_next_run(make_schedule, other_user):
    schedule = make_schedule(kind="daily", time="13:00")
    before = schedule.next_run_at

    job = services.schedule_run_now(schedule=schedule, user=other_user)

    assert job.status == JobStatus.PENDING and job.schedule == schedule
    assert job.created_by == other_user
    schedule = reload(schedule)
    assert schedule.next_run_at == before
    assert schedule.last_job == job
    assert not Occurrence.objects.exists()


def test_a_schedule_whose_job_can_no_longer_be_created_records_why_and_moves_on(make_schedule):
    schedule = make_schedule(kind="interval", interval_minutes=1)
    Schedule.objects.filter(pk=schedule.pk).update(config={"steps": "many"})
    first = schedule.next_run_at

    counts = services.fire_due_schedules(now=first)

    assert counts["errors"] == 1 and jobs_of(schedule) == []
    assert "config" in Occurrence.objects.get().skipped_reason
    assert reload(schedule).next_run_at == first + timedelta(minutes=1)


def test_deleting_a_schedule_keeps_the_jobs_it_created(make_schedule):
    schedule = make_schedule()
    job = services.schedule_run_now(schedule=schedule)

    services.schedule_delete(schedule=schedule)

    job.refresh_from_db()
    assert job.schedule is None
    assert not Schedule.objects.exists()


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_firing_from_many_threads_creates_exactly_one_job_per_occurrence(
    make_schedule, monkeypatch
):
    monkeypatch.setattr(broker, "enqueue_wakeup", lambda job_id=None, queue="default": None)
    schedule = make_schedule(kind="interval", interval_minutes=1, overlap_policy="queue")
    first = schedule.next_run_at
    now = first + timedelta(minutes=3, seconds=1)  # 4 on-time occurrences due at once
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    results: list[dict] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(services.fire_due_schedules(now=now))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert sum(r["fired"] for r in results) == 4
    assert Job.objects.filter(schedule=schedule).count() == 4
    fire_times = sorted(Occurrence.objects.values_list("fire_at", flat=True))
    assert fire_times == [first + timedelta(minutes=i) for i in range(4)]
    assert Occurrence.objects.filter(job__isnull=False).count() == 4
    assert reload(schedule).next_run_at == first + timedelta(minutes=4)


def test_an_occurrence_already_in_the_ledger_is_never_fired_again(make_schedule):
    # As if another cluster fired it and a person then reset next_run_at to it.
    schedule = make_schedule(kind="interval", interval_minutes=1)
    fire_at = schedule.next_run_at
    Occurrence.objects.create(schedule=schedule, fire_at=fire_at)

    counts = services.fire_due_schedules(now=fire_at)

    assert counts["duplicates"] == 1 and counts["fired"] == 0
    assert jobs_of(schedule) == []
    assert reload(schedule).next_run_at == fire_at + timedelta(minutes=1)  # not stuck
