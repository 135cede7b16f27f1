"""Job templates: saved jobs run in one call, used by schedules, permissions through services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.test import APIClient

from jobs import jobtemplates
from jobs.models import AuditEvent, Job, JobTemplate
from scheduler import services as schedule_services
from scheduler.models import Schedule
from tests.support.search_jobtypes import ACCOUNT, account_type

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def account():
    with account_type() as jt:
        yield jt


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def editor(django_user_model):
    u = django_user_model.objects.create_user("edith", password="edith-pass-1")
    u.user_permissions.add(*Permission.objects.filter(codename__endswith="_jobtemplate"))
    return u


@pytest.fixture
def template(editor) -> JobTemplate:
    return jobtemplates.template_create(
        name="billing run",
        job_type=ACCOUNT,
        config={"account_id": 42, "token": "s3cret"},
        priority=5,
        tags=["billing"],
        user=editor,
    )


def test_running_a_template_makes_its_job_owned_by_whoever_runs_it(template, user):
    job = jobtemplates.template_run(template=template, user=user, via="api")

    assert (job.job_type, job.config["account_id"], job.priority, job.tags) == (
        ACCOUNT,
        42,
        5,
        ["billing"],
    )
    assert job.created_by == user
    assert AuditEvent.objects.filter(job=job, action="ran", detail__template=template.pk).exists()


def test_a_template_is_validated_like_a_job(editor):
    with pytest.raises(ValidationError) as exc:
        jobtemplates.template_create(
            name="", job_type=ACCOUNT, config={"region": 5.5j}, queue="nope", tags=["a b"]
        )

    assert set(exc.value.message_dict) >= {"name", "queue", "tags"}
    assert not JobTemplate.objects.exists()


def test_a_template_of_a_type_the_user_may_not_run_is_refused(user):
    with pytest.raises(PermissionDenied):
        jobtemplates.template_create(
            name="cleanup", job_type="maintenance.cleanup", config={}, user=user
        )


def test_running_needs_the_right_to_run_the_job_type(user):
    template = jobtemplates.template_create(
        name="cleanup", job_type="maintenance.cleanup", config={"older_than_days": 30}
    )

    response = client_for(user).post(f"/api/templates/{template.pk}/run/")

    assert response.status_code == 403
    assert "maintenance.cleanup" in response.json()["detail"]
    assert not Job.objects.exists()


def test_the_api_creates_lists_masks_secrets_and_runs(editor, user):
    api = client_for(editor)
    created = api.post(
        "/api/templates/",
        {"name": "t1", "job_type": ACCOUNT, "config": {"account_id": 1, "token": "abc"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["config"]["token"] == "********"

    listed = client_for(user).get("/api/templates/").json()["results"]
    assert [t["name"] for t in listed] == ["t1"]

    ran = client_for(user).post(f"/api/templates/{body['id']}/run/")
    assert ran.status_code == 201, ran.content
    job = Job.objects.get(pk=ran.json()["id"])
    assert job.config["token"] == "abc" and job.created_by == user
    assert ran.json()["config"]["token"] == "********"


def test_writes_need_the_model_permissions(user, template):
    api = client_for(user)

    assert (
        api.post("/api/templates/", {"name": "x", "job_type": ACCOUNT}, format="json").status_code
        == 403
    )
    assert (
        api.patch(f"/api/templates/{template.pk}/", {"priority": 1}, format="json").status_code
        == 403
    )
    assert api.delete(f"/api/templates/{template.pk}/").status_code == 403


def test_patching_keeps_a_masked_secret_and_audits_the_change(editor, template):
    response = client_for(editor).patch(
        f"/api/templates/{template.pk}/",
        {"config": {"account_id": 43, "token": "********"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    template.refresh_from_db()
    assert template.config["token"] == "s3cret" and template.config["account_id"] == 43
    event = AuditEvent.objects.filter(action="changed", target_type="jobs.jobtemplate").get()
    assert event.detail["changes"]["config"]["new"]["token"] == "********"


def test_a_schedule_fires_its_template_as_the_template_reads_then(template, editor):
    schedule = schedule_services.schedule_create(
        name="every 5", template=template, kind="interval", interval_minutes=5
    )
    assert (schedule.job_type, schedule.config["account_id"]) == (ACCOUNT, 42)

    jobtemplates.template_update(template=template, config={"account_id": 7}, user=editor)
    schedule.refresh_from_db()
    assert schedule.config["account_id"] == 7  # the copy follows

    job = schedule_services.schedule_run_now(schedule=schedule)
    assert (job.config["account_id"], job.priority, job.tags, job.schedule_id) == (
        7,
        5,
        ["billing"],
        schedule.pk,
    )


def test_a_template_in_use_cannot_be_deleted(template, editor):
    schedule_services.schedule_create(name="nightly", template=template, kind="daily", time="02:00")

    response = client_for(editor).delete(f"/api/templates/{template.pk}/")

    assert response.status_code == 400
    assert "nightly" in response.json()["template"][0]
    assert JobTemplate.objects.filter(pk=template.pk).exists()
    Schedule.objects.all().delete()
    assert client_for(editor).delete(f"/api/templates/{template.pk}/").status_code == 204


def test_the_schedules_api_takes_a_template(template, django_user_model):
    root = django_user_model.objects.create_superuser("root", "r@example.com", "root-pass-1")
    response = client_for(root).post(
        "/api/schedules/",
        {"name": "s", "template": template.pk, "kind": "interval", "interval_minutes": 10},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["template"] == template.pk
    assert response.json()["job_type"] == ACCOUNT
    assert response.json()["config"]["token"] == "********"
