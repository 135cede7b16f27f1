"""Job tags, job templates, and the indexes of search (issue 20).

On PostgreSQL, `?config.<key>=` is served by a GIN index on the config
(jsonb_path_ops, for `config @> '{"key": value}'`) and `?log_contains=` by a pg_trgm
GIN index on UPPER(message) (what icontains compares). Both are built CONCURRENTLY,
so the migration is not atomic and never blocks writes. SQLite gets neither: search
there is bounded to the newest rows (jobs.search).
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

from jobs.migration_operations import PostgreSQLOnly


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY

    dependencies = [
        ('jobs', '0013_console_workers'),
        ('releases', '0003_database_on_delete'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='tags',
            field=models.JSONField(blank=True, db_default=models.Value('[]'), default=list),
        ),
        migrations.CreateModel(
            name='JobTag',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('tag', models.CharField(max_length=50)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.DB_CASCADE, related_name='tag_rows', to='jobs.job')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('tag', 'job'), name='jobtag_tag_job_unique')],
            },
        ),
        migrations.CreateModel(
            name='JobTemplate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200, unique=True)),
                ('description', models.TextField(blank=True)),
                ('job_type', models.CharField(max_length=100)),
                ('config', models.JSONField(blank=True, default=dict)),
                ('queue', models.CharField(default='default', max_length=100)),
                ('priority', models.SmallIntegerField(default=0)),
                ('tags', models.JSONField(blank=True, default=list)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_SET_NULL, related_name='job_templates', to=settings.AUTH_USER_MODEL)),
                ('release', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.DB_CASCADE, related_name='job_templates', to='releases.release')),
            ],
            options={
                'ordering': ['name'],
                'constraints': [models.CheckConstraint(condition=models.Q(('priority__gte', -100), ('priority__lte', 100)), name='jobtemplate_priority_range')],
            },
        ),
        # Skipped on other databases by CreateExtension itself.
        TrigramExtension(),
        PostgreSQLOnly(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS job_config_gin_idx "
            "ON jobs_job USING gin (config jsonb_path_ops)",
            "DROP INDEX CONCURRENTLY IF EXISTS job_config_gin_idx",
        ),
        PostgreSQLOnly(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS joblog_message_trgm_idx "
            "ON jobs_joblog USING gin (UPPER(message) gin_trgm_ops)",
            "DROP INDEX CONCURRENTLY IF EXISTS joblog_message_trgm_idx",
        ),
    ]
