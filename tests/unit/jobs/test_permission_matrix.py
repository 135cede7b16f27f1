"""The job-type axis of the permission matrix for the doors without a web page: the
shell (`manage.py jobs run --user`), a schedule firing (as its owner, checked again
at every occurrence), and the django.tasks backend (Jobdeck itself).

The API's doors are in tests/api/test_permission_matrix.py, the admin's in
tests/admin/test_permission_matrix.py; the roles and the rule are
tests/support/job_type_matrix.py's.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.models import Job
from scheduler import services as schedule_services
from scheduler.models import Occurrence, Schedule
from tests.support.job_type_matrix import (
    CONFIG,
    JOB_TYPES,
    JOBDECK_ONLY,
    ROLES,
    TYPE_RIGHT,
    Door,
    expected,
    jobs_of,
    make_role,
    needs_release,
    the_release,
)

pytestmark = pytest.mark.django_db

SIGNED_IN = [r for r in ROLES if r != "anonymous"]  # a command and a schedule act as a user


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.parametrize("role", SIGNED_IN)
@pytest.mark.parametrize("job_type", JOB_TYPES)
def test_jobs_run_as_a_user_creates_exactly_the_job_types_that_user_may_run(job_type, role):
    actor = make_role(role, Door(), job_type)
    args = ["--user", actor.username, "run", job_type, "--config", json.dumps(CONFIG[job_type])]
    if needs_release(job_type):
        args += ["--release", the_release().slug]
    outcome = expected(Door(), role, job_type)

    if outcome == "ok":
        call_command("jobs", *args)
        assert Job.objects.get(job_type=job_type).created_by == actor
        return
    with pytest.raises(CommandError) as refused:
        call_command("jobs", *args)
    message = str(refused.value)
    assert "\n" not in message  # one line
    assert ("may not run" if outcome == "denied" else "Jobdeck itself") in message
    assert jobs_of(job_type) == 0


@pytest.mark.parametrize("role", SIGNED_IN)
@pytest.mark.parametrize("job_type", [t for t in JOB_TYPES if TYPE_RIGHT[t] != JOBDECK_ONLY])
def test_a_schedule_fires_only_while_its_owner_may_run_its_job_type(job_type, role):
    owner = make_role(role, Door(), job_type)
    now = timezone.now()
    schedule = schedule_services.schedule_create(
        name=f"every {job_type}",
        job_type=job_type,
        config=CONFIG[job_type],
        release=the_release() if needs_release(job_type) else None,
        kind="interval",
        interval_minutes=60,
    )
    # Its owner, as if they had held the right when they made it (or lost it since);
    # its next occurrence due a moment ago.
    Schedule.objects.filter(pk=schedule.pk).update(
        created_by=owner, next_run_at=now - timedelta(seconds=10)
    )

    counts = schedule_services.fire_due_schedules(now=now)

    occurrence = Occurrence.objects.get(schedule=schedule)
    if expected(Door(), role, job_type) == "ok":
        assert counts["fired"] == 1 and occurrence.job.created_by == owner
    else:
        assert counts["refused"] == 1 and occurrence.job is None
        assert occurrence.skipped_reason.startswith(f"refused: {owner.username}: ")
        assert "may not run" in occurrence.skipped_reason
        assert jobs_of(job_type) == 0


def test_the_django_tasks_backend_is_jobdeck_itself_and_creates_its_carrier_jobs():
    from tests.support.django_tasks import add

    result = add.enqueue(2, 3)

    job = Job.objects.get(pk=int(result.id))
    assert job.job_type == "tasks.call" and job.created_by is None
