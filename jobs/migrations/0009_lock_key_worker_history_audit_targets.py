"""Generic lock keys, worker history on the row, audit events that outlive their targets.

- jobs_job.lock: at most one running job per key, FIFO. A release's jobs carry
  "release:<id>" (backfilled here); the partial unique index one_running_job_per_lock
  replaces one_running_job_per_release, and the engine knows nothing of releases.
- jobs_job.attempted_by: [worker, started at] of each attempt, written by the claim.
- jobs_auditevent.target_*: what an event is about (a job, a schedule, a release…),
  kept when it is deleted (0010 makes job ON DELETE SET NULL, no longer CASCADE).

Not atomic: on PostgreSQL the indexes are created and dropped CONCURRENTLY, so workers,
the API and the admin keep using jobs_job meanwhile. Each statement is idempotent, so
a migration interrupted halfway runs again. The new index exists before the old one
goes: there is no moment without a one-running-job rule.
"""

import django.core.serializers.json
from django.db import migrations, models
from django.db.models import Q

INDEXES = [
    # (name, table, columns, WHERE, unique)
    ("job_lock_status_idx", "jobs_job", '"lock", "status", "id"', '"lock" IS NOT NULL', False),
    ("one_running_job_per_lock", "jobs_job", '"lock"', "\"status\" = 'running'", True),
    ("audit_target_idx", "jobs_auditevent", '"target_type", "target_id", "id" DESC', "", False),
]
OLD_INDEX = ("one_running_job_per_release", "jobs_job", '"release_id"', "\"status\" = 'running'")


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def _create(schema_editor, name, table, columns, where, unique) -> None:
    how = _concurrently(schema_editor)
    kind = "UNIQUE INDEX" if unique else "INDEX"
    condition = f" WHERE {where}" if where else ""
    schema_editor.execute(
        f'CREATE {kind}{how} IF NOT EXISTS "{name}" ON "{table}" ({columns}){condition}'
    )


def backfill_release_locks(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    Job.objects.filter(release__isnull=False, lock__isnull=True).update(
        lock=models.functions.Concat(
            models.Value("release:"), models.functions.Cast("release_id", models.CharField())
        )
    )


def forward(apps, schema_editor):
    for index in INDEXES:
        _create(schema_editor, *index)
    schema_editor.execute(f'DROP INDEX{_concurrently(schema_editor)} IF EXISTS "{OLD_INDEX[0]}"')


def backward(apps, schema_editor):
    _create(schema_editor, *OLD_INDEX, True)
    for name, *_ in INDEXES:
        schema_editor.execute(f'DROP INDEX{_concurrently(schema_editor)} IF EXISTS "{name}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0008_cache_table"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="target_id",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="target_repr",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="target_type",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="job",
            name="attempted_by",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="job",
            name="lock",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("created", "Created"),
                    ("submitted", "Submitted"),
                    ("cancelled", "Cancelled"),
                    ("retried", "Retried"),
                    ("deleted", "Deleted"),
                    ("cleanup", "Cleanup"),
                    ("changed", "Changed"),
                    ("enabled", "Enabled"),
                    ("disabled", "Disabled"),
                    ("ran", "Ran"),
                    ("applied", "Applied"),
                    ("rolled back", "Rolled Back"),
                ],
                max_length=11,
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="detail",
            field=models.JSONField(
                blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder
            ),
        ),
        migrations.RunPython(backfill_release_locks, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="job", name="one_running_job_per_release"),
                migrations.AddIndex(
                    model_name="auditevent",
                    index=models.Index(
                        fields=["target_type", "target_id", "-id"], name="audit_target_idx"
                    ),
                ),
                migrations.AddIndex(
                    model_name="job",
                    index=models.Index(
                        condition=Q(lock__isnull=False),
                        fields=["lock", "status", "id"],
                        name="job_lock_status_idx",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="job",
                    constraint=models.UniqueConstraint(
                        condition=Q(status="running"),
                        fields=("lock",),
                        name="one_running_job_per_lock",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward)],
        ),
    ]
