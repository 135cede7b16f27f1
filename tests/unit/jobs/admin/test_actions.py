"""Changelist actions: cancel, retry, submit draft, delete finished — with their refusals."""

from __future__ import annotations

import pytest

from jobs.models import AuditEvent, Job, JobStatus
from tests.support.admin_helpers import action, client_for, status_of, texts

pytestmark = pytest.mark.django_db


def test_cancel_cancels_own_pending_jobs_and_says_how_many(viewer, make_job):
    jobs = [make_job(JobStatus.PENDING, viewer) for _ in range(2)]

    response = action(client_for(viewer), "cancel_jobs", jobs)

    assert response.status_code == 200
    assert [status_of(j) for j in jobs] == [JobStatus.CANCELLED] * 2
    assert "Cancelled 2 jobs." in texts(response)
    event = AuditEvent.objects.filter(job=jobs[0], action="cancelled").get()
    assert (event.action, event.via, event.actor) == ("cancelled", "admin", viewer)


def test_cancel_of_a_running_job_requests_it_and_says_it_stops_at_the_next_step(viewer, make_job):
    job = make_job(JobStatus.RUNNING, viewer)

    response = action(client_for(viewer), "cancel_jobs", [job])

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at is not None
    assert texts(response) == ["Cancelled 1 job. 1 running job stops at its next step."]


def test_cancel_refuses_a_finished_job_with_a_clear_message_and_no_error(viewer, make_job):
    done = make_job(JobStatus.COMPLETED, viewer)
    pending = make_job(JobStatus.PENDING, viewer)

    response = action(client_for(viewer), "cancel_jobs", [done, pending])

    assert response.status_code == 200
    assert status_of(done) == JobStatus.COMPLETED
    assert status_of(pending) == JobStatus.CANCELLED
    assert texts(response) == [f"Cancelled 1 job. Refused 1: 1 already finished (#{done.pk})."]


def test_a_user_who_sees_all_jobs_but_manages_only_their_own_is_refused_on_others(
    watcher, user, make_job
):
    theirs = make_job(JobStatus.PENDING, user)
    mine = make_job(JobStatus.PENDING, watcher)

    response = action(client_for(watcher), "cancel_jobs", [theirs, mine])

    assert status_of(theirs) == JobStatus.PENDING
    assert status_of(mine) == JobStatus.CANCELLED
    assert texts(response) == [f"Cancelled 1 job. Refused 1: 1 not yours (#{theirs.pk})."]


def test_a_staff_user_cannot_act_on_jobs_they_cannot_see(viewer, user, make_job):
    theirs = make_job(JobStatus.PENDING, user)

    response = action(client_for(viewer), "cancel_jobs", [theirs])

    assert status_of(theirs) == JobStatus.PENDING
    assert texts(response) == ["Cancelled no jobs."]


def test_a_manager_cancels_and_retries_other_users_jobs(boss, user, make_job):
    pending = make_job(JobStatus.PENDING, user)
    failed = make_job(JobStatus.FAILED, user)

    first = action(client_for(boss), "cancel_jobs", [pending])
    second = action(client_for(boss), "retry_jobs", [failed])

    assert status_of(pending) == JobStatus.CANCELLED
    assert status_of(failed) == JobStatus.PENDING
    assert "Cancelled 1 job." in texts(first)
    assert "Retried 1 job." in texts(second)


def test_retry_requeues_failed_and_cancelled_jobs_and_refuses_completed_ones(viewer, make_job):
    failed = make_job(JobStatus.FAILED, viewer, error="Traceback: boom")
    cancelled = make_job(JobStatus.CANCELLED, viewer)
    done = make_job(JobStatus.COMPLETED, viewer)

    response = action(client_for(viewer), "retry_jobs", [failed, cancelled, done])

    assert [status_of(j) for j in (failed, cancelled, done)] == [
        JobStatus.PENDING,
        JobStatus.PENDING,
        JobStatus.COMPLETED,
    ]
    assert texts(response) == [f"Retried 2 jobs. Refused 1: 1 completed (#{done.pk})."]
    assert AuditEvent.objects.filter(job=failed, action="retried", via="admin").exists()


def test_submit_turns_drafts_into_pending_jobs_and_refuses_others(viewer, make_job):
    draft = make_job(JobStatus.DRAFT, viewer)
    pending = make_job(JobStatus.PENDING, viewer)

    response = action(client_for(viewer), "submit_drafts", [draft, pending])

    assert status_of(draft) == JobStatus.PENDING
    assert status_of(pending) == JobStatus.PENDING
    assert texts(response) == [f"Submitted 1 draft. Refused 1: 1 pending (#{pending.pk})."]


def test_delete_finished_asks_for_confirmation_first_and_deletes_nothing_yet(viewer, make_job):
    done = make_job(JobStatus.COMPLETED, viewer)
    running = make_job(JobStatus.RUNNING, viewer)

    response = action(client_for(viewer), "delete_finished", [done, running])

    assert response.status_code == 200
    assert "admin/jobs/job/delete_finished_confirmation.html" in [
        t.name for t in response.templates
    ]
    assert [j.pk for j in response.context["deletable"]] == [done.pk]
    assert [j.pk for j in response.context["refused"]] == [running.pk]
    assert Job.objects.filter(pk__in=[done.pk, running.pk]).count() == 2


