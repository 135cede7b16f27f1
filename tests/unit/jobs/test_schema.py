"""The indexes the migrations leave: each one is written on every claim and completion."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _constraints(table: str) -> dict[str, dict]:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


def _single_column_indexes(table: str) -> set[str]:
    """Columns with a non-unique index of their own."""
    return {
        info["columns"][0]
        for info in _constraints(table).values()
        if info["index"] and not info["unique"] and len(info["columns"]) == 1
    }


def test_no_single_column_index_duplicates_the_lead_of_a_composite_index():
    assert _single_column_indexes("jobs_job").isdisjoint(
        {"created_by_id", "release_id", "schedule_id", "job_type"}
    )
    assert "job_id" not in _single_column_indexes("jobs_task")


def test_the_running_slot_indexes_survive_the_index_cleanup():
    # A release's jobs hold the lock key release:<id> (the engine's generic lock), one
    # slot; flow control's type and queue limits take slots too (jobs/flow.py).
    constraints = _constraints("jobs_job")
    for name, columns in [
        ("running_lock_slot_unique", ["lock", "lock_slot"]),
        ("running_type_slot_unique", ["job_type", "type_slot"]),
        ("running_queue_slot_unique", ["queue", "queue_slot"]),
        ("unique_active_key", ["unique_key"]),
    ]:
        assert constraints[name]["unique"], name
        assert constraints[name]["columns"] == columns, name
