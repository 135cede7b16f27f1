"""Task orchestration: order, stop at first failure, retry skipping what succeeded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import broker, runner, services
from jobs.engine import transitions
from jobs.models import Job, JobStatus, TaskStatus
from jobs.worker import execution
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db


def task_states(job: Job) -> list[tuple[int, str, int]]:
    return list(job.tasks.order_by("position").values_list("position", "status", "attempts"))


def test_five_tasks_where_the_third_fails_stop_there_and_retry_skips_the_first_two():
    job = services.job_create(job_type="demo.steps", config={"steps": 5, "delay": 0, "fail_at": 3})
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "task 3 (step 3) failed: RuntimeError" in job.error
    assert task_states(job) == [
        (1, TaskStatus.SUCCEEDED, 1),
        (2, TaskStatus.SUCCEEDED, 1),
        (3, TaskStatus.FAILED, 1),
        (4, TaskStatus.PENDING, 0),
        (5, TaskStatus.PENDING, 0),
    ]
    assert job.progress == 40

    services.job_retry(job=job)
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 2
    # Tasks 1-2 were skipped (still one attempt); 3-5 ran in this attempt.
    assert task_states(job) == [
        (1, TaskStatus.SUCCEEDED, 1),
        (2, TaskStatus.SUCCEEDED, 1),
        (3, TaskStatus.SUCCEEDED, 2),
        (4, TaskStatus.SUCCEEDED, 1),
        (5, TaskStatus.SUCCEEDED, 1),
    ]
    assert job.progress == 100
    assert job.result == {"steps": 5}


def test_tasks_run_in_position_order_each_committed_with_its_own_times():
    job = services.job_create(job_type="demo.steps", config={"steps": 3, "delay": 0})
    runner.run_job(job.pk)
    tasks = list(job.tasks.order_by("position"))
    assert [t.status for t in tasks] == [TaskStatus.SUCCEEDED] * 3
    assert tasks[0].finished_at <= tasks[1].started_at <= tasks[1].finished_at
    assert tasks[1].finished_at <= tasks[2].started_at


def test_a_failing_job_with_attempts_left_is_requeued_with_backoff_then_fails_when_exhausted(
    settings,
):
    settings.JOBDECK_RETRY_BACKOFF_SECONDS = 10
    settings.JOBDECK_DRAIN_SECONDS = 0  # one job per call: do not wait for the backoff
    job = services.job_create(
        job_type="demo.steps",
        config={"steps": 2, "delay": 0, "fail_at": 2, "fail_attempts": 5},
        max_attempts=2,
    )
    before = timezone.now()
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.attempts == 1
    # 10 s * 2^0 with ±50 % jitter.
    assert before + timedelta(seconds=5) <= job.run_after <= timezone.now() + timedelta(seconds=15)
    assert runner.claim(worker="w") is None  # not due yet

    Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.attempts == 2
    assert job.tasks.get(position=1).attempts == 1  # succeeded once, never re-run


def test_higher_priority_jobs_are_claimed_first_then_oldest_first():
    low = make_job(priority=-5)
    old = make_job()
    new = make_job()
    high = make_job(priority=10)
    order = [runner.claim(worker="w").job.pk for _ in range(4)]
    assert order == [high.pk, old.pk, new.pk, low.pk]


def test_a_delayed_job_is_not_claimed_before_run_after():
    job = make_job(run_after=timezone.now() + timedelta(hours=1))
    assert runner.claim(worker="w") is None
    Job.objects.filter(pk=job.pk).update(run_after=timezone.now() - timedelta(seconds=1))
    assert runner.claim(worker="w").job.pk == job.pk


def test_a_job_of_an_unregistered_type_fails_with_a_clear_error():
    job = make_job()
    Job.objects.filter(pk=job.pk).update(job_type="gone.type")
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "unknown job type 'gone.type'"


def test_the_sweep_fails_a_stale_running_job_without_attempts_left(settings):
    settings.JOBDECK_STALE_SECONDS = 30
    job = make_job(JobStatus.RUNNING)
    stale = timezone.now() - timedelta(seconds=31)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=stale, worker="host:123")
    job.tasks.filter(position=1).update(status=TaskStatus.RUNNING)
    assert services.sweep_stale_jobs() == {"requeued": 0, "failed": 1, "cancelled": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("worker lost: no heartbeat from host:123")
    assert job.tasks.get(position=1).status == TaskStatus.FAILED


def test_the_sweep_requeues_a_stale_job_with_attempts_left_and_spares_fresh_ones(settings):
    settings.JOBDECK_STALE_SECONDS = 30
    stale_job = make_job(JobStatus.RUNNING, max_attempts=3)
    fresh_job = make_job(JobStatus.RUNNING)
    Job.objects.filter(pk=stale_job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert services.sweep_stale_jobs() == {"requeued": 1, "failed": 0, "cancelled": 0}
    assert Job.objects.get(pk=stale_job.pk).status == JobStatus.PENDING
    assert Job.objects.get(pk=fresh_job.pk).status == JobStatus.RUNNING


def test_the_sweep_recovers_the_jobs_of_workers_named_dead_whatever_their_heartbeat():
    """What `manage.py serve` does after killing its cluster: the same rules, at once."""
    requeued = make_job(JobStatus.RUNNING, max_attempts=2)
    failed = make_job(JobStatus.RUNNING)
    elsewhere = make_job(JobStatus.RUNNING, max_attempts=2)
    Job.objects.filter(pk=requeued.pk).update(worker="host:1")
    Job.objects.filter(pk=failed.pk).update(worker="host:2")
    Job.objects.filter(pk=elsewhere.pk).update(worker="other:1")  # alive, fresh heartbeat

    counts = services.sweep_stale_jobs(workers=["host:1", "host:2"])

    assert counts == {"requeued": 1, "failed": 1, "cancelled": 0}
    assert Job.objects.get(pk=requeued.pk).status == JobStatus.PENDING
    job = Job.objects.get(pk=failed.pk)
    assert job.status == JobStatus.FAILED
    assert job.error == "worker stopped: host:2 was killed when its cluster shut down"
    assert Job.objects.get(pk=elsewhere.pk).status == JobStatus.RUNNING


def test_progress_of_a_job_without_tasks_is_zero_not_a_division_error():
    job = Job(job_type="demo.steps", progress_total=0, progress_done=0)
    assert job.progress == 0


def test_duration_of_a_running_job_grows_until_it_finishes():
    job = make_job(JobStatus.RUNNING)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=90))
    job.refresh_from_db()
    assert 90 <= job.duration.total_seconds() < 100
    assert make_job(JobStatus.PENDING).duration is None
    finished = make_job(JobStatus.COMPLETED)
    Job.objects.filter(pk=finished.pk).update(
        started_at=finished.finished_at - timedelta(seconds=7)
    )
    finished.refresh_from_db()
    assert finished.duration_seconds == 7.0


def test_a_job_created_in_a_rolled_back_transaction_is_never_enqueued(
    django_capture_on_commit_callbacks,
):
    from django.db import transaction

    with django_capture_on_commit_callbacks() as callbacks:
        try:
            with transaction.atomic():
                services.job_create(job_type="demo.steps", config={"steps": 1})
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert callbacks == []
    assert not Job.objects.exists()


def test_creating_a_job_enqueues_one_wakeup_naming_only_its_id(
    django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        broker, "enqueue_wakeup", lambda job_id=None, queue="default": sent.append(job_id)
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(job_type="demo.steps", config={"steps": 1})
    assert sent == [job.pk]


def test_an_automatic_retry_reruns_the_failed_task_and_can_complete(settings):
    settings.JOBDECK_DRAIN_SECONDS = 0
    job = services.job_create(
        job_type="demo.steps",
        config={"steps": 3, "delay": 0, "fail_at": 2, "fail_attempts": 1},
        max_attempts=2,
    )
    runner.run_job(job.pk)
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    Job.objects.filter(pk=job.pk).update(run_after=timezone.now())
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    assert task_states(job) == [
        (1, TaskStatus.SUCCEEDED, 1),
        (2, TaskStatus.SUCCEEDED, 2),
        (3, TaskStatus.SUCCEEDED, 1),
    ]


def test_a_draining_worker_commits_each_completion_with_its_next_claim(settings):
    settings.JOBDECK_DRAIN_SECONDS = 30
    config = {"steps": 1, "delay": 0}
    jobs = [services.job_create(job_type="demo.steps", config=config) for _ in range(5)]
    assert runner.run_job(jobs[0].pk) == {"ran": 5}
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.progress) == (JobStatus.COMPLETED, 1, 100)
        assert task_states(job) == [(1, TaskStatus.SUCCEEDED, 1)]
        assert list(job.logs.values_list("message", flat=True)) == [
            "step 1 of 1 started",
            "step 1 done",
        ]


def test_a_release_successor_is_claimed_right_after_its_predecessor_completes():
    from tests.support.release_factories import make_release

    release = make_release()
    a, b = (
        services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release)
        for _ in range(2)
    )
    assert runner.run_job(a.pk) == {"ran": 2}
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == b.status == JobStatus.COMPLETED
    assert a.finished_at <= b.started_at


def test_a_completion_whose_claim_loses_a_release_race_is_still_written(monkeypatch):
    job = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    outcome = execution.execute_deferred(runner.claim(worker="w", job_id=job.pk))
    assert isinstance(outcome, runner.Finished)

    def release_race(*args, **kwargs):
        from django.db import IntegrityError

        raise IntegrityError("one_running_job_per_release")

    monkeypatch.setattr(transitions, "_claim_rows", release_race)
    assert runner.claim(worker="w", finished=outcome) is None
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.logs.count() == 2
