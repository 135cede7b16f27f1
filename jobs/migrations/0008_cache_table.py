"""The database cache's table (settings.CACHES, jobdeck_cache by default).

The API's rate limits are counted in the cache every web process shares; with the
default database cache its table must exist before the first request, so
`migrate` makes it (createcachetable, which does nothing for Redis or an existing
table). Switching to the database cache later: `manage.py createcachetable`.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0007_drf_tokens_to_knox")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
