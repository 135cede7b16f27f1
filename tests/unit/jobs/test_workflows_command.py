"""`manage.py workflows run|show|cancel|retry`: a graph from a JSON file, --json, --user,
and one readable line for bad input."""

from __future__ import annotations

import io
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs import runner
from jobs.models import AuditEvent, Job, Workflow

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("workflows", *args, stdout=out)
    return out.getvalue()


def node(after=(), fail=False):
    config = {"steps": 1, "delay": 0, **({"fail_at": 1, "fail_attempts": 9} if fail else {})}
    return {"job_type": "demo.steps", "config": config, "after": list(after), "max_attempts": 1}


def spec_file(tmp_path, spec) -> str:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(spec))
    return str(path)


def chain(fail_b=False) -> dict:
    return {"name": "nightly", "jobs": {"a": node(), "b": node(["a"], fail_b), "c": node(["b"])}}


def run_all() -> None:
    while (job := Job.objects.runnable().order_by("pk").first()) is not None:
        runner.run_job(job.pk)


def test_run_creates_the_workflow_from_a_file_and_prints_its_ids(tmp_path, user):
    data = json.loads(run("--json", "--user", "alice", "run", spec_file(tmp_path, chain())))
    workflow = Workflow.objects.get(pk=data["id"])
    assert data["name"] == "nightly" and workflow.created_by == user
    assert set(data["jobs"]) == {"a", "b", "c"}
    assert data["jobs"]["a"] < data["jobs"]["b"] < data["jobs"]["c"]
    assert AuditEvent.objects.filter(via="cli", action="created", target_id=str(workflow.pk))
    text = run("run", spec_file(tmp_path, chain()))
    first, *nodes = text.strip().splitlines()
    assert first.endswith(": 3 jobs") and first.startswith("workflow #")
    assert [line.split()[0] for line in nodes] == ["a", "b", "c"]


def test_run_reads_standard_input_with_a_dash(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(chain())))
    assert "3 jobs" in run("run", "-")
    assert Workflow.objects.count() == 1


def test_show_gives_status_progress_and_each_nodes_status(tmp_path):
    created = json.loads(run("--json", "run", spec_file(tmp_path, chain(fail_b=True))))
    data = json.loads(run("--json", "show", str(created["id"])))
    assert data["status"] == "running" and data["done"] == 0 and data["progress"] == 0
    run_all()
    data = json.loads(run("--json", "show", str(created["id"])))
    assert data["status"] == "failed" and data["done"] == 1 and data["total"] == 3
    assert data["progress"] == 33
    assert data["counts"] == {"completed": 1, "failed": 1, "cancelled": 1}
    assert data["jobs"]["a"]["status"] == "completed"
    assert data["jobs"]["c"] == {
        "id": created["jobs"]["c"],
        "job_type": "demo.steps",
        "status": "cancelled",
        "after": ["b"],
    }
    text = run("show", str(created["id"]))
    assert f"workflow #{created['id']} nightly: failed, 33% (1/3 jobs completed)" in text
    assert text.splitlines()[-1].split() == [
        "c",
        f"#{created['jobs']['c']}",
        "demo.steps",
        "cancelled",
        "after",
        "b",
    ]


def test_cancel_then_retry_act_on_the_whole_workflow(tmp_path):
    created = json.loads(run("--json", "run", spec_file(tmp_path, chain(fail_b=True))))
    run_all()
    assert json.loads(run("--json", "show", str(created["id"])))["status"] == "failed"
    retried = run("retry", str(created["id"]))
    assert retried.strip() == f"workflow #{created['id']}: retried 1 job (#{created['jobs']['b']})"
    statuses = dict(
        Job.objects.filter(workflow_id=created["id"]).values_list("workflow_node", "status")
    )
    assert statuses == {"a": "completed", "b": "pending", "c": "pending"}
    data = json.loads(run("--json", "cancel", str(created["id"])))
    assert data["status"] == "cancelled"
    with pytest.raises(CommandError, match="cannot cancel workflow"):
        run("cancel", str(created["id"]))


def test_another_users_workflow_is_not_found_for_them(tmp_path, user, other_user):
    created = json.loads(run("--json", "--user", "alice", "run", spec_file(tmp_path, chain())))
    with pytest.raises(CommandError, match=f"no workflow with id {created['id']}"):
        run("--user", "bob", "show", str(created["id"]))
    assert run("show", str(created["id"]))  # Jobdeck itself sees all


@pytest.mark.parametrize(
    "content, message",
    [
        ("{oops", "malformed JSON: Expecting property name enclosed in double quotes at line 1"),
        ("[]", "A workflow is a JSON object with a jobs object."),
        (json.dumps({"jobs": {"a": node(["zz"])}}), "job a: after: Unknown node"),
        (
            json.dumps({"jobs": {"a": node(["b"]), "b": node(["a"])}}),
            "jobs: The jobs form a cycle: a, b.",
        ),
        (
            json.dumps({"jobs": {"a": {"job_type": "demo.steps", "config": {"steps": 0}}}}),
            "job a: config: steps: Ensure",
        ),
    ],
)
def test_a_bad_spec_is_one_readable_line_and_creates_nothing(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CommandError) as caught:
        run("run", str(path))
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not Workflow.objects.exists() and not Job.objects.exists()


def test_a_missing_file_and_an_unknown_workflow_are_one_line(tmp_path):
    with pytest.raises(CommandError, match=r"cannot read .*nope\.json: No such file"):
        run("run", str(tmp_path / "nope.json"))
    with pytest.raises(CommandError, match="no workflow with id 99"):
        run("show", "99")
    with pytest.raises(CommandError, match="must be 0 or more"):
        run("show", "-1")
