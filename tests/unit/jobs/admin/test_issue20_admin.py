"""The admin's job templates, export and import, search terms, tags and statistics."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs import jobtemplates, services
from jobs.models import Job, JobStatus, JobTemplate
from scheduler import services as schedule_services
from scheduler.models import Schedule
from tests.support.admin_helpers import client_for, grant, texts
from tests.support.search_jobtypes import ACCOUNT, account_type

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def account():
    with account_type() as jt:
        yield jt


@pytest.fixture
def template(superuser) -> JobTemplate:
    return jobtemplates.template_create(
        name="billing", job_type=ACCOUNT, config={"account_id": 3, "token": "t0ps3cret"}
    )


def test_every_new_admin_url_answers_a_get(superuser, template):
    client = client_for(superuser)
    urls = [
        "/admin/jobs/jobtemplate/",
        "/admin/jobs/jobtemplate/add/",
        f"/admin/jobs/jobtemplate/{template.pk}/change/",
        "/admin/jobs/jobtemplate/import/",
        "/admin/scheduler/schedule/import/",
        "/admin/jobs/job/stats/",
        "/admin/jobs/job/stats/?by=queues&window=7d",
        "/admin/jobs/job/stats/?by=schedules&window=30d",
        "/admin/jobs/job/stats/?by=nope&window=1y",
        "/admin/jobs/job/?q=account_id%3A3",
        "/admin/jobs/job/?q=tag%3Ax+log%3A%22some+text%22",
    ]

    assert {u: client.get(u).status_code for u in urls} == dict.fromkeys(urls, 200)


def test_one_click_runs_a_template_as_whoever_clicked(template, staff_user):
    user = grant(staff_user, "view_jobtemplate", "view_job")
    response = client_for(user).post(f"/admin/jobs/jobtemplate/{template.pk}/run/", follow=True)

    job = Job.objects.get()
    assert (job.created_by, job.config["account_id"]) == (user, 3)
    assert f"Job #{job.pk} created from template 'billing'." in texts(response)


def test_running_a_template_of_a_type_one_may_not_run_says_so(staff_user):
    template = jobtemplates.template_create(
        name="clean", job_type="maintenance.cleanup", config={"older_than_days": 3}
    )
    user = grant(staff_user, "view_jobtemplate")

    response = client_for(user).post(f"/admin/jobs/jobtemplate/{template.pk}/run/", follow=True)

    assert not Job.objects.exists()
    assert any("you may not run 'maintenance.cleanup'" in t for t in texts(response))


def test_the_run_action_and_the_change_form_never_show_the_secret(superuser, template):
    client = client_for(superuser)
    page = client.get(f"/admin/jobs/jobtemplate/{template.pk}/change/").content.decode()
    assert "t0ps3cret" not in page and "********" in page

    response = client.post(
        "/admin/jobs/jobtemplate/",
        {"action": "run_templates", "_selected_action": [template.pk]},
        follow=True,
    )
    assert Job.objects.count() == 1
    assert texts(response)[0].startswith("1 job created")


def test_a_template_used_by_a_schedule_is_not_deleted(superuser, template):
    schedule_services.schedule_create(name="s", template=template, kind="daily", time="01:00")

    response = client_for(superuser).post(
        f"/admin/jobs/jobtemplate/{template.pk}/delete/", {"post": "yes"}, follow=True
    )

    assert JobTemplate.objects.filter(pk=template.pk).exists()
    assert any("used by schedules 's'" in t for t in texts(response))


def test_the_export_action_downloads_masked_json(superuser, template):
    response = client_for(superuser).post(
        "/admin/jobs/jobtemplate/",
        {"action": "export_json", "_selected_action": [template.pk]},
    )

    assert response["Content-Disposition"] == 'attachment; filename="jobdeck-templates.json"'
    doc = json.loads(response.content)
    assert doc["templates"][0]["config"]["token"] == "********"
    assert "schedules" not in doc


def test_the_export_with_secrets_is_offered_to_superusers_only(staff_user, superuser, template):
    user = grant(staff_user, "view_jobtemplate")
    actions = client_for(user).get("/admin/jobs/jobtemplate/").context["action_form"]
    assert "export_with_secrets" not in dict(actions.fields["action"].choices)
    choices = client_for(superuser).get("/admin/jobs/jobtemplate/").context["action_form"]
    assert "export_with_secrets" in dict(choices.fields["action"].choices)


def test_the_import_page_shows_the_diff_then_imports_on_confirmation(superuser):
    doc = {
        "schedules": [
            {"name": "five", "job_type": "demo.steps", "config": {"steps": 1},
             "kind": "interval", "interval_minutes": 5}
        ]
    }  # fmt: skip
    client = client_for(superuser)
    upload = SimpleUploadedFile("export.json", json.dumps(doc).encode())

    preview = client.post("/admin/scheduler/schedule/import/", {"file": upload})

    assert "+ schedules &#x27;five&#x27;: create" in preview.content.decode()
    assert not Schedule.objects.exists()
    done = client.post(
        "/admin/scheduler/schedule/import/",
        {"confirm": "Import", "document": preview.context["document"]},
        follow=True,
    )
    assert Schedule.objects.get().interval_minutes == 5
    assert "Imported: 1 created, 0 updated, 0 unchanged." in texts(done)


def test_a_bad_import_file_lists_its_problems_and_changes_nothing(superuser):
    upload = SimpleUploadedFile(
        "bad.yaml", b"schedules:\n  - name: x\n    kind: cron\n    cron: nope\n"
    )

    response = client_for(superuser).post("/admin/scheduler/schedule/import/", {"file": upload})

    assert any("schedules[0] 'x': cron:" in line for line in response.context["refused"])
    assert not Schedule.objects.exists()


def test_the_job_search_finds_config_values_tags_and_log_text(superuser):
    client = client_for(superuser)
    number = services.job_create(job_type=ACCOUNT, config={"account_id": 42}, tags=["nightly"])
    text = services.job_create(job_type=ACCOUNT, config={"account_id": "42"})
    services.job_log(job_id=text.pk, message="Disk full")

    def found(q: str) -> list[int]:
        response = client.get("/admin/jobs/job/", {"q": q})
        return [j.pk for j in response.context["cl"].result_list]

    assert found("account_id:42") == [number.pk]
    assert found('account_id:"42"') == [text.pk]
    assert found("tag:nightly") == [number.pk]
    assert found('log:"disk full"') == [text.pk]
    assert found("test.account account_id:42") == [number.pk]
    assert found("log:ab") == []


def test_the_run_form_sets_tags(superuser):
    response = client_for(superuser).post(
        "/admin/jobs/job/run/",
        {"job_type": "demo.steps", "steps": 1, "delay": 0, "priority": 0,
         "job_tags": "nightly, billing", "_run": "1"},
    )  # fmt: skip

    assert response.status_code == 302
    assert Job.objects.get().tags == ["nightly", "billing"]


def test_the_stats_page_draws_a_row_per_job_type(superuser, settings):
    settings.JOBDECK_STATS_CACHE_SECONDS = 0
    job = services.job_create(job_type=ACCOUNT, config={}, user=superuser)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    from django.utils import timezone

    Job.objects.filter(pk=job.pk).update(started_at=timezone.now(), finished_at=timezone.now())

    response = client_for(superuser).get("/admin/jobs/job/stats/")

    assert [r["key"] for r in response.context["rows"]] == [ACCOUNT]
    assert "100.0 %" in response.content.decode()
