"""Random interleavings of people, workers and the sweep keep the job invariants.

A Hypothesis state machine drives the real services and runner functions in-process:
people create, submit, cancel and retry; workers claim and finish (execute a tiny
two-task job type, which fails when configured to); the sweep runs on a fake clock.
After every step the invariants are checked against the database.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from jobs import runner, services
from jobs.exceptions import IllegalTransition
from jobs.models import FINISHED_STATUSES, TRANSITIONS, Job, JobStatus, Task, TaskStatus
from releases.models import Release

pytestmark = pytest.mark.django_db

WORKERS = ("host-a:1", "host-a:2", "host-b:1")
VIA = ("admin", "api", "cli")


class JobLifecycle(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        Job.objects.all().delete()
        self.releases = [
            Release.objects.get_or_create(slug=f"sm-{i}", defaults={"name": f"SM {i}"})[0]
            for i in range(2)
        ]
        # Each worker's current claim: what runner.claim() returned.
        self.claims: dict[str, Job] = {}
        self.seen: dict[int, str] = {}
        self.clock = timedelta(0)

    # --- people ------------------------------------------------------------------

    @rule(
        target=jobs,
        release=st.sampled_from([None, 0, 1]),
        fail=st.booleans(),
        draft=st.booleans(),
        max_attempts=st.integers(1, 3),
        priority=st.sampled_from([-1, 0, 1]),
    )
    def create(self, release, fail, draft, max_attempts, priority) -> int:
        job = services.job_create(
            job_type="reliability.instant",
            config={"fail": fail},
            release=None if release is None else self.releases[release],
            draft=draft,
            max_attempts=max_attempts,
            priority=priority,
        )
        self.seen[job.pk] = job.status
        return job.pk

    @rule(job_id=jobs, via=st.sampled_from(VIA))
    def submit(self, job_id, via) -> None:
        self._act(services.job_submit, job_id, via)

    @rule(job_id=jobs, via=st.sampled_from(VIA))
    def cancel(self, job_id, via) -> None:
        self._act(services.job_cancel, job_id, via)

    @rule(job_id=jobs, via=st.sampled_from(VIA))
    def retry(self, job_id, via) -> None:
        self._act(services.job_retry, job_id, via)

    def _act(self, action, job_id: int, via: str) -> None:
        # Refused when the job is not in a status this action starts from.
        with contextlib.suppress(IllegalTransition):
            action(job=Job.objects.get(pk=job_id), via=via)

    # --- workers -------------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS), job_id=st.none() | jobs)
    def claim(self, worker, job_id) -> None:
        if worker in self.claims:
            return  # one job at a time per worker
        claim = runner.claim(worker=worker, job_id=job_id)
        if claim is not None:
            self.claims[worker] = claim

    @rule(worker=st.sampled_from(WORKERS))
    def finish(self, worker) -> None:
        """The worker executes its claimed job; a superseded claim must change nothing."""
        claim = self.claims.pop(worker, None)
        if claim is None:
            return
        job = claim.job
        before = Job.objects.values("status", "attempts", "worker").get(pk=job.pk)
        superseded = (before["status"], before["attempts"], before["worker"]) != (
            JobStatus.RUNNING,
            job.attempts,
            worker,
        )
        runner.execute(claim)
        if superseded:
            after = Job.objects.values("status", "attempts", "worker").get(pk=job.pk)
            assert after == before, f"a superseded claim of job {job.pk} changed it"

    @rule()
    def time_passes(self) -> None:
        """Delayed (backed-off) jobs fall due."""
        Job.objects.filter(status=JobStatus.PENDING, run_after__isnull=False).update(
            run_after=timezone.now() - timedelta(seconds=1)
        )

    @rule(seconds=st.sampled_from([0, 1, 61, 120]))
    def sweep(self, seconds) -> None:
        """The periodic sweep, on a clock `seconds` ahead: claims older than stale are lost."""
        self.clock += timedelta(seconds=seconds)
        services.sweep_stale_jobs(now=timezone.now() + self.clock)

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def statuses_are_legal_and_each_change_is_an_allowed_transition(self) -> None:
        for pk, status in Job.objects.values_list("pk", "status"):
            assert status in JobStatus.values
            previous = self.seen.get(pk, status)
            assert status == previous or status in TRANSITIONS[previous], (
                f"job {pk}: {previous} → {status}"
            )
            self.seen[pk] = status

    @invariant()
    def at_most_one_running_job_per_release(self) -> None:
        busy = (
            Job.objects.filter(status=JobStatus.RUNNING, release__isnull=False)
            .values("release")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
        )
        assert not busy.exists()

    @invariant()
    def finished_jobs_have_finished_at_and_active_ones_do_not(self) -> None:
        assert not Job.objects.filter(status__in=FINISHED_STATUSES, finished_at=None).exists()
        assert (
            not Job.objects.exclude(status__in=FINISHED_STATUSES).exclude(finished_at=None).exists()
        )

    @invariant()
    def progress_stays_within_bounds(self) -> None:
        for job in Job.objects.only("progress_done", "progress_total"):
            assert 0 <= job.progress_done <= job.progress_total
            assert 0 <= job.progress <= 100

    @invariant()
    def tasks_agree_with_their_job(self) -> None:
        # Execution is in-process and runs to its end, so between steps the only running
        # task is the one a claim started: one per running job, none elsewhere.
        running = Task.objects.filter(status=TaskStatus.RUNNING)
        assert not running.exclude(job__status=JobStatus.RUNNING).exists()
        assert running.count() == running.values("job").distinct().count()
        assert (
            not Task.objects.filter(job__status=JobStatus.COMPLETED)
            .exclude(status=TaskStatus.SUCCEEDED)
            .exists()
        )
        assert not Task.objects.filter(
            job__status=JobStatus.CANCELLED, status=TaskStatus.PENDING
        ).exists()
        for job in Job.objects.filter(status=JobStatus.RUNNING):
            assert job.worker and job.started_at and job.heartbeat_at


def test_random_interleavings_of_people_workers_and_the_sweep_keep_the_invariants(
    settings: pytest.FixtureRequest,
) -> None:
    settings.JOBDECK_HEARTBEAT_SECONDS = 0
    settings.JOBDECK_RETRY_BACKOFF_SECONDS = 0.5
    assert django_settings.JOBDECK_STALE_SECONDS < 61
    run_state_machine_as_test(
        JobLifecycle,
        settings=hypothesis_settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            database=None,  # no example database left in the working tree
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
