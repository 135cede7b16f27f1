"""Drop single-column indexes that a composite index already leads with.

Each index on jobs_job is written on every claim and completion (the status changes,
so those UPDATEs are never HOT). The database only sees DROP INDEX: Django's own
AlterField(db_index=False) would drop and re-validate the foreign keys, rebuild both
tables on SQLite, and on PostgreSQL also drop the partial unique index
one_running_job_per_release (an index on the same single column) without recreating it.
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


def drop(apps, schema_editor):
    qn = schema_editor.quote_name
    for _, _, name in DROPPED:
        schema_editor.execute(f"DROP INDEX IF EXISTS {qn(name)}")


def recreate(apps, schema_editor):
    qn = schema_editor.quote_name
    for table, column, name in DROPPED[:-1]:
        schema_editor.execute(f"CREATE INDEX {qn(name)} ON {qn(table)} ({qn(column)})")


def fk(to, on_delete, **kwargs):
    return models.ForeignKey(db_index=False, on_delete=on_delete, to=to, **kwargs)


class Migration(migrations.Migration):
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
            ],
            database_operations=[migrations.RunPython(drop, recreate)],
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["job_type", "-id"], name="job_type_id_idx"),
        ),
    ]
