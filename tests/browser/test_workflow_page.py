"""The workflow page in Chromium: the graph drawn on the server, each box a link to its
job, recoloured without a reload when a job's status changes; polling stops once the
workflow finished."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import workflows
from jobs.models import Job, JobStatus
from tests.browser.conftest import screenshot
from tests.browser.test_console import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
S = JobStatus


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", "ops-pass-123")


def step(after=(), **extra):
    return {
        "job_type": "demo.steps",
        "config": {"steps": 3, "delay": 0},
        "after": list(after),
        **extra,
    }


def diamond(user) -> tuple[int, dict[str, int]]:
    """a → b, c → d, with d running whatever happens to b and c."""
    spec = {
        "name": "nightly-report",
        "jobs": {
            "extract": step(),
            "transform-eu": step(["extract"]),
            "transform-us": step(["extract"]),
            "publish": step(["transform-eu", "transform-us"], on_parent_failure="run"),
        },
    }
    workflow, ids = workflows.workflow_create(spec=spec, user=user, via="admin")
    return workflow.pk, ids


def force(pk: int, status: str, **fields) -> None:
    now = timezone.now()
    if status != S.PENDING:
        fields.setdefault("started_at", now)
        fields.setdefault("attempts", 1)
    if status in (S.COMPLETED, S.FAILED):
        fields.setdefault("finished_at", now)
    Job.objects.filter(pk=pk).update(status=status, **fields)


def node(page, pk: int):
    return page.locator(f"#jd-node-{pk}")


def test_the_workflow_page_recolours_a_node_when_its_job_completes(page, live_server, operator):
    wf, ids = diamond(operator)
    force(ids["extract"], S.COMPLETED, progress_done=3)
    force(ids["transform-eu"], S.RUNNING, progress_done=1)
    force(ids["transform-us"], S.FAILED, error="task 2 failed: connection reset")
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/jobs/workflow/{wf}/change/")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#jd-wf-status")).to_have_text("running")
    expect(node(page, ids["transform-eu"])).to_have_attribute("class", "jd-node jd-running")
    expect(node(page, ids["transform-us"])).to_have_attribute("class", "jd-node jd-failed")
    running_fill = (
        node(page, ids["transform-eu"]).locator("rect").evaluate("r => getComputedStyle(r).fill")
    )
    assert running_fill == "rgb(31, 111, 178)"  # the admin's running colour (#1f6fb2)
    page.set_viewport_size({"width": 1280, "height": 460})  # the page, not blank space
    screenshot(page, "workflow-page", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    force(ids["transform-eu"], S.COMPLETED, progress_done=3)

    expect(node(page, ids["transform-eu"])).to_have_attribute(
        "class", "jd-node jd-completed", timeout=10_000
    )
    expect(node(page, ids["transform-eu"]).locator(".jd-node-status")).to_have_text("completed")
    expect(page.locator("#jd-wf-progress")).to_contain_text("2 / 4")
    assert page.evaluate("window.__notReloaded") is True

    # The last job ends: the page says so, hides Cancel and stops polling.
    force(ids["publish"], S.COMPLETED)
    expect(page.locator("#jd-wf-status")).to_have_text("failed", timeout=10_000)
    expect(page.locator("#jd-wf-live-state")).to_contain_text("no more updates")
    expect(page.locator("#jd-wf-cancel-tool")).to_be_hidden()
    expect(page.locator("#jd-wf-retry-tool")).to_be_visible()
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/status/" in r.url else None)
    page.wait_for_timeout(4500)
    assert polls == []

    # Each box opens its job's page.
    node(page, ids["transform-us"]).click()
    expect(page).to_have_url(re.compile(rf"/admin/jobs/job/{ids['transform-us']}/change/$"))
    expect(page.locator("#jd-deps")).to_contain_text(f"workflow #{wf}")
    expect(page.locator("#jd-parents")).to_contain_text("extract")
    expect(page.locator("#jd-children")).to_contain_text("publish")
    screenshot(page.locator("#jd-deps"), "job-dependencies")
    # The job page's poll keeps the listed statuses true (every 10 s: this job ended).
    Job.objects.filter(pk=ids["publish"]).update(status=S.CANCELLED)
    expect(page.locator(f'#jd-children [data-dep="{ids["publish"]}"]')).to_have_text(
        "cancelled", timeout=15_000
    )