def test_delete_finished_once_confirmed_deletes_finished_jobs_and_keeps_active_ones(
    viewer, make_job
):
    done = make_job(JobStatus.COMPLETED, viewer)
    draft = make_job(JobStatus.DRAFT, viewer)
    running = make_job(JobStatus.RUNNING, viewer)

    response = action(client_for(viewer), "delete_finished", [done, draft, running], post="yes")

    assert not Job.objects.filter(pk__in=[done.pk, draft.pk]).exists()
    assert status_of(running) == JobStatus.RUNNING
    assert texts(response) == [f"Deleted 2 jobs. Refused 1: 1 running (#{running.pk})."]
    assert AuditEvent.objects.filter(action="deleted", via="admin").count() == 2


def test_delete_finished_refuses_other_users_jobs_for_a_non_manager(watcher, user, make_job):
    theirs = make_job(JobStatus.COMPLETED, user)
    from tests.support.admin_helpers import grant

    watcher = grant(watcher, "delete_job")

    response = action(client_for(watcher), "delete_finished", [theirs], post="yes")

    assert Job.objects.filter(pk=theirs.pk).exists()
    assert texts(response) == [f"Deleted no jobs. Refused 1: 1 not yours (#{theirs.pk})."]


def test_delete_finished_is_offered_only_with_the_delete_permission(watcher, viewer):
    without = client_for(watcher).get("/admin/jobs/job/")
    with_perm = client_for(viewer).get("/admin/jobs/job/")

    names = [name for name, _ in without.context["action_form"].fields["action"].choices]
    assert "delete_finished" not in names
    assert "cancel_jobs" in names
    names = [name for name, _ in with_perm.context["action_form"].fields["action"].choices]
    assert "delete_finished" in names


def test_djangos_own_delete_selected_is_never_offered(superuser):
    response = client_for(superuser).get("/admin/jobs/job/")

    names = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in names
    assert {"cancel_jobs", "retry_jobs", "submit_drafts", "delete_finished"} <= set(names)


def test_a_bulk_action_reports_one_summary_line_however_many_are_refused(viewer, make_job):
    done = [make_job(JobStatus.COMPLETED, viewer) for _ in range(9)]
    pending = make_job(JobStatus.PENDING, viewer)

    response = action(client_for(viewer), "cancel_jobs", [*done, pending])

    ids = sorted(j.pk for j in done)
    shown = ", ".join(f"#{pk}" for pk in ids[:5])
    assert texts(response) == [
        f"Cancelled 1 job. Refused 9: 9 already finished ({shown} and 4 more)."
    ]


def test_run_now_starts_a_delayed_job_and_refuses_one_that_is_not_delayed(viewer, make_job):
    from datetime import timedelta

    from django.utils import timezone

    delayed = make_job(JobStatus.PENDING, viewer, run_after=timezone.now() + timedelta(hours=1))
    due = make_job(JobStatus.PENDING, viewer)

    response = action(client_for(viewer), "run_now", [delayed, due])

    assert Job.objects.get(pk=delayed.pk).run_after is None
    assert texts(response) == [
        f"Started 1 delayed job now. Refused 1: 1 pending and not delayed (#{due.pk})."
    ]
    event = AuditEvent.objects.get(job=delayed, action="ran")
    assert event.via == "admin" and event.detail["run_after"]["new"] is None


def test_discard_deletes_drafts_only_and_records_it(viewer, make_job):
    draft = make_job(JobStatus.DRAFT, viewer)
    pending = make_job(JobStatus.PENDING, viewer)

    response = action(client_for(viewer), "discard_drafts", [draft, pending])

    assert not Job.objects.filter(pk=draft.pk).exists()
    assert status_of(pending) == JobStatus.PENDING
    assert texts(response) == [f"Discarded 1 draft. Refused 1: 1 pending (#{pending.pk})."]
    event = AuditEvent.objects.get(action="discarded")
    assert (event.target_type, event.target_id, event.via) == ("jobs.job", str(draft.pk), "admin")


def test_retry_all_failed_in_this_filter_retries_the_filtered_failed_jobs_only(
    boss, viewer, user, make_job
):
    failed_demo = make_job(JobStatus.FAILED, viewer)
    failed_other = make_job(JobStatus.FAILED, user)
    cancelled = make_job(JobStatus.CANCELLED, viewer)
    query = f"created_by__id__exact={viewer.pk}"

    response = client_for(boss).post(
        "/admin/jobs/job/retry-failed/", {"_changelist_filters": query}, follow=True
    )

    assert status_of(failed_demo) == JobStatus.PENDING
    assert status_of(failed_other) == JobStatus.FAILED
    assert status_of(cancelled) == JobStatus.CANCELLED
    assert texts(response) == ["Retried 1 failed job."]
    assert response.redirect_chain[-1][0] == f"/admin/jobs/job/?{query}"
