"""Foreign keys delete and null through the database (ON DELETE CASCADE / SET NULL):
a job's cleanup is one DELETE, the rows hanging off it go with it."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from jobs.migration_operations import AlterForeignKeyOnDelete


class Migration(migrations.Migration):
    # On PostgreSQL each constraint is swapped NOT VALID, then validated without
    # blocking writes (see AlterForeignKeyOnDelete): not in one transaction.
    atomic = False

    dependencies = [
        ('jobs', '0009_lock_key_worker_history_audit_targets'),
        ('releases', '0003_database_on_delete'),
        ('scheduler', '0002_schedule_policy_constraints'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AlterForeignKeyOnDelete(
            model_name='auditevent',
            name='actor',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, to=settings.AUTH_USER_MODEL),
        ),
        AlterForeignKeyOnDelete(
            model_name='auditevent',
            name='job',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, related_name='events', to='jobs.job'),
        ),
        AlterForeignKeyOnDelete(
            model_name='job',
            name='created_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, related_name='jobs', to=settings.AUTH_USER_MODEL),
        ),
        AlterForeignKeyOnDelete(
            model_name='job',
            name='release',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name='jobs', to='releases.release'),
        ),
        AlterForeignKeyOnDelete(
            model_name='job',
            name='schedule',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, related_name='jobs', to='scheduler.schedule'),
        ),
        AlterForeignKeyOnDelete(
            model_name='joblog',
            name='job',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='logs', to='jobs.job'),
        ),
        AlterForeignKeyOnDelete(
            model_name='joblog',
            name='task',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name='logs', to='jobs.task'),
        ),
        AlterForeignKeyOnDelete(
            model_name='task',
            name='job',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.DB_CASCADE, related_name='tasks', to='jobs.job'),
        ),
    ]
