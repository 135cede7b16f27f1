"""Schedules that fire a workflow: validated when saved (service, API, admin), fired
as one graph, overlap while one of its workflows runs, last_workflow, run now, secrets."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from jobs import runner
from jobs.models import Job, JobDependency, JobStatus, Workflow
from jobs.registry import MASK
from scheduler import exchange as schedule_exchange
from scheduler import selectors, services
from scheduler.models import Occurrence, Schedule
from tests.support.search_jobtypes import ACCOUNT, account_type

pytestmark = pytest.mark.django_db


def node(after=(), fail=False, **extra):
    config = {"steps": 1, "delay": 0, **({"fail_at": 1, "fail_attempts": 9} if fail else {})}
    return {"job_type": "demo.steps", "config": config, "after": list(after), **extra}


def chain(fail_b=False) -> dict:
    return {"name": "nightly", "jobs": {"a": node(), "b": node(["a"], fail_b, max_attempts=1)}}


def workflow_schedule(make_schedule, spec=None, **fields) -> Schedule:
    return make_schedule(job_type="", config={}, workflow=spec or chain(), **fields)


def run_all() -> None:
    while (job := Job.objects.runnable().order_by("pk").first()) is not None:
        runner.run_job(job.pk)


def reload(schedule: Schedule) -> Schedule:
    return selectors.schedule_list().get(pk=schedule.pk)


# --- firing ------------------------------------------------------------------------------


def test_a_due_workflow_schedule_fires_the_whole_graph_once(make_schedule, user):
    schedule = workflow_schedule(make_schedule)
    assert schedule.job_type == "" and schedule.config == {} and schedule.release is None
    fire_at = schedule.next_run_at

    counts = services.fire_due_schedules(now=fire_at + timedelta(seconds=20))

    assert counts["fired"] == 1
    workflow = Workflow.objects.get()
    assert workflow.schedule == schedule and workflow.name == "nightly"
    assert workflow.created_by == user
    jobs = {j.workflow_node: j for j in Job.objects.filter(workflow=workflow)}
    assert set(jobs) == {"a", "b"}
    assert all(j.schedule_id == schedule.pk and j.created_by == user for j in jobs.values())
    assert JobDependency.objects.filter(parent=jobs["a"], child=jobs["b"]).exists()
    assert jobs["b"].waiting_on == 1
    occurrence = Occurrence.objects.get()
    assert occurrence.workflow == workflow and occurrence.job is None
    schedule = reload(schedule)
    assert schedule.last_workflow == workflow and schedule.last_job is None
    assert schedule.last_workflow_status == "running"
    assert schedule.next_run_at == fire_at + timedelta(minutes=1)
    assert services.fire_due_schedules(now=fire_at + timedelta(seconds=40))["fired"] == 0

    run_all()
    assert reload(schedule).last_workflow_status == JobStatus.COMPLETED


def test_last_workflow_status_follows_the_workflows_jobs(make_schedule):
    schedule = workflow_schedule(make_schedule, chain(fail_b=True))
    services.fire_due_schedules(now=schedule.next_run_at)
    run_all()
    assert reload(schedule).last_workflow_status == JobStatus.FAILED


def test_overlap_skip_waits_while_a_workflow_it_fired_still_runs(make_schedule):
    schedule = workflow_schedule(make_schedule)
    first = schedule.next_run_at
    services.fire_due_schedules(now=first)
    workflow = Workflow.objects.get()
    # a completed, b still pending: the workflow is running.
    runner.run_job(Job.objects.get(workflow=workflow, workflow_node="a").pk)
    b = Job.objects.get(workflow=workflow, workflow_node="b")
    Job.objects.filter(pk=b.pk).update(status=JobStatus.RUNNING)

    counts = services.fire_due_schedules(now=first + timedelta(minutes=1))

    assert counts["skipped"] == 1 and Workflow.objects.count() == 1
    skipped = Occurrence.objects.get(fire_at=first + timedelta(minutes=1))
    assert skipped.skipped_reason == f"overlap: workflow #{workflow.pk} still running (job #{b.pk})"

    Job.objects.filter(pk=b.pk).update(status=JobStatus.COMPLETED)
    assert services.fire_due_schedules(now=first + timedelta(minutes=2))["fired"] == 1
    assert Workflow.objects.count() == 2


def test_overlap_queue_fires_another_workflow_while_one_runs(make_schedule):
    schedule = workflow_schedule(make_schedule, overlap_policy="queue")
    services.fire_due_schedules(now=schedule.next_run_at)
    services.fire_due_schedules(now=schedule.next_run_at + timedelta(minutes=1))
    assert Workflow.objects.filter(schedule=schedule).count() == 2


def test_a_spec_that_no_longer_validates_is_recorded_as_an_error_and_moves_on(
    make_schedule, monkeypatch
):
    schedule = workflow_schedule(make_schedule)
    Schedule.objects.filter(pk=schedule.pk).update(
        workflow={"jobs": {"a": {"job_type": "gone.type"}}}
    )
    counts = services.fire_due_schedules(now=schedule.next_run_at)
    assert counts["errors"] == 1 and not Workflow.objects.exists() and not Job.objects.exists()
    reason = Occurrence.objects.get().skipped_reason
    assert reason.startswith("error: jobs: job a: job_type: Unknown job type")
    assert reload(schedule).next_run_at > schedule.next_run_at


def test_run_now_creates_the_workflow_without_moving_next_run(make_schedule, other_user):
    schedule = workflow_schedule(make_schedule)
    made = services.schedule_run_now(schedule=schedule, user=other_user, via="api")
    assert isinstance(made, Workflow) and made.created_by == other_user
    assert made.schedule == schedule and made.jobs.count() == 2
    schedule = reload(schedule)
    assert schedule.last_workflow == made and schedule.next_run_at == schedule.next_run_at
    assert list(selectors.schedule_history(schedule=schedule).values_list("workflow", flat=True))


def test_switching_back_to_a_job_fires_jobs_and_clears_last_workflow(make_schedule):
    schedule = workflow_schedule(make_schedule)
    services.schedule_run_now(schedule=schedule)
    schedule = services.schedule_update(
        schedule=schedule, workflow=None, job_type="demo.steps", config={"steps": 1}
    )
    job = services.schedule_run_now(schedule=schedule)
    assert isinstance(job, Job) and job.workflow_id is None
    schedule = reload(schedule)
    assert schedule.last_job == job and schedule.last_workflow is None
    assert schedule.last_workflow_status is None


# --- validation when saved ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"jobs": {}}, "jobs: jobs must be an object of at least one named job."),
        ([1], "jobs: A workflow is a JSON object with a jobs object."),
        ({"jobs": {"a": node(["b"]), "b": node(["a"])}}, "jobs: The jobs form a cycle: a, b."),
        ({"jobs": {"a": node(["zz"])}}, "a: after: Unknown node(s): zz."),
        (
            {"jobs": {"a": {"job_type": "demo.steps", "config": {"steps": 0}}}},
            "a: config: steps: Ensure this value is greater than or equal to 1.",
        ),
        ({"jobs": {"a": {"job_type": "nope"}}}, "a: job_type: Unknown job type: 'nope'."),
        ({"jobs": {"a": {**node(), "release": 999}}}, "a: release: There is no release 999"),
    ],
)
def test_a_bad_spec_is_refused_at_save_naming_the_workflow(make_schedule, spec, message):
    with pytest.raises(ValidationError) as caught:
        workflow_schedule(make_schedule, spec)
    assert message in caught.value.message_dict["workflow"][0]
    assert not Schedule.objects.exists()


def test_a_workflow_schedule_takes_no_template_dry_run_or_timeout(make_schedule):
    with pytest.raises(ValidationError) as caught:
        workflow_schedule(make_schedule, dry_run=True, timeout_seconds=30)
    assert set(caught.value.message_dict) == {"dry_run", "timeout_seconds"}


def test_its_job_fields_are_emptied_the_nodes_name_their_own(make_schedule):
    schedule = make_schedule(workflow=chain())  # job_type and config given too
    assert (schedule.job_type, schedule.config) == ("", {})


def test_the_owner_needs_the_right_to_run_each_node_type(make_schedule, user):
    spec = {"jobs": {"clean": {"job_type": "maintenance.cleanup", "config": {}}}}
    with pytest.raises(PermissionDenied, match=r"maintenance\.cleanup"):
        workflow_schedule(make_schedule, spec)
    assert not Schedule.objects.exists()
    schedule = workflow_schedule(make_schedule, spec, user=None)  # Jobdeck itself
    # Editing something else keeps it; changing the workflow checks again.
    services.schedule_update(schedule=schedule, user=user, enabled=False)
    with pytest.raises(PermissionDenied):
        services.schedule_update(
            schedule=schedule, user=user, workflow={"jobs": {**spec["jobs"], "x": node()}}
        )


def test_secrets_in_a_node_are_masked_on_the_way_out_and_kept_when_sent_back(make_schedule):
    with account_type():
        spec = {"jobs": {"acct": {"job_type": ACCOUNT, "config": {"token": "s3cret"}}}}
        schedule = workflow_schedule(make_schedule, spec)
        shown = services.redacted_workflow(schedule.workflow)
        assert shown["jobs"]["acct"]["config"]["token"] == MASK
        schedule = services.schedule_update(schedule=schedule, workflow=shown)
        assert schedule.workflow["jobs"]["acct"]["config"]["token"] == "s3cret"
        entry = schedule_exchange.ScheduleKind().export_entry(schedule, reveal=False)
        assert entry["workflow"]["jobs"]["acct"]["config"]["token"] == MASK
        assert "job_type" not in entry


# --- API ---------------------------------------------------------------------------------


@pytest.fixture
def op_client(django_user_model) -> APIClient:
    u = django_user_model.objects.create_user("otto", password="otto-pass-123")
    u.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="scheduler",
            codename__in=["add_schedule", "change_schedule"],
        )
    )
    client = APIClient()
    client.force_authenticate(u)
    return client


BODY = {"name": "nightly graph", "kind": "daily", "time": "02:30", "workflow": chain()}


def test_the_api_creates_a_workflow_schedule_and_shows_it(op_client):
    response = op_client.post("/api/schedules/", BODY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["workflow"] == chain() and body["job_type"] == ""
    assert body["last_workflow"] is None and body["last_workflow_status"] is None

    ran = op_client.post(f"/api/schedules/{body['id']}/run/")
    assert ran.status_code == 201, ran.json()
    assert set(ran.json()["jobs"]) == {"a", "b"} and ran.json()["status"] == "running"
    again = op_client.get(f"/api/schedules/{body['id']}/").json()
    assert again["last_workflow"] == ran.json()["id"]
    assert again["last_workflow_status"] == "running" and again["last_job"] is None


def test_the_api_refuses_a_bad_spec_with_a_400_naming_the_workflow(op_client):
    bad = {**BODY, "workflow": {"jobs": {"a": node(["missing"])}}}
    response = op_client.post("/api/schedules/", bad, format="json")
    assert response.status_code == 400
    assert "a: after: Unknown node(s): missing." in response.json()["workflow"][0]
    assert not Schedule.objects.exists()


# --- admin -------------------------------------------------------------------------------


@pytest.fixture
def admin_client_(django_user_model) -> Client:
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1")
    client = Client()
    client.force_login(root)
    return client


def form_data(workflow: str) -> dict:
    return {
        "name": "graph",
        "job_type": "",
        "config": "{}",
        "workflow": workflow,
        "kind": "interval",
        "interval_minutes": "5",
        "cron": "",
        "timezone": "UTC",
        "enabled": "on",
        "misfire_policy": "skip",
        "overlap_policy": "skip",
    }


def test_the_admin_form_saves_a_workflow_through_the_service(admin_client_):

    response = admin_client_.post(
        reverse("admin:scheduler_schedule_add"), form_data(json.dumps(chain()))
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = Schedule.objects.get()
    assert schedule.workflow == chain()
    page = admin_client_.get(reverse("admin:scheduler_schedule_change", args=[schedule.pk]))
    assert page.status_code == 200 and "nightly" in page.content.decode()
    assert json.loads(page.context["adminform"].form["workflow"].value()) == chain()

    ran = admin_client_.post(
        reverse("admin:scheduler_schedule_run_now", args=[schedule.pk]), follow=True
    )
    workflow = Workflow.objects.get()
    shown = [str(m) for m in ran.context["messages"]]
    assert shown == [f"graph: workflow #{workflow.pk} created now."]
    listing = admin_client_.get(reverse("admin:scheduler_schedule_changelist")).content.decode()
    assert "jd-running" in listing


def test_a_job_schedules_workflow_box_is_empty_not_null(admin_client_, make_schedule):
    schedule = make_schedule()
    page = admin_client_.get(reverse("admin:scheduler_schedule_change", args=[schedule.pk]))
    html = page.content.decode()
    assert 'name="workflow"' in html and ">null</textarea>" not in html


def test_a_workflow_change_is_audited_with_its_secrets_masked(make_schedule):
    from jobs.models import AuditEvent

    with account_type():
        spec = {"jobs": {"acct": {"job_type": ACCOUNT, "config": {"token": "s3cret"}}}}
        schedule = workflow_schedule(make_schedule, spec)
        new = {"jobs": {"acct": {"job_type": ACCOUNT, "config": {"token": "n3w"}}}}
        services.schedule_update(schedule=schedule, workflow=new)
    event = AuditEvent.objects.filter(action="changed").get()
    assert "s3cret" not in str(event.detail) and "n3w" not in str(event.detail)
    assert event.detail["changes"]["workflow"]["new"]["jobs"]["acct"]["config"]["token"] == MASK


def test_the_admin_form_shows_a_bad_spec_on_the_workflow_field(admin_client_):

    spec = {"jobs": {"a": node(["b"]), "b": node(["a"])}}
    response = admin_client_.post(
        reverse("admin:scheduler_schedule_add"), form_data(json.dumps(spec))
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "The jobs form a cycle: a, b." in errors["workflow"][0]
    assert not Schedule.objects.exists()


# --- export and import, the command --------------------------------------------------------


def test_an_exported_workflow_schedule_imports_again_but_never_with_a_masked_secret(
    make_schedule, user
):
    kind = schedule_exchange.ScheduleKind()
    entry = kind.export_entry(workflow_schedule(make_schedule), reveal=False)
    Schedule.objects.all().delete()
    imported = kind.apply(None, entry, user=user, via="import")
    assert imported.workflow == chain() and imported.job_type == ""
    with account_type():
        masked = {"jobs": {"acct": {"job_type": ACCOUNT, "config": {"token": MASK}}}}
        with pytest.raises(ValidationError) as caught:
            kind.apply(None, {**entry, "name": "other", "workflow": masked}, user=user, via="x")
    assert "token: the secret is masked" in caught.value.message_dict["workflow"][0]


def test_schedules_run_creates_the_workflow_and_list_shows_its_status(make_schedule):
    from io import StringIO

    from django.core.management import call_command

    schedule = workflow_schedule(make_schedule)
    out = StringIO()
    call_command("schedules", "--json", "run", str(schedule.pk), stdout=out)
    data = json.loads(out.getvalue())
    assert data["workflow"] == Workflow.objects.get().pk and set(data["jobs"]) == {"a", "b"}
    out = StringIO()
    call_command("schedules", "list", stdout=out)
    assert "workflow running" in out.getvalue()
