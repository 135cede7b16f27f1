"""What `manage.py jobs`, `schedules` and `releases` share (jobs/cli.py): global options
before or after the action, `--json` for every action, one-line errors, no log noise."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command, load_command_class

from jobs import runner, services
from jobs.models import AuditEvent, Job, JobStatus
from releases import services as release_services
from scheduler import services as schedule_services
from tests.support.cluster import ROOT, cluster_env
from tests.support.job_factories import make_job
from tests.support.release_factories import make_version
from tests.support.release_factories import run as run_release_job

pytestmark = pytest.mark.django_db

COMMANDS = {"jobs": "jobs", "schedules": "scheduler", "releases": "releases"}


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def actions_of(command: str) -> set[str]:
    parser = load_command_class(COMMANDS[command], command).create_parser("manage.py", command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


@pytest.fixture
def world(user, settings, tmp_path):
    """A job in every interesting state, a release with two versions, a schedule; the
    user holds the rights the actions need (cleanup, and a release's jobs)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=["jobs", "releases"],
            codename__in=["cleanup_jobs", "change_release"],
        )
    )
    failed = make_job(JobStatus.FAILED, user=user)
    pending = make_job(JobStatus.PENDING, user=user)
    services.job_log(job_id=failed.pk, message="line one")
    services.job_log(job_id=failed.pk, message="line two")
    release = release_services.release_create(slug="web", name="Web", user=user)
    make_version(release, {"index.html": b"<h1>1</h1>"}, user=user)
    make_version(release, {"index.html": b"<h1>2</h1>"}, user=user)
    applied = release_services.release_create(slug="applied", name="Applied", user=user)
    for number, body in enumerate((b"1", b"2"), 1):  # v1 then v2 applied: rollback-able
        make_version(applied, {"a.txt": body}, user=user)
        run_release_job(release_services.release_apply(release=applied, number=number))
    schedule_services.schedule_create(
        user=user,
        name="nightly",
        job_type="demo.steps",
        config={"steps": 1, "delay": 0},
        kind="daily",
        time="02:30",
        timezone="UTC",
    )
    upload = tmp_path / "dist"
    upload.mkdir()
    (upload / "index.html").write_text("<h1>3</h1>")
    export = tmp_path / "schedules.json"  # nothing to change: no permission needed
    export.write_text(json.dumps({"jobdeck": "export", "version": 1, "schedules": []}))
    return {
        "failed": failed.pk,
        "pending": pending.pk,
        "upload": str(upload),
        "export_file": str(export),
    }


# Every action of the three commands, with arguments that succeed on `world`.
EVERY_ACTION = {
    "jobs": {
        "list": ["list"],
        "status": ["status", "{failed}", "--logs"],
        "logs": ["logs", "{failed}"],
        "cancel": ["cancel", "{pending}"],
        "retry": ["retry", "{failed}"],
        "run": ["run", "demo.steps", "--config", '{"steps": 1}'],
        "cleanup": ["cleanup", "--older-than", "0", "--dry-run"],
        "sweep": ["sweep"],
    },
    "schedules": {
        "list": ["list"],
        "run": ["run", "nightly"],
        "enable": ["enable", "nightly"],
        "disable": ["disable", "nightly"],
        "export": ["export"],
        "import": ["import", "--dry-run", "{export_file}"],
    },
    "releases": {
        "list": ["list"],
        "create": ["create", "api", "--name", "API"],
        "versions": ["versions", "web"],
        "apply": ["apply", "web", "1"],
        "rollback": ["rollback", "applied"],
        "package": ["package", "web", "1"],
        "verify": ["verify", "web", "1"],
    },
}


def test_the_json_table_covers_every_action_of_the_three_commands():
    assert {command: set(table) for command, table in EVERY_ACTION.items()} == {
        command: actions_of(command) for command in COMMANDS
    }


CASES = [(command, action) for command, table in EVERY_ACTION.items() for action in table]


