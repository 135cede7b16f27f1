"""Reading ids and datetimes from hostile text (query strings, search boxes).

`'²'.isdigit()` is true yet `int('²')` raises; `int('٣')` is 3; an id past 2**63
overflows SQLite's INTEGER; a UTC offset past ±15:59 is refused by PostgreSQL, and
year 9999 at -23:59 is year 10000 in UTC. These helpers answer None (not a valid
value) instead of raising somewhere below a view.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

MAX_ID = 2**63 - 1  # BigAutoField's (and SQLite INTEGER's) largest value
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """A database id written in ASCII digits, or None."""
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def in_utc(value: datetime) -> datetime | None:
    """`value` (naive: in the current timezone) as an aware UTC datetime, or None
    when that falls outside the years 1-9999 the databases store."""
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def parse_utc_datetime(text: str) -> datetime | None:
    """An ISO 8601 date-time (any offset) in UTC, or None if unreadable or out of range."""
    try:
        parsed = parse_datetime(text.strip())
    except ValueError:
        return None
    return in_utc(parsed) if parsed is not None else None
