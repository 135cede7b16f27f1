"""What `manage.py queues` and `manage.py jobtypes` share."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError


def limit_or_none(value: str) -> int | None:
    """An argparse type: a positive integer, or 'none' (back to the default)."""
    if value.lower() == "none":
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer or 'none'") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more (or 'none')")
    return number


def add_limit_options(parser: argparse.ArgumentParser, *, timeout: bool) -> None:
    """The limit options; one left out is not changed (SUPPRESS keeps it out)."""
    options = [
        ("--concurrency", "N|none", "at most N running at once"),
        ("--rate", "N|none", "at most N starts per --per seconds"),
        ("--per", "SECONDS|none", "the rate's period (default 60)"),
    ]
    if timeout:
        options.append(("--timeout", "SECONDS|none", "a new job's timeout when it names none"))
    for flag, metavar, text in options:
        parser.add_argument(
            flag, type=limit_or_none, metavar=metavar, help=text, default=argparse.SUPPRESS
        )


FIELDS = {
    "concurrency": "concurrency_limit",
    "rate": "rate_limit",
    "per": "rate_period_seconds",
    "timeout": "timeout_seconds",
}


def limit_changes(options: dict[str, Any]) -> dict[str, Any]:
    """The fields given on the command line ('none': back to the default)."""
    changes = {field: options[opt] for opt, field in FIELDS.items() if opt in options}
    if not changes:
        raise CommandError("nothing to set: give --concurrency, --rate, --per or --timeout")
    return changes


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as aligned columns (a dash for None)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    cells = [[c for c in columns]] + [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
