"""Finding jobs by config values, tags and log text, at a constant query count.

- **Config** (`?config.account_id=42`, admin `account_id:42`): the value is read as
  JSON (`42` a number, `"42"` or `abc` a string, `true`, `null`), and compared as
  JSON: 42 does not match "42". A dotted key walks into objects (`config.db.host=x`).
  PostgreSQL: `config @> '{"account_id": 42}'` on the GIN index `job_config_gin_idx`,
  plus the exact key comparison (containment alone would let an array hold the value).
- **Tags** (`?tag=nightly`): the JobTag rows' (tag, job) index, on both databases.
- **Log text** (`?log_contains=disk full`, case-insensitive, 3 to 200 characters):
  PostgreSQL's pg_trgm index `joblog_message_trgm_idx` on UPPER(message).

SQLite has neither GIN nor trigram indexes, so there config and log searches are
bounded: they look at the newest JOBDECK_SEARCH_SQLITE_JOBS jobs (default 100,000) and
the newest JOBDECK_SEARCH_SQLITE_LOG_LINES log lines (default 200,000), one subquery
each for where the window starts.
"""

from __future__ import annotations

import json
import re
from functools import reduce
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BigIntegerField, ExpressionWrapper, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform

from .models import Job, JobLog, JobTag
from .tags import tag_problem

CONFIG_PREFIX = "config."
# One key of a config path: an identifier (no lookups like __contains can be smuggled
# in, no array indexes); at most MAX_PATH of them.
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
MAX_PATH = 5
MAX_VALUE_LENGTH = 1000
LOG_MIN, LOG_MAX = 3, 200


def sqlite_jobs_window() -> int:
    return settings.JOBDECK_SEARCH_SQLITE_JOBS


def sqlite_log_window() -> int:
    return settings.JOBDECK_SEARCH_SQLITE_LOG_LINES


def parse_config_key(name: str, *, field: str | None = None) -> list[str]:
    """`account_id` or `db.host` → its path; ValidationError naming `field` otherwise."""
    path = name.split(".")
    if len(path) > MAX_PATH or not all(KEY_RE.match(part) for part in path):
        raise ValidationError(
            {
                field or f"{CONFIG_PREFIX}{name}": [
                    f"Invalid config key {name[:100]!r}: letters, digits, _ and -, starting "
                    f"with a letter or _, at most {MAX_PATH} keys joined by dots."
                ]
            }
        )
    return path


def parse_json_value(raw: str, *, field: str) -> Any:
    """A query value read as JSON (a number, true, null, "quoted"), else the text itself."""
    if len(raw) > MAX_VALUE_LENGTH:
        raise ValidationError({field: [f"At most {MAX_VALUE_LENGTH} characters."]})
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        return raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: read as text


def _after_newest(model: type[Job] | type[JobLog], window: int) -> ExpressionWrapper:
    """(the newest id of `model`) - window, as a subquery: SQLite's bound."""
    newest = Subquery(model.objects.order_by("-pk").values("pk")[:1])
    return ExpressionWrapper(newest - window, output_field=BigIntegerField())


def filter_config(qs: QuerySet[Job], path: list[str], value: Any) -> QuerySet[Job]:
    """Jobs whose config holds `value` (compared as JSON) at `path`."""
    key: Any = "config"
    for part in path:
        key = KeyTransform(part, key)
    # A name with no "__" in it: the key itself never reaches Django's lookup parser.
    alias = f"_config_search_{len(qs.query.annotations)}"
    qs = qs.alias(**{alias: key}).filter(**{alias: value})
    if connection.vendor == "postgresql":
        # The GIN index's operator; the exact comparison above makes it precise.
        contained = reduce(lambda inner, part: {part: inner}, reversed(path), value)
        return qs.filter(config__contains=contained)
    return qs.filter(pk__gt=_after_newest(Job, sqlite_jobs_window()))


def filter_tag[QS: QuerySet[Job]](qs: QS, tag: str) -> QS:
    """Jobs tagged `tag` (an unknown or invalid tag matches nothing)."""
    if tag_problem(tag):
        return qs.none()
    return qs.filter(pk__in=JobTag.objects.filter(tag=tag).values("job_id"))


def check_log_text(text: str, *, field: str = "log_contains") -> str:
    text = text.strip()
    if not LOG_MIN <= len(text) <= LOG_MAX:
        raise ValidationError({field: [f"Between {LOG_MIN} and {LOG_MAX} characters."]})
    if "\x00" in text:
        raise ValidationError({field: ["NUL characters are not allowed."]})
    return text


def filter_log_text(qs: QuerySet[Job], text: str) -> QuerySet[Job]:
    """Jobs with a log line containing `text` (case-insensitive)."""
    lines = JobLog.objects.filter(message__icontains=text)
    if connection.vendor != "postgresql":
        lines = lines.filter(id__gt=_after_newest(JobLog, sqlite_log_window()))
    return qs.filter(pk__in=lines.values("job_id"))
