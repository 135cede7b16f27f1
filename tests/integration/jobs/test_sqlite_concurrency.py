"""The web process and a busy cluster share the SQLite file without lock errors."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection

from jobs import services
from jobs.exceptions import IllegalTransition
from jobs.models import Job, JobStatus
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite journal settings")
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 5000


def test_creating_and_cancelling_jobs_while_a_cluster_drains_them_never_hits_a_lock(cluster):
    created = []
    for i in range(150):
        job = services.job_create(job_type="demo.steps", config={"steps": 2, "delay": 0})
        created.append(job)
        services.job_log(job_id=job.pk, message=f"created by the web side {i}")
        if i % 10 == 0:
            # Already running or finished is a legal refusal, not a lock error.
            with contextlib.suppress(IllegalTransition):
                services.job_cancel(job=job, via="test")
    ids = [j.pk for j in created]
    finished = (JobStatus.COMPLETED, JobStatus.CANCELLED)
    wait_until(
        lambda: Job.objects.filter(pk__in=ids, status__in=finished).count() == len(ids),
        120,
        0.2,
        "every job to finish",
    )
    assert "database is locked" not in cluster.output
    assert not Job.objects.filter(pk__in=ids, status=JobStatus.FAILED).exists()
