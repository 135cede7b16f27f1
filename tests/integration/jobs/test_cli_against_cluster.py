"""`manage.py jobs run … --wait` as a real process against a real qcluster."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobs.models import Job, JobStatus
from tests.support.cluster import ROOT, cluster_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=cluster_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_wait_prints_the_logs_and_exits_zero_when_the_job_completes(cluster):
    done = manage("jobs", "run", "demo.steps", "--config", '{"steps": 2, "delay": 0.2}', "--wait")
    assert done.returncode == 0, done.stderr + cluster.output
    assert "step 1 of 2 started" in done.stdout and "step 2 done" in done.stdout
    assert Job.objects.get().status == JobStatus.COMPLETED


def test_run_wait_exits_non_zero_when_the_job_fails(cluster):
    failed = manage(
        "jobs", "run", "demo.steps", "--config", '{"steps": 1, "delay": 0, "fail_at": 1}', "--wait"
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("CommandError: job #")


def test_run_with_an_invalid_config_exits_non_zero_with_one_line_and_creates_no_job():
    bad = manage("jobs", "run", "demo.steps", "--config", '{"steps": -3}', "--wait")
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "CommandError: config: steps: Ensure this value is greater than or equal to 1."
    )
    assert not Job.objects.exists()