@pytest.mark.parametrize("command, action", CASES, ids=[f"{c} {a}" for c, a in CASES])
@pytest.mark.parametrize("where", ["before", "after"])
def test_every_action_prints_json_with_the_global_options_before_or_after_it(
    world, user, command, action, where
):
    args = [str(world.get(arg.strip("{}"), arg)) for arg in EVERY_ACTION[command][action]]
    options = ["--json", "--user", "alice"]
    argv = [*options, *args] if where == "before" else [*args, *options]

    out, err = run(command, *argv)

    lines = out.splitlines()
    assert lines, (command, action)
    if (command, action) == ("jobs", "logs"):
        parsed = [json.loads(line) for line in lines]  # JSON Lines, one per log line
        assert [p["message"] for p in parsed] == ["line one", "line two"]
    else:
        assert len(lines) == 1, out  # one JSON document
        assert isinstance(json.loads(out), (dict, list))
    assert err == ""


def test_user_given_after_the_action_is_the_actor_in_the_audit_trail(world, user):
    run("jobs", "cancel", str(world["pending"]), "--user", "alice")
    run("schedules", "run", "nightly", "--user", "alice", "--json")
    event = AuditEvent.objects.get(job_id=world["pending"], action="cancelled")
    assert (event.actor, event.via) == (user, "cli")
    assert Job.objects.filter(schedule__name="nightly").get().created_by == user


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("where", ["before", "after"])
def test_an_unknown_user_is_one_readable_error_before_or_after_the_action(command, where):
    argv = ["--user", "ghost", "list"] if where == "before" else ["list", "--user", "ghost"]
    with pytest.raises(CommandError, match=r"^no user named 'ghost'$"):
        run(command, *argv)


def test_status_after_a_manual_retry_says_the_attempt_was_a_manual_retry(user):
    job = services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0, "fail_at": 1}, max_attempts=1
    )
    runner.run_job(job.pk)
    assert "attempt 1/1" in run("jobs", "status", str(job.pk))[0]

    services.job_retry(job=Job.objects.get(pk=job.pk), via="cli")
    runner.run_job(job.pk)

    text = run("jobs", "status", str(job.pk))[0]
    assert "attempt 2 (1 automatic, then 1 manual retry)" in text
    assert "2/1" not in text


def test_list_says_when_it_stops_at_its_limit(user):
    for _ in range(3):
        make_job()
    out, err = run("jobs", "list", "--limit", "2")
    assert len(out.splitlines()) == 3  # the header and two rows
    assert err.strip() == "showing the newest 2 matching jobs; more match (--limit N shows more)"

    out, err = run("jobs", "list", "--limit", "2", "--json")
    assert len(json.loads(out)) == 2 and "more match" in err

    out, err = run("jobs", "list", "--limit", "3")
    assert len(out.splitlines()) == 4 and err == ""


def test_the_default_limit_is_fifty_and_says_so_beyond(user):
    for _ in range(51):
        make_job()
    out, err = run("jobs", "list", "--json")
    assert len(json.loads(out)) == 50
    assert "showing the newest 50 matching jobs" in err


@pytest.mark.django_db(transaction=True)
def test_on_the_command_line_stderr_has_no_broker_log_noise_and_errors_are_one_line():
    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=cluster_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = manage("jobs", "run", "demo.steps", "--config", '{"steps": 1}', "--json")
    assert created.returncode == 0, created.stderr
    assert created.stderr == ""  # no "Enqueued [jobdeck] 1" from django-q2's logger
    job_id = json.loads(created.stdout)["id"]

    status = manage("jobs", "status", str(job_id), "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "pending"

    for args in (["jobs", "explode"], ["jobs", "list", "--bogus"], ["releases", "apply"]):
        refused = manage(*args)
        assert refused.returncode == 2, args
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    missing = manage("jobs", "status", "999999", "--json")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "CommandError: no job with id 999999"


def test_a_version_uploaded_with_json_is_printed_in_the_api_s_shape(world):
    out, _ = run("releases", "versions", "web", "--upload", world["upload"], "--json")
    version = json.loads(out)
    assert version["number"] == 3 and [f["name"] for f in version["files"]] == ["index.html"]


def test_plain_manage_py_without_debug_or_secret_key_says_so_in_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    done = subprocess.run(
        [sys.executable, "manage.py", "jobs", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "manage.py: SECRET_KEY must be set when DEBUG is off (in a development checkout, "
        "./jobdeck manage … runs manage.py with DEBUG=1).\n"
    )
