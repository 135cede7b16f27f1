"""End to end through a real qcluster: create over the API, follow the logs, retry."""

from __future__ import annotations

import json
import time

import pytest
from rest_framework.test import APIClient

from jobs.models import TaskStatus
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def create(client: APIClient, body: dict) -> dict:
    response = client.post("/api/jobs/", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.json()
    return response.json()


def status_of(client: APIClient, job_id: int) -> str:
    return client.get(f"/api/jobs/{job_id}/status/").json()["status"]


def follow_logs(client: APIClient, job_id: int, timeout: float = 60) -> list[str]:
    """Poll …/logs/?after=cursor until the job finishes; every line exactly once."""
    seen: list[str] = []
    cursor = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = status_of(client, job_id) in ("completed", "failed", "cancelled")
        page = client.get(f"/api/jobs/{job_id}/logs/?after={cursor}").json()
        seen += [line["message"] for line in page["results"]]
        assert page["cursor"] >= cursor
        cursor = page["cursor"]
        if finished and not page["results"]:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish; logs so far: {seen}")


def test_a_job_created_over_the_api_runs_its_logs_follow_and_a_retry_skips_done_tasks(
    cluster, user
):
    client = APIClient()
    client.force_authenticate(user)

    job = create(client, {"job_type": "demo.steps", "config": {"steps": 3, "delay": 0.2}})
    lines = follow_logs(client, job["id"])

    detail = client.get(f"/api/jobs/{job['id']}/").json()
    assert detail["status"] == "completed", cluster.output
    assert detail["progress"] == 100 and detail["finished_at"] is not None
    assert lines == [m for i in (1, 2, 3) for m in (f"step {i} of 3 started", f"step {i} done")]

    failing = create(
        client,
        {
            "job_type": "demo.steps",
            "config": {"steps": 3, "delay": 0.1, "fail_at": 2, "fail_attempts": 1},
            "max_attempts": 1,
        },
    )
    follow_logs(client, failing["id"])
    failed = client.get(f"/api/jobs/{failing['id']}/").json()
    assert failed["status"] == "failed", cluster.output
    assert [t["status"] for t in failed["tasks"]] == [
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.PENDING,
    ]

    retried = client.post(f"/api/jobs/{failing['id']}/retry/")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    wait_until(lambda: status_of(client, failing["id"]) == "completed", 60, 0.1, "the retry")

    done = client.get(f"/api/jobs/{failing['id']}/").json()
    assert [t["status"] for t in done["tasks"]] == [TaskStatus.SUCCEEDED] * 3
    # Task 1 succeeded on the first attempt and was skipped by the retry.
    assert [t["attempts"] for t in done["tasks"]] == [1, 2, 1]
    assert done["attempts"] == 2
    messages = [
        line["message"]
        for line in client.get(f"/api/jobs/{failing['id']}/logs/?tail=100").json()["results"]
    ]
    assert messages.count("step 1 of 3 started") == 1
    assert messages.count("step 2 of 3 started") == 2
