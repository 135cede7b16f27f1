"""The job page's endpoints for every kind of caller: a job one may not see is 404
(or, for the change page, the admin's "does not exist" redirect), one may see but
not manage is refused with a message and no change, and anonymous callers go to the login page."""

from __future__ import annotations

import pytest
from django.test import Client

from jobs.models import Job, JobStatus
from tests.admin.helpers import client_for, grant

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
