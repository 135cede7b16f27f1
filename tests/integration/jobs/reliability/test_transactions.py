"""A job created inside a transaction that rolls back never runs."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django_q.models import OrmQ
from django_q.models import Task as QTask

from jobs import services
from jobs.models import Job, JobStatus
from tests.support.reliability import wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Rollback(Exception):
    pass


def test_a_job_created_in_a_rolled_back_transaction_is_never_enqueued_or_run(
    start_cluster, side_effects
):
    cluster = start_cluster()
    with pytest.raises(Rollback), transaction.atomic():
        ghost = services.job_create(job_type="reliability.once")
        raise Rollback

    assert not OrmQ.objects.exists()  # nothing was sent to the broker
    time.sleep(1.5)  # the cluster polls the broker every 50 ms meanwhile
    assert not Job.objects.exists()
    assert side_effects() == {}
    assert "processing job-" not in cluster.output
    assert not QTask.objects.exists()

    # A job committed afterwards runs (the cluster was listening all along).
    job = services.job_create(job_type="reliability.once")
    wait_for_status(job.pk, lambda s: s == JobStatus.COMPLETED, 20, "the committed job")
    assert side_effects() == {job.pk: [1]}
    assert ghost.pk not in side_effects() or ghost.pk == job.pk  # SQLite reuses rowids
