"""The admin console in a real browser, with a real qcluster running the jobs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import services
from jobs.models import Job, JobStatus
from scheduler.models import Schedule
from tests.browser.conftest import screenshot
from tests.support.cluster import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", "ops-pass-123")


def log_in(page, live_server, username="ops", password="ops-pass-123") -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


def status_of(pk: int) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=pk)


def test_an_operator_runs_watches_and_cancels_a_demo_job_without_reloading(
    page, live_server, operator, make_cluster
):
    cluster = make_cluster()
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/jobs/job/run/")
    page.select_option("#id_job_type", "demo.steps")
    page.click("#jd-choose-type")
    page.fill("#id_steps", "8")
    page.fill("#id_delay", "1.5")
    page.click("#jd-analyse")
    expect(page.locator("#jd-analysis")).to_contain_text("8 tasks")
    assert not Job.objects.exists()
    page.click("#jd-run")

    expect(page).to_have_url(re.compile(r"/admin/jobs/job/\d+/change/$"))
    job = Job.objects.get()
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#jd-status")).to_have_text("running", timeout=30_000)
    expect(page.locator("#jd-log li")).not_to_have_count(0)
    expect(page.locator("#jd-progress-text")).not_to_have_text(re.compile(r"^0%"), timeout=20_000)
    lines_before = page.locator("#jd-log li").count()
    expect(page.locator("#jd-log li")).not_to_have_count(lines_before, timeout=10_000)
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"
    assert status_of(job.pk) == JobStatus.RUNNING, cluster.output
    expect(page.locator("#jd-cancel")).to_be_visible()
    expect(page.locator("#jd-retry")).to_be_hidden()
    screenshot(page, "job-page")
    screenshot(page.locator(".jd-logs"), "job-log")

    page.click("#jd-cancel")
    expect(page.locator(".messagelist")).to_contain_text("Cancel requested")
    expect(page.locator("#jd-status")).to_have_text("cancelled", timeout=20_000)
    expect(page.locator("#jd-retry")).to_be_visible()
    expect(page.locator("#jd-cancel")).to_be_hidden()
    assert status_of(job.pk) == JobStatus.CANCELLED


def test_an_operator_retries_a_failed_job_and_it_completes(
    page, live_server, operator, make_cluster
):
    cluster = make_cluster()
    job = services.job_create(
        job_type="demo.steps",
        config={"steps": 2, "delay": 0.2, "fail_at": 2, "fail_attempts": 1},
        user=operator,
    )
    wait_until(lambda: status_of(job.pk) == JobStatus.FAILED, 30, 0.1, "the job to fail")
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/jobs/job/{job.pk}/change/")
    expect(page.locator("#jd-status")).to_have_text("failed")
    expect(page.locator(".field-error_pretty .jd-error")).to_contain_text("failed on attempt 1")
    page.click("#jd-retry")

    expect(page.locator(".messagelist")).to_contain_text(f"Job #{job.pk} queued again.")
    expect(page.locator("#jd-status")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#jd-progress-text")).to_contain_text("100%")
    assert status_of(job.pk) == JobStatus.COMPLETED, cluster.output


def test_an_operator_toggles_a_schedule_from_its_list(page, live_server, operator):
    schedule = Schedule.objects.create(
        name="nightly demo",
        job_type="demo.steps",
        config={"steps": 1, "delay": 0},
        kind="interval",
        interval_minutes=60,
        next_run_at=timezone.now() + timedelta(hours=1),
        created_by=operator,
    )
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/scheduler/schedule/")
    checkbox = page.locator("#id_form-0-enabled")
    expect(checkbox).to_be_checked()
    checkbox.uncheck()
    page.click("input[name=_save]")

    expect(page.locator(".messagelist")).to_be_visible()
    schedule.refresh_from_db()
    assert schedule.enabled is False
    expect(page.locator("#id_form-0-enabled")).not_to_be_checked()


def test_the_dashboard_shows_the_figures_and_refreshes_them_in_place(page, live_server, operator):
    now = timezone.now()
    for i in range(30):
        end = now - timedelta(hours=i % 20, days=i % 9)
        Job.objects.create(
            job_type=["demo.steps", "maintenance.cleanup"][i % 2],
            status=JobStatus.FAILED if i % 4 == 0 else JobStatus.COMPLETED,
            created_by=operator,
            started_at=end - timedelta(seconds=1 + i),
            finished_at=end,
            created_at=end - timedelta(seconds=2 + i),
        )
    Job.objects.create(job_type="demo.steps", status=JobStatus.PENDING, queued_at=now)
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/")
    expect(page.locator("#jd-dashboard")).to_contain_text("Jobs dashboard")
    expect(page.locator('.jd-card-count[data-status="pending"]')).to_have_text("1")
    expect(page.locator("#jd-chart-hourly rect.jd-bar-completed")).to_have_count(24)
    screenshot(page, "dashboard")

    page.evaluate("window.__notReloaded = true")
    Job.objects.create(job_type="demo.steps", status=JobStatus.PENDING, queued_at=now)
    expect(page.locator('.jd-card-count[data-status="pending"]')).to_have_text("2", timeout=15_000)
    assert page.evaluate("window.__notReloaded === true")

    page.goto(f"{live_server.url}/admin/jobs/job/")
    expect(page.locator("#result_list tbody tr")).to_have_count(32)
    screenshot(page, "job-list")
