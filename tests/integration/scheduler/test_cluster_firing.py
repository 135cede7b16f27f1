"""Real qcluster processes fire schedules: once per occurrence, drafts for dry runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from jobs.models import Job, JobStatus
from scheduler import services
from scheduler.models import Occurrence, Schedule
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FIRE = "scheduler.services.fire_due_schedules"


def bring_forward(schedule: Schedule, fire_tasks: int) -> None:
    """Make the schedule due now and have the clusters fire it.

    Both doors at once: django-q2's own "jobdeck.fire_schedules" schedule is brought
    forward (its guard checks every 30 s), and `fire_tasks` extra calls are
    enqueued so workers of every cluster race to fire the same occurrence.
    """
    from django_q.models import Schedule as QSchedule
    from django_q.tasks import async_task

    Schedule.objects.filter(pk=schedule.pk).update(
        next_run_at=timezone.now() - timedelta(seconds=1)
    )
    QSchedule.objects.filter(name="jobdeck.fire_schedules").update(next_run=timezone.now())
    for i in range(fire_tasks):
        async_task(FIRE, task_name=f"test-fire-{schedule.pk}-{i}")


def fired_occurrences(schedule: Schedule) -> int:
    return Occurrence.objects.filter(schedule=schedule, job__isnull=False).count()


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="three clusters racing need PostgreSQL"
)
def test_three_clusters_create_exactly_one_job_per_occurrence(make_cluster, make_schedule):
    from django_q.models import Success

    schedule = make_schedule(
        kind="interval", interval_minutes=1, overlap_policy="queue", now=timezone.now()
    )
    clusters = [make_cluster(wait=False, Q_WORKERS="3") for _ in range(3)]
    for c in clusters:
        c.wait_ready()

    rounds = 3
    for n in range(1, rounds + 1):
        bring_forward(schedule, fire_tasks=9)
        wait_until(lambda n=n: fired_occurrences(schedule) >= n, 60, 0.1, f"occurrence {n} to fire")
    # Let every enqueued call finish: the losers must not have made jobs either.
    wait_until(
        lambda: (
            Success.objects.filter(func=FIRE, name__startswith="test-fire-").count() >= 9 * rounds
        ),
        60,
        0.2,
        "all fire calls to finish",
    )

    occurrences = list(Occurrence.objects.filter(schedule=schedule))
    jobs = Job.objects.filter(schedule=schedule)
    assert len(occurrences) >= rounds
    assert all(o.job_id is not None for o in occurrences)  # overlap=queue: each fired
    assert jobs.count() == len(occurrences)  # one job per occurrence, no more
    assert not jobs.values("pk").annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert len({o.job_id for o in occurrences}) == len(occurrences)
    # The firing really went through several clusters' workers, racing.
    results = [s.result for s in Success.objects.filter(func=FIRE, name__startswith="test-fire-")]
    assert sum(r["fired"] for r in results) <= len(occurrences)
    pids = {int(r["worker"].rsplit(":", 1)[1]) for r in results}
    clusters_used = [c for c in clusters if pids & set(c.worker_pids())]
    assert len(clusters_used) >= 2, [c.output for c in clusters]
    wait_until(
        lambda: set(jobs.values_list("status", flat=True)) == {JobStatus.COMPLETED},
        60,
        0.2,
        "the scheduled jobs to complete",
    )


def test_a_dry_run_schedule_fired_by_a_cluster_makes_an_analysed_draft_that_never_runs(
    make_cluster, make_schedule
):
    schedule = make_schedule(
        kind="interval",
        interval_minutes=60,
        dry_run=True,
        config={"steps": 2, "delay": 0},
        now=timezone.now(),
    )
    make_cluster()

    bring_forward(schedule, fire_tasks=2)

    job = wait_until(
        lambda: Job.objects.filter(schedule=schedule, analysis__state="ready").first(),
        60,
        0.1,
        "the draft's analysis",
    )
    assert job.status == JobStatus.DRAFT and job.started_at is None
    assert job.analysis["analysis"]["tasks"] == ["step 1", "step 2"]
    assert Job.objects.filter(schedule=schedule).count() == 1
    assert services.fire_due_schedules()["fired"] == 0  # next occurrence is an hour away


@pytest.mark.parametrize(("policy", "jobs_expected"), [("skip", 0), ("run_once", 1)])
def test_after_an_outage_a_cluster_catches_up_as_the_misfire_policy_says(
    make_cluster, make_schedule, policy, jobs_expected
):
    schedule = make_schedule(
        kind="interval", interval_minutes=30, misfire_policy=policy, now=timezone.now()
    )
    outage_start = timezone.now() - timedelta(hours=3)  # six occurrences missed
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=outage_start)
    make_cluster()

    from django_q.models import Schedule as QSchedule
    from django_q.tasks import async_task

    QSchedule.objects.filter(name="jobdeck.fire_schedules").update(next_run=timezone.now())
    for i in range(3):
        async_task(FIRE, task_name=f"test-catch-up-{i}")

    wait_until(
        lambda: Schedule.objects.get(pk=schedule.pk).next_run_at > timezone.now(),
        60,
        0.1,
        "the schedule to jump past the outage",
    )
    wait_until(lambda: Occurrence.objects.filter(schedule=schedule).exists(), 30, 0.1, "the ledger")
    assert Job.objects.filter(schedule=schedule).count() == jobs_expected  # never a burst
    [occurrence] = Occurrence.objects.filter(schedule=schedule)
    assert occurrence.fire_at == outage_start
    assert (occurrence.job_id is not None) == (policy == "run_once")
