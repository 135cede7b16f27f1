"""`manage.py jobs …`: each action, --json, and one readable line for bad input."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs import runner, services
from jobs.models import Job, JobStatus
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db

STEPS = json.dumps({"steps": 1, "delay": 0})


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_list_filters_by_status_type_and_owner(user):
    mine = make_job(JobStatus.FAILED, user=user)
    make_job(JobStatus.PENDING)
    rows = json.loads(run("--json", "list", "--status", "failed,cancelled", "--owner", "alice"))
    assert [r["id"] for r in rows] == [mine.pk]
    assert rows[0]["created_by"] == "alice"
    assert "demo.steps" in run("list", "--type", "demo.steps")


def test_list_refuses_an_unknown_status():
    with pytest.raises(CommandError, match="unknown status bogus"):
        run("list", "--status", "bogus")


def test_status_shows_progress_tasks_and_the_log_tail():
    job = services.job_create(job_type="demo.steps", config={"steps": 2, "delay": 0})
    runner.run_job(job.pk)
    text = run("status", str(job.pk), "--logs", "--tail", "1")
    assert f"job #{job.pk} demo.steps: completed, 100% (2/2 tasks)" in text
    assert "step 2" in text and text.strip().endswith("step 2 done")
    data = json.loads(run("--json", "status", str(job.pk)))
    assert data["status"] == "completed" and len(data["tasks"]) == 2


def test_logs_prints_the_tail():
    job = make_job()
    for i in range(5):
        services.job_log(job_id=job.pk, message=f"m{i}")
    assert run("logs", str(job.pk), "--tail", "2").splitlines()[-1].endswith("m4")


def test_cancel_and_retry_act_through_the_services_and_are_audited(user):
    job = make_job(JobStatus.PENDING)
    assert "cancelled" in run("--user", "alice", "cancel", str(job.pk))
    assert "pending (retry)" in run("--user", "alice", "retry", str(job.pk))
    assert list(Job.objects.get(pk=job.pk).events.values_list("action", "via", "actor")) == [
        ("retried", "cli", user.pk),
        ("cancelled", "cli", user.pk),
    ]


def test_run_creates_a_job_of_the_given_type():
    data = json.loads(run("--json", "run", "demo.steps", "--config", '{"steps": 2}'))
    assert Job.objects.get(pk=data["id"]).status == JobStatus.PENDING


def test_run_wait_follows_the_log_and_fails_unless_the_job_completes(monkeypatch):
    # In-process stand-in for the cluster: run the job when the command follows it.
    from jobs.management.commands import jobs as command

    original = command.Command.follow

    def follow(self, job_id, cursor, timeout=0):
        runner.run_job(job_id)
        return original(self, job_id, cursor, timeout)

    monkeypatch.setattr(command.Command, "follow", follow)
    assert "step 2 done" in run(
        "run", "demo.steps", "--config", '{"steps": 2, "delay": 0}', "--wait"
    )
    with pytest.raises(CommandError, match=r"ended failed: task 1 \(step 1\) failed"):
        run("run", "demo.steps", "--config", '{"steps": 1, "delay": 0, "fail_at": 1}', "--wait")


def test_run_after_makes_the_job_wait_for_its_parents_and_json_names_them():
    a, b = make_job(JobStatus.PENDING), make_job(JobStatus.PENDING)
    data = json.loads(
        run("--json", "run", "demo.steps", "--config", STEPS, "--after", f"{b.pk},{a.pk}")
    )
    child = Job.objects.get(pk=data["id"])
    assert child.waiting_on == 2 and child.on_parent_failure == "cancel"
    assert data["depends_on"] == [a.pk, b.pk] and data["on_parent_failure"] == "cancel"
    text = run(
        "run", "demo.steps", "--config", STEPS, "--after", str(a.pk), "--on-parent-failure", "run"
    )
    assert text.strip().endswith(f"pending, after #{a.pk}")
    assert Job.objects.order_by("-pk").first().on_parent_failure == "run"
    status = json.loads(run("--json", "status", str(child.pk)))
    assert status["depends_on"] == [a.pk, b.pk]
    assert str(a.pk) in status["waiting_reason"]


def test_run_after_a_failed_parent_is_cancelled_at_once():
    failed = make_job(JobStatus.FAILED)
    text = run("run", "demo.steps", "--config", STEPS, "--after", str(failed.pk))
    assert ": cancelled, after" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["status", "999999"], "no job with id 999999"),
        (
            ["run", "demo.steps", "--config", STEPS, "--after", "999999"],
            "depends_on: There is no job #999999",
        ),
        (["run", "no.such.type"], "job_type: Unknown job type: 'no.such.type'."),
        (["run", "demo.steps", "--config", '{"steps": 0}'], "config: steps: Ensure"),
        (["--user", "nobody", "list"], "no user named 'nobody'"),
    ],
)
def test_bad_input_is_one_readable_error_and_creates_nothing(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run(*args)
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["logs", "1", "--tail", "-1"], "must be 0 or more"),
        (["run", "demo.steps", "--config", "{oops"], "malformed JSON"),
        (["run", "demo.steps", "--config", "[1]"], "must be a JSON object"),
        (["run", "demo.steps", "--after", "1,x"], "not a comma-separated list of job ids"),
        (["run", "demo.steps", "--after", ""], "not a comma-separated list of job ids"),
        (["run", "demo.steps", "--on-parent-failure", "later"], "invalid choice: 'later'"),
    ],
)
def test_malformed_arguments_are_refused_by_the_parser(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_cleanup_dry_run_reports_without_deleting():
    make_job(JobStatus.COMPLETED)
    assert "would delete 1 jobs" in run("cleanup", "--older-than", "0", "--dry-run")
    assert Job.objects.count() == 1
    assert "deleted 1 jobs" in run("cleanup", "--older-than", "0")
    assert not Job.objects.exists()
