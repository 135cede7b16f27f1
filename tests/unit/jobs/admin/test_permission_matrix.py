"""The job page's endpoints, and every job type through every admin door that creates or
reruns a job (the job-type axis), for every kind of caller: a job one may not see is 404
(or, for the change page, the admin's "does not exist" redirect), one may see but
not manage is refused with a message and no change, and anonymous callers go to the login page."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from jobs.models import Job, JobStatus
from scheduler.models import Schedule
from tests.support.admin_helpers import action, client_for, grant
from tests.support.job_type_matrix import (
    CONFIG,
    JOB_TYPES,
    JOBDECK_ONLY,
    TYPE_RIGHT,
    Door,
    expected,
    job_of,
    jobs_of,
    make_role,
    needs_release,
    the_release,
)
from tests.support.job_type_matrix import ROLES as TYPE_ROLES

pytestmark = pytest.mark.django_db

ROLES = ["owner", "other", "watcher", "manager", "anonymous"]
CASES = [
    # (method, path, job status, expected status code per role)
    ("get", "change/", JobStatus.FAILED, [200, 302, 200, 200, 302]),
    ("get", "logs/", JobStatus.FAILED, [200, 404, 200, 200, 302]),
    ("get", "status/", JobStatus.FAILED, [200, 404, 200, 200, 302]),
    # A watcher sees the job, so its buttons answer with the admin's error message.
    ("post", "cancel/", JobStatus.PENDING, [302, 404, 302, 302, 302]),
    ("post", "retry/", JobStatus.FAILED, [302, 404, 302, 302, 302]),
]


@pytest.fixture
def clients(viewer, watcher, boss, django_user_model) -> dict[str, Client]:
    other = grant(
        django_user_model.objects.create_user("olga", password="olga-pass-123", is_staff=True),
        "view_job",
    )
    return {
        "owner": client_for(viewer),
        "other": client_for(other),
        "watcher": client_for(watcher),
        "manager": client_for(boss),
        "anonymous": Client(),
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "status", "expected"), CASES)
def test_each_job_page_endpoint_answers_each_role_as_the_matrix_says(
    clients, viewer, make_job, role, method, path, status, expected
):
    job = make_job(status, owner=viewer)
    response = getattr(clients[role], method)(f"/admin/jobs/job/{job.pk}/{path}")

    assert response.status_code == expected[ROLES.index(role)]
    if role == "anonymous":
        assert "/admin/login/" in response["Location"]
    if role == "watcher" and method == "post":
        page = clients[role].get(response["Location"])
        assert any("only" in str(m) and "own jobs" in str(m) for m in page.context["messages"])
    changed = Job.objects.values_list("status", flat=True).get(pk=job.pk) != status
    # Only the owner and the manager may change a job, and only through POST.
    assert changed == (method == "post" and role in ("owner", "manager"))


# --- the job-type axis: every job type, every admin door, every role -----------------------

OPERATOR = ("view_job",)  # what opens the jobs admin (and its Run a job page)
ADMIN_DOORS = {
    "run a job": Door(staff=True, perms=OPERATOR),
    "retry button": Door(staff=True, perms=OPERATOR, acts_on_own_job=True),
    "retry action": Door(staff=True, perms=OPERATOR, acts_on_own_job=True),
    "submit action": Door(staff=True, perms=OPERATOR, acts_on_own_job=True),
    "schedule add": Door(staff=True, perms=("view_schedule", "add_schedule"), viewer_reaches=False),
    "schedule run now": Door(
        staff=True, perms=("view_schedule", "change_schedule"), viewer_reaches=False
    ),
}


def run_form(job_type: str) -> dict:
    data = {"job_type": job_type, "priority": 0, "_run": "1"}
    data.update({k: v for k, v in CONFIG[job_type].items() if v is not None})
    if job_type == "maintenance.cleanup":
        data["dry_run"] = "on"
    if needs_release(job_type):
        data["release"] = the_release().pk
    return data


def schedule_form(job_type: str) -> dict:
    return {
        "name": f"every {job_type}",
        "job_type": job_type,
        "config": json.dumps(CONFIG[job_type]),
        "release": the_release().pk if needs_release(job_type) else "",
        "enabled": "on",
        "kind": "interval",
        "interval_minutes": "60",
        "time": "",
        "cron": "",
        "timezone": "UTC",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }


def call_admin_door(door: str, job_type: str, client: Client, actor, owner):
    """Knock on `door` for a `job_type` job; (response, whether it was done)."""
    from scheduler import services as schedule_services

    if door == "run a job":
        before = jobs_of(job_type)
        response = client.post("/admin/jobs/job/run/", run_form(job_type), follow=True)
        return response, jobs_of(job_type) == before + 1
    if door in ("retry button", "retry action", "submit action"):
        status = JobStatus.DRAFT if door == "submit action" else JobStatus.FAILED
        job = job_of(job_type, owner, status)
        if door == "retry button":
            response = client.post(f"/admin/jobs/job/{job.pk}/retry/", follow=True)
        else:
            name = "submit_drafts" if door == "submit action" else "retry_jobs"
            response = action(client, name, [job])
        return response, Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    if door == "schedule add":
        response = client.post(
            "/admin/scheduler/schedule/add/", schedule_form(job_type), follow=True
        )
        return response, Schedule.objects.filter(job_type=job_type).exists()
    assert door == "schedule run now"
    fields = {k: v for k, v in schedule_form(job_type).items() if v != "" and k != "enabled"}
    fields.update(config=CONFIG[job_type], interval_minutes=60)
    if needs_release(job_type):
        fields["release"] = the_release()
    schedule = schedule_services.schedule_create(**fields)
    response = client.post(
        "/admin/scheduler/schedule/",
        {"action": "run_schedules_now", "_selected_action": [schedule.pk]},
        follow=True,
    )
    return response, Job.objects.filter(schedule=schedule, created_by=actor).exists()


def page_text(response) -> str:
    messages = [str(m) for m in response.context["messages"]] if response.context else []
    return " ".join(messages) + response.content.decode()


@pytest.mark.parametrize("role", TYPE_ROLES)
@pytest.mark.parametrize("job_type", JOB_TYPES)
@pytest.mark.parametrize("door", list(ADMIN_DOORS))
def test_each_job_type_through_each_admin_door_is_run_exactly_by_those_allowed(
    settings, tmp_path, door, job_type, role
):
    settings.MEDIA_ROOT = str(tmp_path)
    if door == "schedule run now" and TYPE_RIGHT[job_type] == JOBDECK_ONLY:
        pytest.skip("no schedule of a type only Jobdeck may create can exist")
    actor = make_role(role, ADMIN_DOORS[door], job_type)
    owner = actor
    if role in ("other", "anonymous"):
        owner = make_role("owner", ADMIN_DOORS[door], "demo.steps")
    client = Client()
    if actor is not None:
        client.force_login(actor)
    outcome = expected(ADMIN_DOORS[door], role, job_type)

    response, done = call_admin_door(door, job_type, client, actor, owner)

    assert done == (outcome == "ok"), (outcome, response.status_code)
    assert response.status_code < 500
    if role == "anonymous" or (outcome == "door" and not ADMIN_DOORS[door].perms):
        assert (
            "/admin/login/" in response.redirect_chain[-1][0] if response.redirect_chain else True
        )
    if outcome == "denied":
        # Refused with a reason (a message or a form error), or never offered (Run a
        # job and the schedule form list only the types the user may create).
        text = page_text(response)
        assert "may not run" in text or "Select a valid choice" in text, text[:500]
