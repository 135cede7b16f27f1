"""README.md's every shell command works as written (a newcomer follows it top to bottom).

Each line of the README's ```sh blocks is either run here, or named in COVERED_ELSEWHERE
with the test that runs it; a new README command that is neither fails this suite.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from jobs.models import Job, JobStatus
from tests.support.cluster import ROOT, wait_until
from tests.support.cluster import test_database_url as database_url

README = ROOT / "README.md"

# Commands run by another test (file, test name) or by CI itself (file, None).
COVERED_ELSEWHERE: dict[str, tuple[str, str | None]] = {
    "./jobdeck start": (
        "tests/integration/jobs/test_serve.py",
        "test_jobdeck_start_serves_and_ctrl_c_stops_everything_within_15_s_during_a_long_job",
    ),
    # The whole suite on both databases: the command that runs this very test, in CI.
    "./jobdeck test": (".ci/run", None),
}


def shell_commands() -> list[str]:
    """Every command line of README.md's ```sh blocks, in order, comments stripped."""
    commands: list[str] = []
    in_block = False
    for raw in README.read_text().splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_block = not in_block and line == "```sh"
            continue
        if in_block and line and not line.startswith("#"):
            commands.append(re.sub(r"\s+#.*$", "", line))
    return commands


def newcomer_env(**extra: str) -> dict[str, str]:
    """A fresh terminal's environment: no DEBUG, no SECRET_KEY (as the README assumes)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    env.update(extra)
    return env


def run(command: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_every_readme_command_is_run_by_the_suite():
    commands = shell_commands()
    assert "./jobdeck manage jobs list --status failed,cancelled" in commands
    for command in commands:
        if command.startswith("./jobdeck manage ") or command in RUN_HERE:
            continue
        assert command in COVERED_ELSEWHERE, f"README command not exercised by a test: {command}"
    for path, test in COVERED_ELSEWHERE.values():
        text = (ROOT / path).read_text()
        assert (f"def {test}(" in text) if test else ("./jobdeck test" in text), (path, test)


RUN_HERE = ("./jobdeck lint", "JOBDECK_TEST_DBS=sqlite ./jobdeck test tests/unit/scheduler -x")


@pytest.mark.parametrize("command", RUN_HERE)
def test_the_readme_s_development_commands_succeed(command):
    assert command in shell_commands()
    done = run(command, newcomer_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_every_shell_command_of_the_readme_succeeds_on_the_demo_data_beside_a_cluster(
    make_cluster, tmp_path
):
    """As in a second terminal after `./jobdeck start`: its demo data, a running cluster."""
    env = newcomer_env(DATABASE_URL=database_url(), MEDIA_ROOT=str(tmp_path / "media"))
    demo = run("./jobdeck manage jobdeck_demo", env)  # what ./jobdeck start loads
    assert demo.returncode == 0, demo.stderr
    assert list(Job.objects.order_by("pk").values_list("pk", "job_type")) == [
        (1, "demo.steps"),
        (2, "demo.steps"),
        (3, "demo.steps"),
        (4, "release.apply"),
    ]  # the ids the README's commands name
    # As ./jobdeck start runs it: DEBUG=1 and no SECRET_KEY, so the development key, the
    # one `./jobdeck manage` signs its broker messages with (django-q2 drops messages
    # signed with another key).
    make_cluster(DEBUG="1", SECRET_KEY="", MEDIA_ROOT=str(tmp_path / "media"))
    # The README says #2 fails at step 3: by the time it is read, it has.
    wait_until(
        lambda: Job.objects.get(pk=2).status == JobStatus.FAILED, 60, 0.2, "demo job #2 to fail"
    )

    manage = [c for c in shell_commands() if c.startswith("./jobdeck manage ")]
    assert len(manage) >= 10
    for command in manage:
        done = run(command, env)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
