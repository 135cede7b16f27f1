"""The "Run a job" page: a form generated from the job type's config fields."""

from __future__ import annotations

import pytest

from jobs.models import AuditEvent, Job, JobStatus
from tests.support.admin_helpers import client_for, grant, texts

pytestmark = pytest.mark.django_db

URL = "/admin/jobs/job/run/"


def test_the_page_offers_only_the_job_types_the_user_may_create(viewer):
    response = client_for(viewer).get(URL)

    choices = dict(response.context["type_form"].fields["job_type"].choices)
    assert response.status_code == 200
    assert "demo.steps" in choices
    # maintenance.cleanup needs jobs.cleanup_jobs; tasks.call is Jobdeck's own.
    assert "maintenance.cleanup" not in choices and "tasks.call" not in choices
    choices = dict(
        client_for(grant(viewer, "cleanup_jobs"))
        .get(URL)
        .context["type_form"]
        .fields["job_type"]
        .choices
    )
    assert "maintenance.cleanup" in choices and "tasks.call" not in choices


def test_choosing_a_type_shows_a_form_generated_from_its_config_fields(viewer):
    response = client_for(viewer).get(URL, {"job_type": "demo.steps"})

    form = response.context["config_form"]
    assert list(form.fields) == [
        *("steps", "delay", "fail_at", "fail_attempts", "priority", "timeout_seconds"),
        *("run_queue", "run_unique_key", "job_tags"),
        *("run_depends_on", "run_on_parent_failure"),
    ]
    assert form.fields["steps"].required and form.fields["steps"].max_value == 1000
    assert form.fields["delay"].initial == 1.0
    assert not form.fields["fail_at"].required
    html = response.content.decode()
    assert 'name="steps"' in html and "Number of tasks." in html


def test_boolean_fields_become_checkboxes(viewer):
    response = client_for(grant(viewer, "cleanup_jobs")).get(
        URL, {"job_type": "maintenance.cleanup"}
    )

    html = response.content.decode()
    assert 'type="checkbox" name="dry_run"' in html


def test_analyse_shows_the_analysis_and_creates_nothing(viewer):
    data = {"job_type": "demo.steps", "steps": 3, "delay": 0.5, "fail_at": 2, "_analyse": "1"}
    data |= {"fail_attempts": 1, "priority": 0}

    response = client_for(viewer).post(URL, data)

    assert response.status_code == 200
    assert response.context["analysis"]["estimated_seconds"] == 1.5
    html = response.content.decode()
    assert "step 2 is set to fail" in html
    assert "Confirm and run" in html
    assert not Job.objects.exists()


def test_run_creates_a_pending_job_and_opens_its_page(viewer):
    data = {"job_type": "demo.steps", "steps": 2, "delay": 0, "fail_attempts": 1}
    data |= {"priority": 5, "_run": "1"}

    response = client_for(viewer).post(URL, data, follow=True)

    job = Job.objects.get()
    assert response.redirect_chain[-1][0] == f"/admin/jobs/job/{job.pk}/change/"
    assert (job.status, job.created_by, job.priority) == (JobStatus.PENDING, viewer, 5)
    assert job.config == {"steps": 2, "delay": 0.0, "fail_at": None, "fail_attempts": 1}
    assert job.tasks.count() == 2
    assert AuditEvent.objects.filter(job=job, action="created", via="admin").exists()
    assert f"Job #{job.pk} (demo.steps) created and queued." in texts(response)


def test_run_with_a_timeout_creates_the_job_with_it_and_its_page_shows_it(viewer):
    data = {"job_type": "demo.steps", "steps": 1, "delay": 0, "fail_attempts": 1}
    data |= {"priority": 0, "timeout_seconds": 45, "_run": "1"}

    response = client_for(viewer).post(URL, data, follow=True)

    job = Job.objects.get()
    assert job.timeout_seconds == 45
    html = response.content.decode()
    field = html[html.index("fieldBox field-timeout_seconds") :]
    assert "Timeout seconds" in field[:400] and ">45<" in field[:600]


@pytest.mark.parametrize("bad", ["0", "86401", "soon"])
def test_run_refuses_a_bad_timeout_on_its_field(viewer, bad):
    data = {"job_type": "demo.steps", "steps": 1, "delay": 0, "fail_attempts": 1}
    data |= {"priority": 0, "timeout_seconds": bad, "_run": "1"}

    response = client_for(viewer).post(URL, data)

    assert set(response.context["config_form"].errors) == {"timeout_seconds"}
    assert not Job.objects.exists()


def test_an_invalid_config_shows_form_errors_and_creates_nothing(viewer):
    data = {"job_type": "demo.steps", "steps": 0, "delay": -1, "fail_attempts": 1}
    data |= {"priority": 0, "_run": "1"}

    response = client_for(viewer).post(URL, data)

    assert response.status_code == 200
    form = response.context["config_form"]
    assert set(form.errors) == {"steps", "delay"}
    assert "Nothing was created." in response.content.decode()
    assert not Job.objects.exists()


def test_a_cross_field_error_from_the_serializer_lands_on_its_field(viewer):
    data = {"job_type": "demo.steps", "steps": 2, "delay": 0, "fail_at": 5}
    data |= {"fail_attempts": 1, "priority": 0, "_run": "1"}

    response = client_for(viewer).post(URL, data)

    assert response.context["config_form"].errors["fail_at"] == ["Must not exceed steps."]
    assert not Job.objects.exists()


def test_an_unknown_job_type_is_a_form_error(viewer):
    response = client_for(viewer).post(URL, {"job_type": "os.system", "_run": "1"})

    assert response.status_code == 200
    assert "job_type" in response.context["type_form"].errors
    assert not Job.objects.exists()


def test_the_page_needs_the_jobs_admin(staff_user):
    from tests.support.admin_helpers import client_for as login

    response = login(staff_user).get(URL)

    assert response.status_code == 403


def test_a_unique_key_held_by_a_pending_job_opens_that_job_with_a_warning(viewer):
    data = {"job_type": "demo.steps", "steps": 1, "delay": 0, "fail_attempts": 1}
    data |= {"priority": 0, "run_queue": "default", "run_unique_key": "nightly", "_run": "1"}
    client_for(viewer).post(URL, data)
    again = client_for(viewer).post(URL, data, follow=True)
    job = Job.objects.get()
    assert again.redirect_chain[-1][0] == f"/admin/jobs/job/{job.pk}/change/"
    assert (
        f"Job #{job.pk} (demo.steps) is already pending with unique key 'nightly': "
        "nothing new was created."
    ) in texts(again)
