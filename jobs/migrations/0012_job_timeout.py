"""Job.timeout_seconds: the seconds each attempt may run (null: no timeout of its own)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_flow_control"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="timeout_seconds",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("timeout_seconds__isnull", True), ("timeout_seconds__gte", 1), _connector="OR"
                ),
                name="job_timeout_positive",
            ),
        ),
    ]
