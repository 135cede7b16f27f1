"""`./jobdeck test` starts only what the selected tests need; `.ci/run` lints first."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from config.testenv import services_needed
from tests.support.cluster import ROOT

SQLITE = "django.db.backends.sqlite3"
POSTGRES = "django.db.backends.postgresql"


def jobdeck_test(dbs: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        ["./jobdeck", "test", *args],
        cwd=ROOT,
        env={**env, "JOBDECK_TEST_DBS": dbs},
        capture_output=True,
        text=True,
        timeout=600,
    )


def needs_line(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("services these")]


def test_a_sqlite_subset_needs_no_service_and_starts_none():
    done = jobdeck_test("sqlite", "tests/unit/jobs/test_schema.py", "-q", "-p", "no:cacheprovider")

    assert done.returncode == 0, done.stdout + done.stderr
    assert needs_line(done) == ["services these tests need: none"]
    assert "ensure-services" not in done.stderr


@pytest.mark.parametrize(
    "dbs, args, wanted",
    [
        ("postgres", ["tests/unit/jobs/test_schema.py"], ["postgres"]),
        ("sqlite", ["tests/browser"], ["chromium"]),
        ("sqlite", ["tests/integration/jobs/test_redis_broker.py"], ["redis"]),
        ("sqlite", ["tests", "-m", "browser"], ["chromium"]),
        ("sqlite", ["tests", "-m", "not browser and not redis"], []),
        ("sqlite", ["tests"], ["redis", "chromium"]),
        ("postgres", ["tests"], ["postgres", "redis", "chromium"]),
    ],
)
def test_the_services_follow_the_database_and_the_markers_of_the_selected_tests(dbs, args, wanted):
    done = jobdeck_test(dbs, *args, "--collect-only", "-q", "-p", "no:cacheprovider")

    assert done.returncode == 0, done.stdout + done.stderr
    note = " (not started: --collect-only)" if wanted else ""
    assert needs_line(done) == [f"services these tests need: {', '.join(wanted) or 'none'}{note}"]


def test_no_tests_selected_need_nothing_even_on_postgresql():
    assert services_needed([], POSTGRES) == []


def test_a_redis_test_that_runs_gets_redis_and_nothing_else():
    done = jobdeck_test("sqlite", "tests/integration/jobs/test_redis_broker.py", "-q")

    assert done.returncode == 0, done.stdout + done.stderr
    assert needs_line(done) == ["services these tests need: redis"]


# --- .ci/run -----------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of this checkout's files (committed or not) sharing its .venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    copy = tmp_path / "checkout"
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def ci(copy: Path) -> subprocess.CompletedProcess:
    # A database name ./jobdeck test refuses at once: reaching it proves lint passed.
    env = {**os.environ, "JOBDECK_TEST_DBS": "none-so-the-tests-stop-here"}
    return subprocess.run(
        [".ci/run"], cwd=copy, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "bad_file, ruff_says",
    [
        ("import os\n", "F401"),  # ruff check: unused import
        ("x = {'a':1}\n", "would be reformatted"),  # ruff format --check
    ],
    ids=["ruff-check", "ruff-format"],
)
def test_ci_fails_on_either_ruff_check_or_ruff_format_before_running_tests(
    checkout, bad_file, ruff_says
):
    (checkout / "jobs" / "lint_probe.py").write_text(bad_file)

    done = ci(checkout)

    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert ruff_says in output and "lint failed" in output
    assert "unknown database" not in output  # stopped before the tests


def test_ci_runs_the_tests_once_lint_passes(checkout):
    done = ci(checkout)

    assert done.returncode != 0
    assert "unknown database 'none-so-the-tests-stop-here'" in done.stderr, done.stdout
    assert "lint failed" not in done.stderr


# --- ./jobdeck setup and usage -----------------------------------------------------------


def test_setup_installs_and_migrates_the_database_it_is_given(tmp_path):
    database = tmp_path / "setup.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    done = subprocess.run(
        ["./jobdeck", "setup"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": f"sqlite:///{database}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(database)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"jobs_job", "django_q_ormq", "releases_release"} <= tables


def test_jobdeck_without_a_command_lists_its_commands_and_exits_2():
    done = subprocess.run(["./jobdeck"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    for command in ("start", "manage", "test", "lint", "bench", "setup"):
        assert f"./jobdeck {command}" in done.stdout
