"""Move DRF authtoken keys into django-rest-knox, hashed, and drop DRF's table.

DRF kept each API token in plain text (and its admin showed them); knox keeps
only a SHA-512 digest and an expiry. An existing key keeps working: it becomes
a knox token with the same value (digest of the key, its first 15 characters as
the lookup key) expiring REST_KNOX["TOKEN_TTL"] from this migration. Then the
plain-text table goes, with DRF's migration records, so nothing readable is left.
Not reversible: the keys cannot be recovered from their digests.
"""

from django.db import migrations
from django.utils import timezone

DRF_TABLE = "authtoken_token"


def forwards(apps, schema_editor):
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS, knox_settings

    connection = schema_editor.connection
    if DRF_TABLE not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {qn('key')}, {qn('user_id')} FROM {qn(DRF_TABLE)}")
        rows = cursor.fetchall()
    expiry = timezone.now() + knox_settings.TOKEN_TTL
    AuthToken.objects.bulk_create(
        [
            AuthToken(
                digest=hash_token(key),
                token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
                user_id=user_id,
                expiry=expiry,
            )
            for key, user_id in rows
        ],
        ignore_conflicts=True,
    )
    schema_editor.execute(f"DROP TABLE {qn(DRF_TABLE)}")
    schema_editor.execute("DELETE FROM django_migrations WHERE app = %s", ["authtoken"])


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0006_cleanup_permission"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
