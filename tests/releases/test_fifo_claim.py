"""One running job per release, FIFO: what the claim path guarantees (and one gap)."""

from __future__ import annotations

import time

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import runner
from jobs import services as job_services
from jobs.models import Job, JobQuerySet, JobStatus
from tests.releases.factories import make_release

pytestmark = pytest.mark.django_db


def demo(release) -> Job:
    return job_services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release
    )


def test_only_the_oldest_pending_job_of_an_idle_release_is_runnable(release):
    a, b = demo(release), demo(release)
    other = demo(make_release("other"))
    assert set(Job.objects.runnable().values_list("pk", flat=True)) == {a.pk, other.pk}
    assert runner.claim(worker="w", job_id=b.pk) is None  # named, but not its turn


def test_a_running_job_blocks_the_rest_of_its_release_until_it_finishes(release):
    a, b = demo(release), demo(release)
    assert runner.claim(worker="w1").pk == a.pk
    assert runner.claim(worker="w2", job_id=b.pk) is None
    runner.execute(Job.objects.get(pk=a.pk))
    assert runner.claim(worker="w2").pk == b.pk


def test_the_database_refuses_a_second_running_job_on_one_release(release):
    a, b = demo(release), demo(release)
    Job.objects.filter(pk=a.pk).update(status=JobStatus.RUNNING)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=b.pk).update(status=JobStatus.RUNNING)


def test_a_claimed_jobs_recorded_start_is_never_before_its_predecessors_finish(
    release, monkeypatch
):
    a, b = demo(release), demo(release)
    assert runner.claim(worker="w1").pk == a.pk
    original = JobQuerySet.runnable

    def predecessor_finishes_meanwhile(self, now=None):
        # Another worker finishes A after claim() read the clock but before its SELECT
        # (on SQLite claim() even waits for that worker's write lock at BEGIN IMMEDIATE).
        monkeypatch.setattr(JobQuerySet, "runnable", original)
        time.sleep(0.002)
        Job.objects.filter(pk=a.pk).update(status=JobStatus.COMPLETED, finished_at=timezone.now())
        return original(self, now)

    monkeypatch.setattr(JobQuerySet, "runnable", predecessor_finishes_meanwhile)
    assert runner.claim(worker="w2").pk == b.pk
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.finished_at <= b.started_at
