"""The whole permission matrix: every job endpoint, every kind of caller, and every job
type through every API door that creates or reruns a job (the job-type axis).

Roles: the owner, another user, staff without the all-jobs permissions, a watcher
(view_all_jobs), a manager (view_all_jobs + manage_all_jobs) and an anonymous
caller. Objects a caller may not see are 404 (never 403, which would leak their
existence); objects they may see but not act on are 403; anonymous is 401.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from scheduler.models import Schedule
from tests.support.job_factories import make_job
from tests.support.job_type_matrix import (
    JOB_TYPES,
    JOBDECK_ONLY,
    TYPE_RIGHT,
    Door,
    expected,
    job_of,
    jobs_of,
    make_role,
    spec,
    the_release,
)
from tests.support.job_type_matrix import ROLES as TYPE_ROLES

pytestmark = pytest.mark.django_db

ROLES = ["owner", "other", "staff", "watcher", "manager", "anonymous"]

# (method, path template, status for each role in ROLES order); {id} is the owner's job.
READ = [200, 404, 404, 200, 200, 401]
ACT = [200, 404, 404, 403, 200, 401]
MATRIX = [
    ("get", "/api/jobs/{id}/", JobStatus.FAILED, READ),
    ("get", "/api/jobs/{id}/status/", JobStatus.FAILED, READ),
    ("get", "/api/jobs/{id}/logs/", JobStatus.FAILED, READ),
    ("post", "/api/jobs/{id}/cancel/", JobStatus.PENDING, ACT),
    ("put", "/api/jobs/{id}/cancel/", JobStatus.PENDING, ACT),
    ("post", "/api/jobs/{id}/retry/", JobStatus.FAILED, ACT),
    ("get", "/api/wizard/jobs/{id}/", JobStatus.DRAFT, READ),
    ("get", "/api/wizard/jobs/{id}/status/", JobStatus.DRAFT, READ),
    ("get", "/api/wizard/jobs/{id}/logs/", JobStatus.DRAFT, READ),
    ("get", "/api/wizard/jobs/{id}/analysis/", JobStatus.DRAFT, READ),
    ("post", "/api/wizard/jobs/{id}/submit/", JobStatus.DRAFT, ACT),
    ("delete", "/api/wizard/jobs/{id}/", JobStatus.DRAFT, [204, 404, 404, 403, 204, 401]),
]


@pytest.fixture
def clients(user, other_user, staff_user, watcher, manager) -> dict[str, APIClient]:
    users = {
        "owner": user,
        "other": other_user,
        "staff": staff_user,
        "watcher": watcher,
        "manager": manager,
    }
    result = {}
    for role, member in users.items():
        client = APIClient()
        client.force_authenticate(member)
        result[role] = client
    result["anonymous"] = APIClient()
    return result


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "status", "expected"), MATRIX)
def test_each_endpoint_answers_each_role_as_the_matrix_says_and_refusals_change_nothing(
    clients, user, role, method, path, status, expected
):
    job = make_job(status, user=user)
    before = Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()
    response = getattr(clients[role], method)(path.format(id=job.pk), format="json")

    assert response.status_code == expected[ROLES.index(role)], response.content
    if response.status_code >= 400:
        assert Job.objects.filter(pk=job.pk).values_list("status", flat=True).get() == before
        assert "detail" in response.json()


# A workflow of the owner's, with one pending job: reading it, cancelling and retrying it.
WORKFLOW_MATRIX = [
    ("get", "/api/workflows/{id}/", READ),
    ("post", "/api/workflows/{id}/cancel/", ACT),
    ("post", "/api/workflows/{id}/retry/", [409, 404, 404, 403, 409, 401]),  # nothing failed
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "expected"), WORKFLOW_MATRIX)
def test_each_workflow_endpoint_answers_each_role_as_the_matrix_says(
    clients, user, role, method, path, expected
):
    from jobs import workflows

    step = {"job_type": "demo.steps", "config": {"steps": 1, "delay": 0}}
    workflow, ids = workflows.workflow_create(spec={"jobs": {"a": step}}, user=user)
    response = getattr(clients[role], method)(path.format(id=workflow.pk), format="json")

    assert response.status_code == expected[ROLES.index(role)], response.content
    if response.status_code >= 400:
        assert Job.objects.get(pk=ids["a"]).status == JobStatus.PENDING
        assert "detail" in response.json()


@pytest.mark.parametrize(
    ("role", "sees_it"),
    [("owner", True), ("other", False), ("staff", False), ("watcher", True), ("manager", True)],
)
def test_lists_show_another_users_job_only_to_those_allowed_to_see_it(clients, user, role, sees_it):
    job = make_job(JobStatus.FAILED, user=user)
    draft = make_job(JobStatus.DRAFT, user=user)
    jobs = {j["id"] for j in clients[role].get("/api/jobs/?page_size=200").json()["results"]}
    drafts = {j["id"] for j in clients[role].get("/api/wizard/jobs/").json()["results"]}
    assert (job.pk in jobs, draft.pk in drafts) == (sees_it, sees_it)


def test_lists_refuse_anonymous_callers(clients):
    assert clients["anonymous"].get("/api/jobs/").status_code == 401
    assert clients["anonymous"].get("/api/wizard/jobs/").status_code == 401


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("owner", 403),
        ("other", 403),
        ("staff", 403),
        ("watcher", 403),
        ("manager", 403),
        ("cleaner", 200),
        ("anonymous", 401),
    ],
)
def test_cleanup_needs_the_cleanup_permission(clients, cleaner_client, role, expected):
    client = cleaner_client if role == "cleaner" else clients[role]
    response = client.post(
        "/api/jobs/cleanup/", {"older_than_days": 30, "dry_run": True}, format="json"
    )
    assert response.status_code == expected


# --- the job-type axis: every job type, every API door, every role ------------------------


API_DOORS = {
    "create": Door(),
    "bulk": Door(),
    "wizard draft": Door(),
    "wizard submit": Door(acts_on_own_job=True),
    "retry": Door(acts_on_own_job=True),
    "workflow": Door(),
    "schedule create": Door(perms=("add_schedule",), viewer_reaches=False),
    "schedule change": Door(perms=("change_schedule",), viewer_reaches=False),
    "schedule run now": Door(perms=("change_schedule",), viewer_reaches=False),
}
SCHEDULE_DOORS = {"schedule create", "schedule change", "schedule run now"}


def schedule_body(job_type: str) -> dict:
    body = {
        "name": f"every {job_type}",
        "kind": "interval",
        "interval_minutes": 60,
        **spec(job_type),
    }
    return body


def new_schedule(job_type: str, **fields):
    """A schedule of `job_type` made as Jobdeck (no owner)."""
    from scheduler import services as schedule_services

    values = {**schedule_body(job_type), **fields}
    if "release" in values:
        values["release"] = the_release()
    return schedule_services.schedule_create(**values)


def call_api_door(door: str, job_type: str, client: APIClient, actor, owner) -> tuple:
    """Knock on `door` for a `job_type` job; (response, whether it was done)."""
    if door == "create":
        before = jobs_of(job_type)
        response = client.post("/api/jobs/", spec(job_type), format="json")
        return response, jobs_of(job_type) == before + 1
    if door == "bulk":
        before = jobs_of(job_type)
        response = client.post("/api/jobs/bulk/", {"jobs": [spec(job_type)] * 2}, format="json")
        return response, jobs_of(job_type) == before + 2
    if door == "workflow":
        before = jobs_of(job_type)
        nodes = {"first": spec(job_type), "then": {**spec(job_type), "after": ["first"]}}
        response = client.post("/api/workflows/", {"jobs": nodes}, format="json")
        return response, jobs_of(job_type) == before + 2
    if door == "wizard draft":
        before = jobs_of(job_type)
        response = client.post("/api/wizard/jobs/", spec(job_type), format="json")
        return response, jobs_of(job_type) == before + 1
    if door == "wizard submit":
        draft = job_of(job_type, owner, JobStatus.DRAFT)
        response = client.post(f"/api/wizard/jobs/{draft.pk}/submit/", format="json")
        return response, Job.objects.get(pk=draft.pk).status == JobStatus.PENDING
    if door == "retry":
        failed = job_of(job_type, owner, JobStatus.FAILED)
        response = client.post(f"/api/jobs/{failed.pk}/retry/", {}, format="json")
        return response, Job.objects.get(pk=failed.pk).status == JobStatus.PENDING
    if door == "schedule create":
        response = client.post("/api/schedules/", schedule_body(job_type), format="json")
        return response, Schedule.objects.filter(job_type=job_type).exists()
    if door == "schedule change":
        schedule = new_schedule("demo.steps", config={"steps": 7})
        body = {k: v for k, v in schedule_body(job_type).items() if k != "name"}
        response = client.patch(f"/api/schedules/{schedule.pk}/", body, format="json")
        schedule.refresh_from_db()
        return response, (schedule.job_type, schedule.config.get("steps")) != ("demo.steps", 7)
    assert door == "schedule run now"
    schedule = new_schedule(job_type)
    response = client.post(f"/api/schedules/{schedule.pk}/run/", format="json")
    return response, Job.objects.filter(schedule=schedule, created_by=actor).exists()


@pytest.mark.parametrize("role", TYPE_ROLES)
@pytest.mark.parametrize("job_type", JOB_TYPES)
@pytest.mark.parametrize("door", list(API_DOORS))
def test_each_job_type_through_each_api_door_is_run_exactly_by_those_allowed(
    settings, tmp_path, door, job_type, role
):
    settings.MEDIA_ROOT = str(tmp_path)
    if door in SCHEDULE_DOORS - {"schedule create"} and TYPE_RIGHT[job_type] == JOBDECK_ONLY:
        pytest.skip("no schedule of a type only Jobdeck may create can exist")
    actor = make_role(role, API_DOORS[door], job_type)
    owner = actor
    if role in ("other", "anonymous"):
        owner = make_role("owner", API_DOORS[door], "demo.steps")
    client = APIClient()
    if actor is not None:
        client.force_authenticate(actor)
    outcome = expected(API_DOORS[door], role, job_type)

    response, done = call_api_door(door, job_type, client, actor, owner)

    assert done == (outcome == "ok"), (response.status_code, response.content[:300])
    code = response.status_code
    if outcome == "ok":
        assert code in (200, 201), response.content
    elif outcome == "denied":
        assert code == 403 and "may not run" in response.json()["detail"], response.content
    elif outcome == "invalid":
        assert code == 400, response.content
    else:
        assert code in (401, 403, 404) and "detail" in response.json(), response.content
