"""The Queues page in Chromium: Pause stops new starts across a real cluster, Resume
lets them run, and the figures refresh without a reload."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from jobs import services
from jobs.models import AuditEvent, Job, JobStatus
from tests.browser.conftest import screenshot
from tests.browser.test_console import log_in
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", "ops-pass-123")


def started(ids: list[int]) -> int:
    return Job.objects.filter(pk__in=ids).exclude(started_at=None).count()


def test_pause_on_the_queues_page_stops_new_starts_until_resume(
    page, live_server, operator, make_cluster
):
    cluster = make_cluster()
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/queues/")
    row = page.locator('#jd-queues tr[data-queue="default"]')
    expect(row).to_contain_text("running")
    row.get_by_role("button", name="Pause").click()
    expect(page.locator(".messagelist")).to_contain_text("The queue default is paused.")
    expect(page.locator('#jd-queues tr[data-queue="default"]')).to_contain_text("paused")

    ids = [
        services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0}).pk
        for _ in range(3)
    ]
    # The figures refresh by themselves: the three pending jobs appear without a reload.
    expect(page.locator('#jd-queues tr[data-queue="default"] .jd-pending-count')).to_have_text(
        "3", timeout=10_000
    )
    time.sleep(3)  # the cluster's workers got the jobs' wake-ups and polled meanwhile
    assert started(ids) == 0, cluster.output
    screenshot(page, "queues", full_page=True)

    page.locator('#jd-queues tr[data-queue="default"]').get_by_role("button", name="Resume").click()
    expect(page.locator(".messagelist")).to_contain_text("The queue default is resumed.")
    wait_until(
        lambda: Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == 3,
        30,
        0.2,
        "the jobs to run once resumed",
    )
    assert list(AuditEvent.objects.order_by("pk").values_list("action", "via"))[-2:] == [
        ("paused", "admin"),
        ("resumed", "admin"),
    ]


def test_a_limit_set_on_the_queues_page_shows_on_its_row(page, live_server, operator):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/queues/")
    row = page.locator('#jd-types tr[data-type="demo.steps"]')
    row.get_by_label("concurrency limit of demo.steps").fill("2")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".messagelist")).to_contain_text("The job type demo.steps is updated.")
    expect(page.locator('#jd-types tr[data-type="demo.steps"] td').nth(3)).to_have_text("2")
