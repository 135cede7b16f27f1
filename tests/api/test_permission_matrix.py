"""The whole permission matrix: every job endpoint, every kind of caller.

Roles: the owner, another user, staff without the all-jobs permissions, a watcher
(view_all_jobs), a manager (view_all_jobs + manage_all_jobs) and an anonymous
caller. Objects a caller may not see are 404 (never 403, which would leak their
existence); objects they may see but not act on are 403; anonymous is 401.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from tests.jobs.factories import make_job

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
