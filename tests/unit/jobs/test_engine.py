"""The engine's shape: it alone writes statuses, its SQL is named and static, its
transitions are the ones TRANSITIONS allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.db import connection

from jobs import engine
from jobs.engine import queries
from jobs.models import (
    TRANSITIONS,
    FlowSetting,
    Job,
    JobDependency,
    JobLog,
    JobStatus,
    RateSlot,
    Task,
    TaskStatus,
)

ROOT = Path(__file__).resolve().parents[3]
APPS = ["jobs", "releases", "scheduler", "notifications", "monitoring", "demo", "config"]
ENGINE = ROOT / "jobs" / "engine"
WRITERS = {"update", "create", "bulk_create", "get_or_create", "update_or_create"}
SQL_STATUS_WRITE = re.compile(r"\bSET\b[^;]*\bstatus\s*=", re.IGNORECASE | re.DOTALL)


def _app_sources() -> list[Path]:
    files = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or ENGINE in path.parents:
                continue
            files.append(path)
    return files


def _status_writes(path: Path) -> list[str]:
    """Places in `path` that write a `status`: a keyword of a queryset write, an
    assignment to `.status`, setattr(…, "status", …), or SQL that sets it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in WRITERS and any(k.arg == "status" for k in node.keywords):
                found.append(f"{where} {name}(status=…)")
            if name == "setattr" and len(node.args) > 1:
                target = node.args[1]
                if isinstance(target, ast.Constant) and target.value == "status":
                    found.append(f"{where} setattr(…, 'status', …)")
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "status":
                    found.append(f"{where} .status = …")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL_STATUS_WRITE.search(node.value)
        ):
            found.append(f"{where} SQL SET status")
    return found


def test_no_code_outside_the_engine_writes_a_status():
    writes = [w for path in _app_sources() for w in _status_writes(path)]
    assert writes == []


def test_the_scan_finds_each_kind_of_status_write(tmp_path):
    # The scan above must be able to fail: each form it looks for, found.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "Job.objects.filter(pk=1).update(status='failed')\n"
        "job.status = 'running'\n"
        "setattr(task, 'status', 'skipped')\n"
        "sql = \"UPDATE jobs_job SET error = '', status = 'pending' WHERE id = 1\"\n"
    )
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        assert len(_status_writes(sample)) == 4
    finally:
        ROOT = root


def test_every_declared_move_is_a_legal_transition_and_every_legal_one_is_made():
    made = {(source, to) for _, sources, to in engine.MOVES for source in sources}
    legal = {(source, to) for source, targets in TRANSITIONS.items() for to in targets}
    assert made == legal


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_the_named_statements_are_the_same_set_on_both_databases(vendor):
    assert "claim_next" in queries.statements(vendor)
    names = {v: set(queries.statements(v)) for v in ("postgresql", "sqlite")}
    # SQLite splits some statements in several (no data-modifying CTEs).
    assert {"claim_next", "claim_job", "start_task", "insert_job", "insert_logs"} <= names[vendor]


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_status_literals_in_the_sql_are_statuses(vendor):
    valid = set(JobStatus.values) | set(TaskStatus.values)
    for name, sql in queries.statements(vendor).items():
        for literal in re.findall(r"status\s*(?:=|<>|IN)\s*\(?((?:'[a-z]+'(?:,\s*)?)+)", sql):
            for value in re.findall(r"'([a-z]+)'", literal):
                assert value in valid, f"{vendor} {name}: {value!r}"


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_the_sql_names_the_models_tables(vendor):
    tables = {
        Job._meta.db_table,
        Task._meta.db_table,
        JobLog._meta.db_table,
        FlowSetting._meta.db_table,
        RateSlot._meta.db_table,
        JobDependency._meta.db_table,
        "django_q_ormq",
    }
    for name, sql in queries.statements(vendor).items():
        for table in re.findall(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+(jobs_\w+|django_q_\w+)", sql):
            assert table in tables, f"{vendor} {name}: {table}"


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
@pytest.mark.parametrize(("statement", "model"), [("insert_job", Job), ("insert_jobs", Job)])
def test_the_job_inserts_write_every_column(vendor, statement, model):
    sql = queries.statements(vendor)[statement]
    listed = re.search(r"INSERT INTO \w+ \(([^)]*)\)", sql).group(1)
    columns = {c.strip() for c in listed.split(",")}
    # A column with a database default (Job.tags, written after the insert when there are
    # tags) may be left to it; every other column must be named.
    expected = {f.column for f in model._meta.concrete_fields if not f.primary_key}
    defaulted = {f.column for f in model._meta.concrete_fields if f.has_db_default()}
    assert expected - defaulted <= columns <= expected


def test_the_statements_of_this_database_are_loaded_without_their_comments():
    for sql in queries.statements(connection.vendor).values():
        assert "--" not in sql and sql.strip() and not sql.endswith(";")
