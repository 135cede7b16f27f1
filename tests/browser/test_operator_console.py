"""The operator's console (issue 19) in Chromium: live job page, live job list, workers,
corrections in place, releases, schedules, the audit page and the site's name."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from jobs import services
from jobs.models import AuditEvent, Job, JobStatus
from releases.models import Release, ReleaseVersion
from scheduler import services as schedule_services
from tests.browser.conftest import screenshot
from tests.browser.test_console import log_in, status_of
from tests.support.cluster import wait_until
from tests.support.release_factories import make_release, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", "ops-pass-123")


def not_reloaded(page) -> None:
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"


def test_a_job_page_left_open_shows_worker_attempts_start_and_then_the_error(
    page, live_server, operator, make_cluster
):
    job = services.job_create(
        job_type="demo.steps",
        config={"steps": 3, "delay": 0.7, "fail_at": 3, "fail_attempts": 5},
        user=operator,
    )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/job/{job.pk}/change/")
    expect(page.locator("#jd-status")).to_have_text("pending")
    expect(page.locator(".fieldBox.field-worker_text .readonly")).to_have_text("—")
    expect(page.locator(".fieldBox.field-started_when .readonly")).to_have_text("—")
    not_reloaded(page)

    cluster = make_cluster()
    expect(page.locator("#jd-status")).to_have_text("running", timeout=30_000)
    expect(page.locator(".fieldBox.field-worker_text .readonly")).to_have_text(
        re.compile(r".+:\d+")
    )
    expect(page.locator(".fieldBox.field-attempts_text .readonly")).to_have_text("1 of 1")
    expect(page.locator(".fieldBox.field-started_when .readonly time")).to_have_text(
        re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
    )
    expect(page.locator('#jd-task-rows tr[data-position="1"] .jd-t-attempts')).to_have_text("1")
    screenshot(page, "job-page")

    expect(page.locator("#jd-status")).to_have_text("failed", timeout=30_000)
    expect(page.locator(".field-error_pretty .readonly")).to_contain_text("fail", timeout=5_000)
    expect(page.locator(".fieldBox.field-finished_when .readonly time")).to_be_visible()
    expect(page.locator('#jd-task-rows tr[data-position="3"] .jd-badge')).to_have_text("failed")
    expect(page.locator("#jd-retry")).to_be_visible()
    assert_not_reloaded(page)
    assert status_of(job.pk) == JobStatus.FAILED, cluster.output
    # The bar and the facts say the same duration.
    assert (
        page.locator("#jd-duration").inner_text()
        == page.locator(".fieldBox.field-duration .readonly").inner_text()
    )

    # The log: on top, filtered by level and searched.
    page.select_option("#jd-log-level", "40")
    expect(page.locator("#jd-log li.jd-level-info")).to_have_count(0)
    expect(page.locator("#jd-log li.jd-level-error")).not_to_have_count(0)
    page.select_option("#jd-log-level", "")
    page.fill("#jd-log-search", "step 2")
    expect(page.locator("#jd-log li").first).to_contain_text("step 2")
    screenshot(page.locator(".jd-logs"), "job-log")

    # Retry with a corrected config through the generated form.
    page.click("#jd-retry-config")
    expect(page.locator("#id_steps")).to_have_value("3")
    page.fill("#id_fail_attempts", "0")
    page.fill("#id_delay", "0")
    screenshot(page, "job-retry-form")
    page.click("#jd-retry-config")
    expect(page.locator(".messagelist")).to_contain_text("queued again with the corrected config")
    expect(page.locator("#jd-status")).to_have_text("completed", timeout=30_000)
    assert Job.objects.get(pk=job.pk).config["fail_attempts"] == 0


def test_a_1000_task_job_page_loads_in_under_a_second(page, live_server, operator):
    job = services.job_create(
        job_type="demo.steps", config={"steps": 1000, "delay": 0}, user=operator
    )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/job/{job.pk}/change/")  # warm
    started = time.perf_counter()
    page.goto(f"{live_server.url}/admin/jobs/job/{job.pk}/change/", wait_until="load")
    elapsed = time.perf_counter() - started
    expect(page.locator("#jd-task-rows tr")).to_have_count(20)
    height = page.evaluate("document.documentElement.scrollHeight")
    print(f"1,000-task job page: loaded in {elapsed:.3f} s, {height} px tall")
    assert elapsed < 1.0
    page.click("[data-go=last]")
    expect(page.locator("#jd-task-page")).to_contain_text("page 50 of 50")
    expect(page.locator("#jd-task-rows tr").last).to_have_attribute("data-position", "1000")


def test_the_job_list_refreshes_itself_and_shows_a_new_job_with_counts_and_queue(
    page, live_server, operator
):
    now = timezone.now()
    for i in range(6):
        Job.objects.create(
            job_type="demo.steps",
            status=[JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RUNNING][i % 3],
            created_by=operator,
            started_at=now - timedelta(seconds=40 + i),
            finished_at=None if i % 3 == 2 else now - timedelta(seconds=i),
            progress_total=4,
            progress_done=i % 5,
            worker="box:1" if i % 3 == 2 else "",
        )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/job/")
    expect(page.locator('.jd-tab-count[data-state="all"]')).to_have_text("6")
    expect(page.locator('.jd-tab-count[data-state="failed"]')).to_have_text("2")
    # Duration is visible at 1,280 px without scrolling sideways.
    header = page.locator("#result_list th.column-duration")
    expect(header).to_be_visible()
    box = header.bounding_box()
    assert box and box["x"] + box["width"] <= 1280, box
    title = page.locator("#result_list td.field-created_when time").first
    expect(title).to_have_text(re.compile(r"\d\d:\d\d:\d\d UTC$"))
    title.hover()
    expect(title).to_have_attribute("title", re.compile(r"ago$"))
    screenshot(page, "job-list")
    not_reloaded(page)

    new = services.job_create(job_type="demo.steps", config={"steps": 1}, user=operator)
    expect(page.locator(f'#result_list a[href$="/job/{new.pk}/change/"]').first).to_be_visible(
        timeout=12_000
    )
    expect(page.locator('.jd-tab-count[data-state="all"]')).to_have_text("7")
    assert_not_reloaded(page)

    # Opting out stops the refresh (remembered for the page).
    page.uncheck("#jd-auto-refresh")
    later = services.job_create(job_type="demo.steps", config={"steps": 1}, user=operator)
    page.wait_for_timeout(7_000)
    expect(page.locator(f'#result_list a[href$="/job/{later.pk}/change/"]')).to_have_count(0)

    # The state tabs filter; "retry all failed in this filter" retries them in one go.
    page.check("#jd-auto-refresh")
    page.click(".jd-tab-failed")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#jd-retry-failed")
    expect(page.locator(".messagelist")).to_contain_text("Retried 2 failed jobs.")
    assert not Job.objects.filter(status=JobStatus.FAILED).exists()


def test_a_bulk_action_reports_one_line(page, live_server, operator):
    jobs = [
        Job.objects.create(job_type="demo.steps", status=JobStatus.COMPLETED, created_by=operator)
        for _ in range(3)
    ]
    pending = services.job_create(job_type="demo.steps", config={"steps": 1}, user=operator)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/job/")
    page.uncheck("#jd-auto-refresh")
    for job in [*jobs, pending]:
        page.check(f'input.action-select[value="{job.pk}"]')
    page.select_option("select[name=action]", "cancel_jobs")
    page.click("button[name=index]")
    expect(page.locator(".messagelist li")).to_have_count(1)
    expect(page.locator(".messagelist")).to_contain_text(
        "Cancelled 1 job. Refused 3: 3 already finished"
    )
    screenshot(page.locator(".messagelist"), "job-list-summary")


def test_a_draft_is_submitted_or_discarded_from_its_page_and_a_delayed_job_runs_now(
    page, live_server, operator
):
    draft = services.job_create(
        job_type="demo.steps", config={"steps": 2}, user=operator, draft=True
    )
    other = services.job_create(
        job_type="demo.steps", config={"steps": 2}, user=operator, draft=True
    )
    delayed = services.job_create(
        job_type="demo.steps",
        config={"steps": 1},
        user=operator,
        run_after=timezone.now() + timedelta(hours=3),
    )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/job/{draft.pk}/change/")
    expect(page.locator("#jd-log-state")).to_contain_text("draft: nothing runs")
    screenshot(page, "job-draft")
    page.click("#jd-submit")
    expect(page.locator(".messagelist")).to_contain_text(f"Draft #{draft.pk} submitted")
    expect(page.locator("#jd-status")).to_have_text("pending")
    expect(page.locator("#jd-submit")).to_be_hidden()

    page.goto(f"{live_server.url}/admin/jobs/job/{other.pk}/change/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#jd-discard")
    expect(page.locator(".messagelist")).to_contain_text(f"Draft #{other.pk} discarded.")
    assert not Job.objects.filter(pk=other.pk).exists()

    page.goto(f"{live_server.url}/admin/jobs/job/{delayed.pk}/change/")
    page.click("#jd-run-now")
    expect(page.locator(".messagelist")).to_contain_text(f"Job #{delayed.pk} starts now.")
    assert Job.objects.get(pk=delayed.pk).run_after is None


def test_the_workers_page_shows_the_cluster_its_workers_and_the_job_each_runs(
    page, live_server, operator, make_cluster
):
    cluster = make_cluster()
    wait_until(
        lambda: (
            page is not None
            and __import__("jobs.models", fromlist=["WorkerProcess"]).WorkerProcess.objects.count()
            >= 2
        ),
        30,
        0.2,
        "the workers to announce themselves",
    )
    job = services.job_create(
        job_type="demo.steps", config={"steps": 30, "delay": 0.5}, user=operator
    )
    wait_until(lambda: status_of(job.pk) == JobStatus.RUNNING, 30, 0.1, "the job to start")
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/jobs/workers/")
    expect(page.locator(".jd-cluster").first).to_contain_text("pid")
    expect(page.locator(".jd-c-busy").first).to_have_text("1 busy")
    expect(page.locator(".jd-c-idle").first).to_have_text("1 idle")
    # The busy worker's row names the job (which row it is depends on the pids).
    expect(page.locator(".jd-w-job").filter(has_text=f"#{job.pk} demo.steps")).to_have_count(1)
    expect(page.locator(".jd-c-memory").first).to_have_text(re.compile(r"\d+(\.\d)? MB"))
    expect(page.locator(".jd-c-uptime").first).to_have_text(re.compile(r"\d+ (s|min)"))
    screenshot(page, "workers")
    not_reloaded(page)
    services.job_cancel(job=job, user=operator)
    expect(page.locator(".jd-c-busy").first).to_have_text("0 busy", timeout=20_000)
    assert_not_reloaded(page)
    assert cluster.output is not None


def test_releases_are_managed_from_the_release_page(page, live_server, operator, tmp_path):
    release = make_release("website", user=operator, name="Website")
    make_version(release, {"index.html": b"<h1>v1</h1>"}, comment="first", user=operator)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/releases/release/{release.pk}/change/")
    page.click("#jd-new-version")
    upload = tmp_path / "index.html"
    upload.write_bytes(b"<h1>v2</h1>")
    page.set_input_files("#id_uploads", str(upload))
    page.fill("#id_manifest", '{"files": ["index.html"], "build": 2}')
    page.fill("#id_comment", "second, from the admin")
    screenshot(page, "release-new-version")
    page.click("#jd-create-version")
    expect(page.locator(".messagelist")).to_contain_text("Version website v2 created (1 files).")
    assert ReleaseVersion.objects.filter(release=release, number=2).exists()

    expect(page.locator("#jd-apply-latest")).to_have_text("Apply v2 (latest)")
    page.click("#jd-apply-latest")
    expect(page.locator(".messagelist")).to_contain_text("Applying website v2: job #")
    apply_job = Job.objects.filter(release=release, job_type="release.apply").latest("pk")
    # Pretend the apply ran (no cluster here): v2 current, with v1 never applied.
    Release.objects.filter(pk=release.pk).update(
        current_version=ReleaseVersion.objects.get(release=release, number=2)
    )
    Job.objects.filter(pk=apply_job.pk).update(
        status=JobStatus.COMPLETED, result={"version": 2, "previous_version": None}
    )
    page.reload()
    expect(page.locator("#jd-release-current")).to_contain_text("website v2")
    expect(page.locator(".jd-current")).to_have_count(1)
    expect(page.locator("#jd-apply-latest")).to_have_text("Re-apply v2 (current)")
    screenshot(page, "release-page")
    page.click("#jd-apply-latest")
    expect(page.locator("#jd-reapply-warning")).to_contain_text("already the current version")
    screenshot(page, "release-reapply")
    page.click("#jd-reapply-confirm")
    expect(page.locator(".messagelist")).to_contain_text("Applying website v2 again")


def test_a_schedule_is_edited_with_its_generated_form_and_a_live_preview(
    page, live_server, operator
):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/admin/scheduler/schedule/add/")
    page.fill("#id_name", "nightly demo")
    page.select_option("#id_job_type", "demo.steps")
    expect(page.locator("#id_cfg__steps")).to_be_visible()  # reloaded with its form
    expect(page.locator("#id_name")).to_have_value("nightly demo")
    page.fill("#id_cfg__steps", "4")
    page.select_option("#id_kind", "daily")
    expect(page.locator(".field-cron")).to_be_hidden()
    expect(page.locator(".field-interval_minutes")).to_be_hidden()
    expect(page.locator(".field-time")).to_be_visible()
    page.fill("#id_time", "02:30")
    page.fill("#id_timezone", "Europe/Par")
    assert page.locator("#jd-timezones option[value='Europe/Paris']").count() == 1
    page.fill("#id_timezone", "Europe/Paris")
    expect(page.locator("#jd-preview-rows tr")).to_have_count(10)
    expect(page.locator("#jd-preview-rows tr").first).to_contain_text("02:30")
    expect(page.locator("#jd-dryrun-warning")).to_be_visible()
    screenshot(page, "schedule-form")
    screenshot(page.locator("#jd-live-preview"), "schedule-preview")
    page.check("#id_dry_run")
    expect(page.locator("#jd-dryrun-warning")).to_be_hidden()
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    schedule = schedule_services.Schedule.objects.get(name="nightly demo")
    assert schedule.config["steps"] == 4 and schedule.dry_run

    page.click("#jd-schedule-run-now")
    expect(page.locator(".messagelist")).to_contain_text(
        re.compile(re.escape("nightly demo: draft #"), re.I)
    )
    page.click("#jd-schedule-toggle")
    expect(page.locator(".messagelist")).to_contain_text(
        re.compile(re.escape("nightly demo disabled."), re.I)
    )
    expect(page.locator("#jd-schedule-toggle")).to_have_text("Enable")
    page.click("#jd-schedule-toggle")
    expect(page.locator(".messagelist")).to_contain_text(
        re.compile(re.escape("nightly demo enabled."), re.I)
    )

    page.goto(f"{live_server.url}/admin/")
    panel = page.locator("#jd-schedules-panel")
    expect(panel).to_contain_text("nightly demo")
    expect(page.locator("#jd-dashboard")).to_be_visible()
    screenshot(page, "dashboard")
    panel.locator(".jd-run-schedule").first.click()
    expect(page.locator(".messagelist")).to_contain_text(
        re.compile(re.escape("nightly demo: draft #"), re.I)
    )


def test_the_audit_page_answers_who_cancelled_what_today(page, live_server, operator):
    job = services.job_create(job_type="demo.steps", config={"steps": 2}, user=operator)
    services.job_cancel(job=job, user=operator, via="cli")
    failed = services.job_create(job_type="demo.steps", config={"steps": 2}, user=operator)
    Job.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED)
    services.job_retry(job=failed, user=operator, via="api", config={"steps": 3})
    log_in(page, live_server)
    expect(page.locator("#site-name")).to_have_text("Jobdeck")
    assert page.title().endswith("Jobdeck")
    page.goto(f"{live_server.url}/admin/jobs/auditevent/")
    expect(page.locator("#result_list tbody tr")).to_have_count(AuditEvent.objects.count())
    expect(page.locator(".jd-diff-add").first).to_have_text("+ config.steps: 3")
    screenshot(page, "audit")
    page.goto(f"{live_server.url}/admin/jobs/auditevent/?action__exact=cancelled&via=cli")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text(f"#{job.pk} demo.steps")
    page.goto(f"{live_server.url}/admin/jobs/job/{job.pk}/history/")
    expect(page).to_have_url(re.compile(r"/admin/jobs/auditevent/\?target_type=jobs.job"))
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
