"""Django's database cache, with an increment that several processes can share.

The API's rate limits count requests in the cache that every web process uses
(settings.CACHES["default"]: this backend by default, Redis when configured). A
count must survive concurrent increments from many processes. Django's
DatabaseCache.incr() is a get() then a set(): two processes reading 7 both write
8, and a burst spread over several gunicorn workers slips past the limit. Here
the row is locked while it is read and written (SELECT … FOR UPDATE on
PostgreSQL; on SQLite the transaction takes the database's write lock at BEGIN,
settings' transaction_mode IMMEDIATE), so no increment is lost. Redis's INCR is
atomic already.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, models, router, transaction
from django.utils.timezone import now as tz_now


class DatabaseCache(DjangoDatabaseCache):
    _table: str  # the table name, set by BaseDatabaseCache.__init__ (not in the stubs)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        qn = connection.ops.quote_name
        table, cache_key = qn(self._table), qn("cache_key")
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        expires_field = models.Expression(output_field=models.DateTimeField())
        converters = connection.ops.get_db_converters(
            expires_field
        ) + expires_field.get_db_converters(connection)
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {qn('value')}, {qn('expires')} FROM {table} WHERE {cache_key} = %s{lock}",
                [key],
            )
            row = cursor.fetchone()
            if row is not None:
                expires = row[1]
                for convert in converters:
                    expires = convert(expires, expires_field, connection)
            if row is None or expires < tz_now():
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(base64.b64decode(connection.ops.process_clob(row[0]).encode()))
            value += delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {qn('value')} = %s WHERE {cache_key} = %s", [encoded, key]
            )
        return value
