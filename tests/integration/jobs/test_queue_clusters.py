"""A named cluster runs only its queue's jobs; the default cluster runs the rest; and
clusters sharing a name (one per machine) all work on a bulk creation."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.models import Job, JobStatus, WorkerProcess
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_each_queues_jobs_run_on_the_cluster_that_serves_that_queue(make_cluster, settings):
    mapping = "reports=jobdeck-reports"
    settings.JOBDECK_QUEUE_CLUSTERS = {"reports": "jobdeck-reports"}
    default = make_cluster(JOBDECK_QUEUE_CLUSTERS=mapping)
    reports = make_cluster(JOBDECK_QUEUE_CLUSTERS=mapping, Q_CLUSTER_NAME="jobdeck-reports")

    jobs = [
        services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0}, queue=queue)
        for queue in ["reports", "default"] * 5
    ]
    ids = [j.pk for j in jobs]
    wait_until(
        lambda: Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == 10,
        60,
        0.2,
        "every job to complete",
    )
    pids = {"default": set(default.worker_pids()), "reports": set(reports.worker_pids())}
    for job in Job.objects.filter(pk__in=ids):
        pid = int(job.worker.rsplit(":", 1)[1])
        assert pid in pids[job.queue], (job.queue, job.worker)


def test_every_worker_of_two_clusters_with_one_name_runs_jobs_of_a_bulk_creation(
    make_cluster, settings
):
    # As on two machines: both clusters pull from the same broker list, and whichever
    # pusher looks first takes a burst of messages.
    settings.JOBDECK_HEARTBEAT_SECONDS = 0.5  # as the clusters' (tests/support/cluster.py)
    clusters = [make_cluster(), make_cluster()]
    pids = {pid for c in clusters for pid in c.worker_pids()}
    wait_until(
        lambda: WorkerProcess.objects.filter(pid__in=pids).count() == 4,
        30,
        0.1,
        "the four workers to announce themselves",
    )
    ids = services.job_bulk_create(
        specs=[{"job_type": "demo.steps", "config": {"steps": 1, "delay": 0.05}}] * 200
    )
    wait_until(
        lambda: Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == 200,
        90,
        0.2,
        "every job to complete",
    )
    assert set(Job.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
    ran = set(Job.objects.filter(pk__in=ids).values_list("worker", flat=True))
    for cluster in clusters:
        rows = WorkerProcess.objects.filter(pid__in=cluster.worker_pids())
        workers = set(rows.values_list("name", flat=True))
        assert len(workers) == 2 and workers <= ran, (cluster.name, workers, ran, cluster.output)
