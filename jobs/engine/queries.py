"""The engine's named statements (sql/<vendor>.sql), loaded once, run by name.

Each file holds blocks that start with `-- name: <name>`; the comment lines after
it say what the statement does and which race it settles, and are not sent. The
statements name their parameters (`%(worker)s`); Django's cursors take them as a
dict on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import Field
from django.utils.dateparse import parse_datetime

from ..models import Job

SQL_DIR = Path(__file__).with_name("sql")
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """`{name: statement}` of one .sql file (its comment lines dropped)."""
    parts = _NAME.split(text)
    statements: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        statements[name] = "\n".join(lines).strip().rstrip(";")
    return statements


@functools.cache
def statements(vendor: str) -> dict[str, str]:
    return parse((SQL_DIR / f"{vendor}.sql").read_text())


def sql(name: str) -> str:
    """The statement `name` for the default connection's database."""
    return statements(connection.vendor)[name]


def execute(name: str, params: Mapping[str, Any]) -> Any:
    """Run statement `name`; returns the cursor's rows (list of dicts) and rowcount."""
    with connection.cursor() as cursor:
        cursor.execute(sql(name), params)
        return _rows(cursor), cursor.rowcount


def execute_many(names: list[str], params: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """PostgreSQL: run statements `names` in one round trip and one implicit
    transaction (one simple-query message; they share `params`). The rows of each
    statement that returns any, in order."""
    results: list[list[dict[str, Any]]] = []
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(sql(name) for name in names), params)
        while True:
            if cursor.description is not None:
                results.append(_rows(cursor))
            if not cursor.nextset():
                break
    return results


def _rows(cursor: Any) -> list[dict[str, Any]]:
    if cursor.description is None:
        return []
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


# --- values in and out ------------------------------------------------------------


def db_datetime(value: datetime | None) -> Any:
    """A datetime as this database stores it (SQLite: Django's UTC text form)."""
    if value is None:
        return None
    return connection.ops.adapt_datetimefield_value(value)


def db_json(value: Any) -> str | None:
    """A JSON column's value: SQL NULL for None, as Django's JSONField stores it."""
    return None if value is None else json.dumps(value)


def py_datetime(value: Any) -> datetime | None:
    """A datetime read from a raw row: aware, UTC."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def py_json(value: Any) -> Any:
    """A JSON value read from a raw row (text, or already decoded by the driver)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


@functools.cache
def _job_columns() -> tuple[tuple[Field[Any, Any], str], ...]:
    """Job's concrete fields with their columns (a concrete field always has one)."""
    columns = []
    for field in Job._meta.concrete_fields:
        if field.column is None:
            raise TypeError(f"Job.{field.name} is concrete but has no column")
        columns.append((field, field.column))
    return tuple(columns)


@functools.cache
def _job_decoders() -> dict[str, Any]:
    """Column → decoder for the Job columns a raw row returns undecoded."""
    from django.db import models

    decoders: dict[str, Any] = {}
    for field, column in _job_columns():
        if isinstance(field, models.JSONField):
            decoders[column] = py_json
        elif isinstance(field, models.DateTimeField):
            decoders[column] = py_datetime
    return decoders


def job_from_row(row: Mapping[str, Any]) -> Job:
    """A Job built (with its constructor) from a raw row of all its columns."""
    decoders = _job_decoders()
    values = {}
    for field, column in _job_columns():
        value = row[column]
        decode = decoders.get(column)
        values[field.attname] = decode(value) if decode is not None else value
    job = Job(**values)
    job._state.adding = False  # loaded from this database, as the ORM leaves it
    job._state.db = connection.alias
    return job
