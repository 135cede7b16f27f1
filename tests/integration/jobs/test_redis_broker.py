"""The Redis broker (JOBDECK_BROKER=redis, docs/operations.md): a job runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis
from django_q.models import OrmQ

from jobs.models import Job, JobStatus
from tests.support.cluster import ROOT, cluster_env

pytestmark = [pytest.mark.redis, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_env():
    """A queue of this test's own: other clusters on the same Redis never see it."""
    name = f"jobdeck-test-{os.getpid()}"
    yield {"JOBDECK_BROKER": "redis", "REDIS_URL": REDIS_URL, "Q_CLUSTER_NAME_PREFIX": name}
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"django_q:{name}:*"))
    if keys:
        client.delete(*keys)


def test_a_job_created_from_the_shell_wakes_a_redis_broker_cluster_and_completes(
    make_cluster, redis_env
):
    make_cluster(**redis_env)

    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "jobs",
            "run",
            "demo.steps",
            "--config",
            '{"steps": 2, "delay": 0}',
            "--wait",
            "--timeout",
            "60",
            "--json",
        ],
        cwd=ROOT,
        env=cluster_env(**redis_env),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    job = json.loads(done.stdout.splitlines()[-1])  # JSON Lines: the log, then the job
    assert job["status"] == JobStatus.COMPLETED
    assert Job.objects.get(pk=job["id"]).progress == 100
    assert not OrmQ.objects.exists()  # the wake-up went through Redis, not the database
