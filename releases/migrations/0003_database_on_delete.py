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
        ('releases', '0002_version_parent_restrict'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AlterForeignKeyOnDelete(
            model_name='artefact',
            name='version',
            field=models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='files', to='releases.releaseversion'),
        ),
        AlterForeignKeyOnDelete(
            model_name='release',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, to=settings.AUTH_USER_MODEL),
        ),
        AlterForeignKeyOnDelete(
            model_name='release',
            name='current_version',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, related_name='+', to='releases.releaseversion'),
        ),
        AlterForeignKeyOnDelete(
            model_name='releaseversion',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, to=settings.AUTH_USER_MODEL),
        ),
        AlterForeignKeyOnDelete(
            model_name='releaseversion',
            name='parent',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='children', to='releases.releaseversion'),
        ),
        AlterForeignKeyOnDelete(
            model_name='releaseversion',
            name='release',
            field=models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='versions', to='releases.release'),
        ),
    ]
