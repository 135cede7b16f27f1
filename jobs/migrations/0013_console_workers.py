"""The operator's console (issue 19): worker processes for the workers page, and the
"discarded" audit action (a draft thrown away from its page)."""

from django.db import migrations, models
from django.utils import timezone


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0012_job_timeout"),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkerProcess",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=255, unique=True)),
                ("host", models.CharField(max_length=255)),
                ("pid", models.PositiveIntegerField()),
                ("cluster", models.CharField(max_length=100)),
                ("cluster_pid", models.PositiveIntegerField(blank=True, null=True)),
                ("cluster_started_at", models.DateTimeField(default=timezone.now)),
                ("queues", models.JSONField(blank=True, default=list)),
                ("started_at", models.DateTimeField(default=timezone.now)),
                ("seen_at", models.DateTimeField(default=timezone.now)),
                ("rss_bytes", models.PositiveBigIntegerField(blank=True, null=True)),
            ],
            options={
                "ordering": ["host", "cluster", "pid"],
                "indexes": [models.Index(fields=["seen_at"], name="workerprocess_seen_idx")],
            },
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
                    ("paused", "Paused"),
                    ("resumed", "Resumed"),
                    ("discarded", "Discarded"),
                ],
                max_length=11,
            ),
        ),
    ]
