"""Schedule.timeout_seconds: the timeout of the jobs a schedule makes."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0003_database_on_delete"),
    ]

    operations = [
        migrations.AddField(
            model_name="schedule",
            name="timeout_seconds",
            field=models.PositiveIntegerField(
                blank=True,
                help_text=(
                    "Seconds each run may take before it is interrupted and fails "
                    "(blank: the job type's default)."
                ),
                null=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(("timeout_seconds__isnull", True), ("timeout_seconds__gte", 1), _connector="OR"),
                name="schedule_timeout_positive",
            ),
        ),
    ]
