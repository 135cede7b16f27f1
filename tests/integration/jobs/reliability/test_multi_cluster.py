"""Several clusters on one PostgreSQL: every job's work runs exactly once, even across a restart."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Count
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobLog, JobStatus, Task
from tests.support.cluster import wait_until
from tests.support.reliability import final

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="several clusters on one PostgreSQL"
    ),
]


def status_counts() -> dict[str, int]:
    rows = Job.objects.values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}


def assert_no_double_work(outputs: str) -> None:
    """The side-effect table's UNIQUE(job_id) turns a second run of a job's work into an
    IntegrityError, which the runner records as the task's failure."""
    assert "IntegrityError" not in outputs
    assert not Task.objects.filter(error__contains="IntegrityError").exists()
    assert not JobLog.objects.filter(message__contains="IntegrityError").exists()


def test_two_clusters_drain_a_thousand_jobs_running_each_job_s_work_exactly_once(
    start_cluster, side_effects, measure
):
    started = time.monotonic()
    jobs = [services.job_create(job_type="reliability.once") for _ in range(1000)]
    measure("create_1000_seconds", time.monotonic() - started)
    clusters = [start_cluster(wait=False, Q_WORKERS="2") for _ in range(2)]
    for cluster in clusters:
        cluster.wait_ready()
    ready = time.monotonic()
    wait_until(
        lambda: status_counts().get(JobStatus.COMPLETED, 0) == len(jobs),
        240,
        0.25,
        "all jobs to complete",
    )
    drained = time.monotonic() - ready
    measure("drain_1000_seconds", drained)
    measure("jobs_per_second", len(jobs) / drained)

    effects = side_effects()
    assert sorted(effects) == sorted(job.pk for job in jobs)
    assert all(attempts == [1] for attempts in effects.values())
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}
    assert_no_double_work("\n".join("\n".join(c.lines) for c in clusters))
    # Both clusters took part.
    pids = {int(w.rsplit(":", 1)[1]) for w in Job.objects.values_list("worker", flat=True)}
    for cluster in clusters:
        assert pids & set(cluster.worker_pids()), cluster.output


def postgres_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    return versions[-1]


def restart_postgres() -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def reconnecting(fn):
    """Call fn(); after a dropped connection (the restart), reconnect and report None."""
    try:
        return fn()
    except (OperationalError, InterfaceError):
        connection.close()
        return None


STALE = 10.0


@pytest.mark.disruptive
def test_clusters_recover_from_a_postgresql_restart_and_no_job_is_lost_or_doubled(
    start_cluster, side_effects, measure
):
    from django_q.models import Schedule

    # The promise holds for outages shorter than the staleness threshold.
    env = dict(Q_WORKERS="2", JOBDECK_STALE_SECONDS=str(int(STALE)))
    clusters = [start_cluster(**env) for _ in range(2)]
    jobs = [
        services.job_create(job_type="reliability.once", config={"seconds": 0.05}, max_attempts=3)
        for _ in range(400)
    ]
    wait_until(lambda: status_counts().get(JobStatus.COMPLETED, 0) >= 50, 60, 0.1, "jobs to run")

    restarted = time.monotonic()
    restart_postgres()
    connection.close()
    measure("postgres_restart_seconds", time.monotonic() - restarted)

    def settled() -> bool:
        counts = reconnecting(status_counts)
        if counts is None:
            return False
        if sum(counts.get(s, 0) for s in (JobStatus.COMPLETED, JobStatus.FAILED)) == len(jobs):
            return True
        # Jobs whose worker lost its connection mid-job are recovered by the sweep:
        # run the tick at the next scheduler pass instead of waiting for the minute.
        cutoff = timezone.now() - timedelta(seconds=STALE + 0.5)
        if Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).exists():
            Schedule.objects.filter(name="jobdeck.tick").update(next_run=timezone.now())
        return False

    wait_until(settled, 150, 0.5, "every job to reach a final state")
    measure("restart_to_all_final_seconds", time.monotonic() - restarted)

    outputs = "\n".join("\n".join(c.lines) for c in clusters)
    counts = status_counts()
    effects = side_effects()
    assert Job.objects.count() == len(jobs)
    assert all(final(s) for s in counts), counts
    assert all(len(attempts) == 1 for attempts in effects.values())
    assert_no_double_work(outputs)
    # Completed jobs did their work once; a failed one (attempts exhausted) did none.
    completed = set(Job.objects.filter(status=JobStatus.COMPLETED).values_list("pk", flat=True))
    failed = [
        (job.pk, job.attempts, job.error[:300], list(job.logs.values_list("message", flat=True)))
        for job in Job.objects.filter(status=JobStatus.FAILED)
    ]
    assert completed == set(effects), (counts, failed)
    measure("jobs_requeued_after_restart", Job.objects.filter(attempts__gt=1).count())
    for cluster in clusters:
        assert cluster.proc.poll() is None, cluster.output
    # The clusters are still usable afterwards.
    after = services.job_create(job_type="reliability.once")
    wait_until(
        lambda: Job.objects.filter(pk=after.pk, status=JobStatus.COMPLETED).exists(),
        30,
        0.1,
        "a job created after the restart to complete",
    )
