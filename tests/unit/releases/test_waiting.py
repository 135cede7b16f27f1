"""A pending job blocked behind others on its release says why, with an estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs import services as job_services
from jobs.models import Job, JobStatus
from jobs.selectors import waiting_reason, waiting_reasons
from tests.support.release_factories import make_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)


def demo(release=None) -> Job:
    return job_services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release
    )


def finished(release, minutes: float) -> Job:
    job = demo(release)
    start = NOW - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.COMPLETED, started_at=start, finished_at=start + timedelta(minutes=minutes)
    )
    return job


def test_a_job_second_in_line_names_the_running_job_and_the_release(release):
    running = demo(release)
    Job.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING, lock_slot=0, started_at=NOW)
    first, second = demo(release), demo(release)
    assert waiting_reason(first, NOW) == f"waiting, 1st behind job #{running.pk} on release App"
    assert waiting_reason(second, NOW) == f"waiting, 2nd behind job #{running.pk} on release App"


def test_the_estimate_uses_the_median_of_past_durations(release):
    for minutes in (1, 2, 3, 100):  # median 2.5 min: one slow outlier does not skew it
        finished(release, minutes)
    running = demo(release)
    Job.objects.filter(pk=running.pk).update(
        status=JobStatus.RUNNING, lock_slot=0, started_at=NOW - timedelta(minutes=1)
    )
    _, second = demo(release), demo(release)
    # running ends at 14:01:30, the one ahead at 14:04:00, so second starts ~14:04.
    assert waiting_reason(second, NOW).endswith("; estimated start 14:04 UTC")


def test_without_a_blocker_or_a_release_there_is_no_waiting_reason(release):
    head = demo(release)
    assert waiting_reason(head, NOW) is None  # first in line
    assert waiting_reason(demo(None), NOW) is None
    other = demo(make_release("other"))
    assert waiting_reason(other, NOW) is None  # other releases do not block
    Job.objects.filter(pk=head.pk).update(status=JobStatus.COMPLETED)
    head.refresh_from_db()
    assert waiting_reason(head, NOW) is None  # only pending jobs wait


def test_the_head_of_a_queue_with_nothing_running_is_the_oldest_pending_job(release):
    oldest, middle, last = demo(release), demo(release), demo(release)
    assert waiting_reason(last, NOW) == f"waiting, 2nd behind job #{oldest.pk} on release App"
    assert waiting_reason(middle, NOW).startswith(f"waiting, 1st behind job #{oldest.pk}")


def test_waiting_reasons_for_many_jobs_use_a_constant_number_of_queries(
    release, django_assert_num_queries
):
    for n in (5, 50):
        jobs = [demo(release) for _ in range(n)]
        with django_assert_num_queries(3):  # the key's jobs, their durations, flow rules
            reasons = waiting_reasons(jobs, NOW)
        assert len(reasons) >= n - 1
