"""Drop single-column indexes that a composite index already leads with.

Each index on jobs_job is written on every claim and completion (the status changes,
so those UPDATEs are never HOT). The database only sees CREATE/DROP INDEX: Django's own
AlterField(db_index=False) would drop and re-validate the foreign keys, rebuild both
tables on SQLite, and on PostgreSQL also drop the partial unique index
one_running_job_per_release (an index on the same single column) without recreating it.

Not atomic: on PostgreSQL the indexes are created and dropped CONCURRENTLY, so workers,
the API and the admin keep using jobs_job meanwhile (a plain DROP INDEX holds an
ACCESS EXCLUSIVE lock, and in one transaction it would hold it while the new index is
built). Each statement is idempotent, so a migration interrupted halfway runs again.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (table, column, index name Django gave it in 0001/0002); the last is PostgreSQL's
# varchar_pattern_ops twin of job_type's index, for LIKE lookups Jobdeck never makes.
DROPPED = [
    ("jobs_job", "created_by_id", "jobs_job_created_by_id_f3283268"),  # job_owner_id_idx
    ("jobs_job", "release_id", "jobs_job_release_id_e322e6bd"),  # job_release_status_idx
    ("jobs_job", "schedule_id", "jobs_job_schedule_id_cd3d2a46"),  # job_schedule_id_idx
    ("jobs_job", "job_type", "jobs_job_job_type_5d4aec58"),  # job_type_id_idx (below)
    ("jobs_task", "job_id", "jobs_task_job_id_6fefee23"),  # task_position_unique
    ("jobs_job", "job_type", "jobs_job_job_type_5d4aec58_like"),
]
NEW_INDEX = ("job_type_id_idx", "jobs_job", '"job_type", "id" DESC')


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def forward(apps, schema_editor):
    qn, how = schema_editor.quote_name, _concurrently(schema_editor)
    name, table, columns = NEW_INDEX
    schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {qn(name)} ON {qn(table)} ({columns})")
    for _, _, name in DROPPED:
        schema_editor.execute(f"DROP INDEX{how} IF EXISTS {qn(name)}")


def backward(apps, schema_editor):
    qn, how = schema_editor.quote_name, _concurrently(schema_editor)
    for table, column, name in DROPPED[:-1]:
        schema_editor.execute(
            f"CREATE INDEX{how} IF NOT EXISTS {qn(name)} ON {qn(table)} ({qn(column)})"
        )
    if how:  # PostgreSQL's LIKE twin
        table, column, name = DROPPED[-1]
        schema_editor.execute(
            f"CREATE INDEX{how} IF NOT EXISTS {qn(name)} "
            f"ON {qn(table)} ({qn(column)} varchar_pattern_ops)"
        )
    schema_editor.execute(f"DROP INDEX{how} IF EXISTS {qn(NEW_INDEX[0])}")


def fk(to, on_delete, **kwargs):
    return models.ForeignKey(db_index=False, on_delete=on_delete, to=to, **kwargs)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0004_job_finished_index_partial"),
        ("releases", "0002_version_parent_restrict"),
        ("scheduler", "0002_schedule_policy_constraints"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="created_by",
                    field=fk(
                        settings.AUTH_USER_MODEL,
                        django.db.models.deletion.SET_NULL,
                        blank=True,
                        null=True,
                        related_name="jobs",
                    ),
                ),
                migrations.AlterField(
                    model_name="job", name="job_type", field=models.CharField(max_length=100)
                ),
                migrations.AlterField(
                    model_name="job",
                    name="release",
                    field=fk(
                        "releases.release",
                        django.db.models.deletion.CASCADE,
                        blank=True,
                        null=True,
                        related_name="jobs",
                    ),
                ),
                migrations.AlterField(
                    model_name="job",
                    name="schedule",
                    field=fk(
                        "scheduler.schedule",
                        django.db.models.deletion.SET_NULL,
                        blank=True,
                        null=True,
                        related_name="jobs",
                    ),
                ),
                migrations.AlterField(
                    model_name="task",
                    name="job",
                    field=fk("jobs.job", django.db.models.deletion.CASCADE, related_name="tasks"),
                ),
                migrations.AddIndex(
                    model_name="job",
                    index=models.Index(fields=["job_type", "-id"], name="job_type_id_idx"),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward)],
        ),
    ]
