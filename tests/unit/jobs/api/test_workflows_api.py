"""/api/workflows/ and depends_on over the API: created as a whole or not at all, the
aggregated status, cancel and retry of the whole graph, and who may see and act."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from jobs import runner
from jobs.models import Job, JobDependency, JobStatus, Workflow

pytestmark = pytest.mark.django_db
S = JobStatus


def node(after=(), fail=False, **extra):
    config = {"steps": 1, "delay": 0, **({"fail_at": 1, "fail_attempts": 9} if fail else {})}
    return {"job_type": "demo.steps", "config": config, "after": list(after), **extra}


def diamond(fail_b=False, join_mode=None):
    d = node(["b", "c"], **({"on_parent_failure": join_mode} if join_mode else {}))
    return {
        "name": "diamond",
        "jobs": {"a": node(), "b": node(["a"], fail=fail_b), "c": node(["a"]), "d": d},
    }


def run_all() -> None:
    while (job := Job.objects.runnable().order_by("pk").first()) is not None:
        runner.run_job(job.pk)


def test_a_workflow_is_created_in_one_call_with_its_graph(api_client):
    response = api_client.post("/api/workflows/", diamond(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    ids = body["jobs"]
    assert set(ids) == {"a", "b", "c", "d"}
    assert ids["a"] < ids["b"] < ids["d"] and ids["a"] < ids["c"] < ids["d"]
    edges = set(JobDependency.objects.values_list("parent_id", "child_id"))
    assert edges == {
        (ids["a"], ids["b"]),
        (ids["a"], ids["c"]),
        (ids["b"], ids["d"]),
        (ids["c"], ids["d"]),
    }
    assert dict(
        Job.objects.filter(workflow_id=body["id"]).values_list("workflow_node", "waiting_on")
    ) == {
        "a": 0,
        "b": 1,
        "c": 1,
        "d": 2,
    }


def test_a_diamond_runs_in_order_and_the_status_aggregates(api_client):
    wf = api_client.post("/api/workflows/", diamond(), format="json").json()
    detail = api_client.get(f"/api/workflows/{wf['id']}/").json()
    assert (detail["status"], detail["done"], detail["total"]) == ("running", 0, 4)
    run_all()
    jobs = {j.workflow_node: j for j in Job.objects.filter(workflow_id=wf["id"])}
    assert jobs["a"].finished_at <= jobs["b"].started_at
    assert max(jobs["b"].finished_at, jobs["c"].finished_at) <= jobs["d"].started_at
    detail = api_client.get(f"/api/workflows/{wf['id']}/").json()
    assert (detail["status"], detail["done"], detail["total"]) == ("completed", 4, 4)
    assert detail["jobs"]["d"] == {"id": wf["jobs"]["d"], "status": "completed"}


def test_a_failing_node_cancels_the_join_and_retrying_the_workflow_runs_it(api_client):
    wf = api_client.post("/api/workflows/", diamond(fail_b=True), format="json").json()
    run_all()
    detail = api_client.get(f"/api/workflows/{wf['id']}/").json()
    assert detail["status"] == "failed"
    assert {n: v["status"] for n, v in detail["jobs"].items()} == {
        "a": "completed",
        "b": "failed",
        "c": "completed",
        "d": "cancelled",
    }
    assert Job.objects.get(pk=wf["jobs"]["d"]).error == f"parent #{wf['jobs']['b']} failed"
    Job.objects.filter(pk=wf["jobs"]["b"]).update(config={"steps": 1, "delay": 0})
    response = api_client.post(f"/api/workflows/{wf['id']}/retry/")
    assert response.status_code == 200 and response.json()["status"] == "running"
    run_all()
    assert api_client.get(f"/api/workflows/{wf['id']}/").json()["status"] == "completed"


def test_a_join_that_runs_anyway_runs_after_a_failure(api_client):
    wf = api_client.post("/api/workflows/", diamond(fail_b=True, join_mode="run"), format="json")
    run_all()
    assert Job.objects.get(pk=wf.json()["jobs"]["d"]).status == S.COMPLETED


def test_cancelling_a_workflow_cancels_every_job(api_client):
    wf = api_client.post("/api/workflows/", diamond(), format="json").json()
    response = api_client.post(f"/api/workflows/{wf['id']}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert set(Job.objects.values_list("status", flat=True)) == {S.CANCELLED}


@pytest.mark.parametrize(
    ("jobs", "field"),
    [
        ({"a": node(["b"]), "b": node(["a"])}, "jobs"),
        ({"a": node(["nope"])}, "a"),
        ({"a": node(["a"])}, "a"),
        ({"a": node(), "b": {"job_type": "demo.steps", "config": {"steps": "x"}}}, "b"),
        ({"a": {"job_type": "no.such.type"}}, "a"),
        ({"bad name!": node()}, "jobs"),
    ],
)
def test_a_bad_workflow_is_refused_as_a_whole_and_nothing_is_written(api_client, jobs, field):
    response = api_client.post("/api/workflows/", {"jobs": jobs}, format="json")
    assert response.status_code == 400, response.json()
    errors = response.json()["jobs"]
    assert field in errors if isinstance(errors, dict) else field == "jobs"
    assert Job.objects.count() == 0 and Workflow.objects.count() == 0


def test_a_cycle_is_named_in_the_error(api_client):
    jobs = {"a": node(), "b": node(["a", "c"]), "c": node(["b"])}
    response = api_client.post("/api/workflows/", {"jobs": jobs}, format="json")
    assert response.json() == {"jobs": ["The jobs form a cycle: b, c."]}


def test_a_node_of_a_type_the_user_may_not_run_refuses_the_workflow(api_client):
    jobs = {"a": node(), "clean": {"job_type": "maintenance.cleanup", "after": ["a"]}}
    response = api_client.post("/api/workflows/", {"jobs": jobs}, format="json")
    assert response.status_code == 403
    assert Job.objects.count() == 0


def test_others_cannot_see_or_act_on_a_workflow(api_client, other_user):
    wf = api_client.post("/api/workflows/", diamond(), format="json").json()
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get(f"/api/workflows/{wf['id']}/").status_code == 404
    assert other.post(f"/api/workflows/{wf['id']}/cancel/").status_code == 404
    assert other.get("/api/workflows/").json()["results"] == []


def test_the_workflow_list_costs_the_same_queries_for_one_or_many(api_client):
    api_client.post("/api/workflows/", diamond(), format="json")
    with CaptureQueriesContext(connection) as one:
        assert len(api_client.get("/api/workflows/").json()["results"]) == 1
    for _ in range(5):
        api_client.post("/api/workflows/", diamond(), format="json")
    with CaptureQueriesContext(connection) as six:
        assert len(api_client.get("/api/workflows/").json()["results"]) == 6
    assert len(six) == len(one)


def test_depends_on_over_the_api_and_its_errors(api_client, other_user):
    parent = api_client.post("/api/jobs/", node(), format="json").json()
    child = api_client.post(
        "/api/jobs/",
        {
            "job_type": "demo.steps",
            "config": {"steps": 1, "delay": 0},
            "depends_on": [parent["id"]],
        },
        format="json",
    )
    assert child.status_code == 201, child.json()
    assert child.json()["depends_on"] == [parent["id"]] and child.json()["waiting_on"] == 1
    assert api_client.get(f"/api/jobs/{parent['id']}/").json()["dependents"] == [child.json()["id"]]
    missing = api_client.post("/api/jobs/", {**node(), "depends_on": [999999]}, format="json")
    assert missing.status_code == 400
    assert missing.json() == {"depends_on": ["There is no job #999999 that you may see."]}
    bulk = api_client.post(
        "/api/jobs/bulk/",
        {"jobs": [{**node(), "depends_on": [parent["id"]]}]},
        format="json",
    )
    assert bulk.status_code == 201, bulk.json()
    assert Job.objects.get(pk=bulk.json()["ids"][0]).waiting_on == 1


def test_a_workflow_s_nodes_carry_their_tags(api_client):
    jobs = {"a": node(tags=["etl"]), "b": node(["a"], tags=["etl", "eu"]), "c": node(["a"])}
    ids = api_client.post("/api/workflows/", {"jobs": jobs}, format="json").json()["jobs"]
    tagged = dict(Job.objects.filter(workflow__isnull=False).values_list("pk", "tags"))
    assert tagged == {ids["a"]: ["etl"], ids["b"]: ["etl", "eu"], ids["c"]: []}
    found = api_client.get("/api/jobs/?tag=eu").json()["results"]
    assert [j["id"] for j in found] == [ids["b"]]
