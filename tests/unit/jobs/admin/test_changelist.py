"""The job changelist: columns, filters, search, visibility, and a constant query count."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.admin_views import EstimatedCountPaginator
from jobs.models import Job, JobStatus
from releases.models import Release
from scheduler.models import Schedule
from tests.support.admin_helpers import client_for, grant

pytestmark = pytest.mark.django_db


def make_rows(n: int, owner, release) -> None:
    Job.objects.bulk_create(
        [
            Job(
                job_type="demo.steps",
                status=[JobStatus.PENDING, JobStatus.FAILED, JobStatus.COMPLETED][i % 3],
                created_by=owner,
                release=release if i % 2 else None,
                progress_total=4,
                progress_done=i % 5,
                config={"steps": 4, "secret": "x" * 1000},
                error="trace " * 100,
            )
            for i in range(n)
        ]
    )


def test_the_changelist_shows_id_type_status_badge_progress_owner_and_duration(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer, progress_done=1)

    response = client_for(viewer).get("/admin/jobs/job/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'<a href="/admin/jobs/job/{job.pk}/change/">{job.pk}</a>' in html
    assert '<span class="jd-badge jd-running">running</span>' in html
    assert 'class="jd-progress-fill" style="width: 50%"' in html
    assert ">sam<" in html
    assert "Run a job" in html


def test_the_changelist_runs_the_same_number_of_queries_for_5_and_50_rows(
    boss, user, django_assert_num_queries
):
    release = Release.objects.create(slug="web", name="Web")
    client = client_for(boss)
    make_rows(5, user, release)
    with CaptureQueriesContext(connection) as five:
        assert client.get("/admin/jobs/job/").status_code == 200
    make_rows(45, user, release)

    with django_assert_num_queries(len(five.captured_queries)):
        response = client.get("/admin/jobs/job/")

    assert len(response.context["cl"].result_list) == 50


def test_the_changelist_query_defers_config_result_error_and_analysis(boss, user):
    make_rows(3, user, None)

    with CaptureQueriesContext(connection) as ctx:
        client_for(boss).get("/admin/jobs/job/")

    listing = next(
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("SELECT") and '"jobs_job"."job_type"' in q["sql"]
    )
    for heavy in ("config", "result", "error", "analysis"):
        assert f'"jobs_job"."{heavy}"' not in listing


def test_staff_without_view_all_jobs_see_only_their_own_jobs(viewer, user, make_job):
    mine = make_job(JobStatus.PENDING, viewer)
    theirs = make_job(JobStatus.PENDING, user)

    response = client_for(viewer).get("/admin/jobs/job/")
    other_page = client_for(viewer).get(f"/admin/jobs/job/{theirs.pk}/change/", follow=True)

    assert [j.pk for j in response.context["cl"].result_list] == [mine.pk]
    assert other_page.status_code == 200
    assert "doesn\u2019t exist" in other_page.content.decode()


def test_a_staff_user_with_view_all_jobs_sees_everyones_jobs(watcher, user, make_job):
    make_job(JobStatus.PENDING, watcher)
    make_job(JobStatus.PENDING, user)

    response = client_for(watcher).get("/admin/jobs/job/")

    assert len(response.context["cl"].result_list) == 2


@pytest.mark.parametrize(
    "query",
    [
        "status__exact=failed",
        "job_type=demo.steps",
        "release__id__exact={release}",
        "created_by__id__exact={owner}",
        "schedule__id__exact={schedule}",
        "created_at__gte=2000-01-01+00:00:00%2B00:00",
        "created_at__year=2026",
        "q={job}",
        "q=demo",
        "q=not-a-number",
    ],
)
def test_every_filter_and_the_search_answer(boss, user, make_job, query):
    release = Release.objects.create(slug="web", name="Web")
    schedule = Schedule.objects.create(name="nightly", job_type="demo.steps", kind="interval")
    job = make_job(JobStatus.FAILED, user, release=release, schedule=schedule)
    url = "/admin/jobs/job/?" + query.format(
        release=release.pk, owner=user.pk, schedule=schedule.pk, job=job.pk
    )

    response = client_for(boss).get(url)

    assert response.status_code == 200
    assert "cl" in response.context, response.content[:300]


def test_filters_narrow_the_list(boss, user, make_job):
    failed = make_job(JobStatus.FAILED, user)
    make_job(JobStatus.PENDING, user)
    client = client_for(boss)

    make_job(JobStatus.PENDING, grant(user, "cleanup_jobs"), job_type="maintenance.cleanup")
    by_status = client.get("/admin/jobs/job/?status__exact=failed")
    by_id = client.get(f"/admin/jobs/job/?q=%23{failed.pk}")
    by_label = client.get("/admin/jobs/job/?q=numbered")
    by_name = client.get("/admin/jobs/job/?q=cleanup")

    assert [j.pk for j in by_status.context["cl"].result_list] == [failed.pk]
    assert [j.pk for j in by_id.context["cl"].result_list] == [failed.pk]
    assert {j.job_type for j in by_label.context["cl"].result_list} == {"demo.steps"}
    assert [j.job_type for j in by_name.context["cl"].result_list] == ["maintenance.cleanup"]


def test_the_date_hierarchy_drills_down_from_years_to_days_without_distinct_scans(
    boss, user, make_job
):
    job = make_job(JobStatus.PENDING, user)
    y, m, d = job.created_at.year, job.created_at.month, job.created_at.day
    client = client_for(boss)

    top = client.get("/admin/jobs/job/").content.decode()
    year = client.get(f"/admin/jobs/job/?created_at__year={y}").content.decode()
    month = client.get(f"/admin/jobs/job/?created_at__year={y}&created_at__month={m}")
    day = client.get(
        f"/admin/jobs/job/?created_at__year={y}&created_at__month={m}&created_at__day={d}"
    )

    assert f"?created_at__year={y}" in top
    assert f"created_at__month={m}" in year
    assert f"created_at__day={d}" in month.content.decode()
    assert [j.pk for j in day.context["cl"].result_list] == [job.pk]


def test_the_paginator_caps_a_filtered_count_and_says_it_is_estimated(boss, user, monkeypatch):
    make_rows(30, user, None)
    monkeypatch.setattr(EstimatedCountPaginator, "cap", 5)

    response = client_for(boss).get("/admin/jobs/job/?status__exact=pending")

    cl = response.context["cl"]
    assert cl.result_count == 5
    assert cl.paginator.estimated
    assert "more than" in response.content.decode()


def test_the_paginator_counts_exactly_below_the_cap(boss, user):
    make_rows(7, user, None)

    response = client_for(boss).get("/admin/jobs/job/")

    assert response.context["cl"].result_count == 7
    assert not response.context["cl"].paginator.estimated


def test_the_state_tabs_count_each_state_only_up_to_the_cap(boss, user, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "cap", 2)
    make_rows(7, user, None)  # 3 pending, 2 failed, 2 completed

    html = client_for(boss).get("/admin/jobs/job/").content.decode()
    counts = dict(re.findall(r'data-state="([a-z]+)">([^<]*)<', html))

    assert counts["waiting"] == "2+" and counts["all"] == "2+"
    assert counts["failed"] == "2" and counts["completed"] == "2" and counts["draft"] == "0"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_class estimate")
def test_on_postgresql_an_unfiltered_big_table_is_counted_from_the_planner_estimate(
    boss, monkeypatch
):
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_from", 0)
    paginator = EstimatedCountPaginator(Job.objects.order_by("-id"), 50)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")

    with CaptureQueriesContext(connection) as ctx:
        paginator.count  # noqa: B018

    assert paginator.estimated
    assert "pg_class" in ctx.captured_queries[0]["sql"]
    assert not any("COUNT(" in q["sql"].upper() for q in ctx.captured_queries)


def test_the_list_has_state_tabs_with_counts_a_queue_column_and_timestamps_with_seconds(
    viewer, make_job
):
    from datetime import timedelta

    from django.utils import timezone

    make_job(JobStatus.RUNNING, viewer)
    make_job(JobStatus.PENDING, viewer)
    make_job(JobStatus.PENDING, viewer, run_after=timezone.now() + timedelta(hours=1))
    make_job(JobStatus.PENDING, viewer, attempts=1)
    make_job(JobStatus.FAILED, viewer)
    client = client_for(viewer)

    html = client.get("/admin/jobs/job/").content.decode()
    counts = dict(re.findall(r'data-state="([a-z]+)">(\d+)<', html))
    scheduled = client.get("/admin/jobs/job/?state=scheduled")

    assert counts == {
        "all": "5",
        "running": "1",
        "waiting": "2",
        "scheduled": "1",
        "retrying": "1",
        "failed": "1",
        "cancelled": "0",
        "completed": "0",
        "draft": "0",
    }
    assert len(scheduled.context["cl"].result_list) == 1
    assert "column-queue" in html and '<td class="field-queue">default</td>' in html
    assert re.search(
        r'<time datetime="[^"]+" title="[^"]+ ago" class="jd-time">'
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>",
        html,
    )
    assert 'id="jd-retry-failed"' in html and 'id="jd-auto-refresh" checked' in html


def test_the_queue_filter_lists_the_known_queues(viewer, make_job):
    make_job(JobStatus.PENDING, viewer)
    response = client_for(viewer).get("/admin/jobs/job/?queue=default")
    assert len(response.context["cl"].result_list) == 1
    assert (
        len(client_for(viewer).get("/admin/jobs/job/?queue=other").context["cl"].result_list) == 0
    )
