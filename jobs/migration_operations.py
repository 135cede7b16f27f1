"""Migration operations the apps' migrations share."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

_ON_DELETE_SQL = {
    models.DB_CASCADE: " ON DELETE CASCADE",
    models.DB_SET_NULL: " ON DELETE SET NULL",
}


class AlterForeignKeyOnDelete(migrations.AlterField):
    """AlterField for a foreign key whose on_delete changes between Python-level and
    database-level rules (DB_CASCADE, DB_SET_NULL).

    Django drops the constraint and adds it back, which on PostgreSQL checks every row
    while a lock blocks writes to both tables (minutes on millions of tasks). Here, on
    PostgreSQL, one ALTER TABLE swaps the old constraint for the new one NOT VALID (a
    brief lock), and VALIDATE CONSTRAINT then checks the rows without blocking writes:
    run it in a non-atomic migration. Elsewhere (SQLite rebuilds the table) Django's own
    AlterField runs.
    """

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        self._swap(schema_editor, to_state.apps.get_model(app_label, self.model_name))

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        self._swap(schema_editor, to_state.apps.get_model(app_label, self.model_name))

    def _swap(self, schema_editor: Any, model: Any) -> None:
        field = model._meta.get_field(self.name)
        table, column = model._meta.db_table, field.column
        target = field.target_field
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        names = [n for n, c in constraints.items() if c["foreign_key"] and c["columns"] == [column]]
        name = names[0] if names else f"{table}_{column}_fk_{target.model._meta.db_table}"
        quote = schema_editor.quote_name
        drop = f"DROP CONSTRAINT IF EXISTS {quote(name)}, " if names else ""
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} {drop}ADD CONSTRAINT {quote(name)} "
            f"FOREIGN KEY ({quote(column)}) "
            f"REFERENCES {quote(target.model._meta.db_table)} ({quote(target.column)})"
            f"{_ON_DELETE_SQL.get(field.remote_field.on_delete, '')} "
            "DEFERRABLE INITIALLY DEFERRED NOT VALID"
        )
        schema_editor.execute(f"ALTER TABLE {quote(table)} VALIDATE CONSTRAINT {quote(name)}")


class PostgreSQLOnly(migrations.RunSQL):
    """RunSQL that runs on PostgreSQL only (pg_trgm and GIN indexes): other databases
    get the same state and no SQL, and search there is bounded instead (jobs.search).
    With CREATE INDEX CONCURRENTLY, put it in a non-atomic migration."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
