"""`manage.py schedules list|run|enable|disable`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.models import Job
from scheduler.models import Schedule

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("schedules", *args, stdout=out)
    return out.getvalue()


def test_list_shows_each_schedule_with_its_next_run_and_words(make_schedule):
    make_schedule(name="nightly", kind="cron", cron="0 3 * * *", now=timezone.now())

    out = run("list")

    assert "nightly" in out and "At 03:00 (UTC)" in out and "yes" in out


def test_run_creates_a_job_now_by_name_or_id(make_schedule):
    schedule = make_schedule(name="nightly", now=timezone.now())
    before = schedule.next_run_at

    assert "Created job #" in run("run", "nightly")
    run("run", str(schedule.pk))

    assert Job.objects.filter(schedule=schedule).count() == 2
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == before


def test_disable_and_enable_change_the_schedule(make_schedule):
    make_schedule(name="nightly", now=timezone.now())

    assert "disabled" in run("disable", "nightly")
    assert Schedule.objects.get().enabled is False
    assert "enabled; next run 20" in run("enable", "nightly")
    assert Schedule.objects.get().enabled is True


def test_an_unknown_schedule_is_one_readable_error_line():
    with pytest.raises(CommandError, match="No schedule with id or name 'nope'"):
        run("run", "nope")


def test_an_unknown_action_is_refused():
    with pytest.raises(CommandError):
        run("explode")
