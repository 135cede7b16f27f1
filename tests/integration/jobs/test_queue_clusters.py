"""A named cluster runs only its queue's jobs; the default cluster runs the rest."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.models import Job, JobStatus
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
