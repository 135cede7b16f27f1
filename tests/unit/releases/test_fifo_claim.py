"""One running job per release, FIFO: what the claim path guarantees (and one gap)."""

from __future__ import annotations

import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs import runner
from jobs import services as job_services
from jobs.models import Job, JobStatus
from tests.support.release_factories import make_release

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
    first = runner.claim(worker="w1")
    assert first.job.pk == a.pk
    assert runner.claim(worker="w2", job_id=b.pk) is None
    runner.execute(first)
    assert runner.claim(worker="w2").job.pk == b.pk


def test_the_database_refuses_a_second_running_job_on_one_release(release):
    a, b = demo(release), demo(release)
    Job.objects.filter(pk=a.pk).update(status=JobStatus.RUNNING, lock_slot=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=b.pk).update(status=JobStatus.RUNNING, lock_slot=0)


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite: claim() reads the clock holding the database write lock, which a "
    "predecessor's finish has released; one test connection cannot interleave there",
)
def test_a_claimed_jobs_recorded_start_is_never_before_its_predecessors_finish(release):
    a, b = demo(release), demo(release)
    assert runner.claim(worker="w1").job.pk == a.pk

    def predecessor_finishes_just_before_the_claim(execute, sql, params, many, context):
        # Another worker finishes A after claim() began, right before its statement.
        if "attempts = attempts + 1" in sql and sql.lstrip().startswith(("SET", "UPDATE")):
            time.sleep(0.002)
            Job.objects.filter(pk=a.pk).update(
                status=JobStatus.COMPLETED, finished_at=timezone.now()
            )
        return execute(sql, params, many, context)

    with connection.execute_wrapper(predecessor_finishes_just_before_the_claim):
        assert runner.claim(worker="w2").job.pk == b.pk
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.finished_at <= b.started_at
