"""What `manage.py queues` and `manage.py jobtypes` share."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError

from jobs import flow_changes
from jobs.cli import ActionCommand


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


class FlowCommand(ActionCommand):
    """`list|pause|resume|set` of queues (`manage.py queues`) or job types (`jobtypes`):
    the same actions over jobs.flow's figures and jobs.flow_changes, audited as "cli"."""

    scope: str
    columns: list[str]
    list_help: str
    pause_help: str
    resume_help: str
    set_help: str
    timeout: bool  # whether `set` takes --timeout (job types only)

    def rows(self, name: str | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def add_actions(self, sub: argparse._SubParsersAction) -> None:
        sub.add_parser("list", help=self.list_help)
        for name, text in (("pause", self.pause_help), ("resume", self.resume_help)):
            sub.add_parser(name, help=text).add_argument("name")
        limits = sub.add_parser("set", help=self.set_help)
        limits.add_argument("name")
        add_limit_options(limits, timeout=self.timeout)

    def do_list(self, options: dict[str, Any]) -> None:
        rows = self.rows()
        self.emit(rows, table(rows, self.columns))

    def change(self, name: str, changes: dict[str, Any]) -> None:
        flow_changes.update(scope=self.scope, name=name, changes=changes, user=self.user, via="cli")
        (row,) = [r for r in self.rows(name) if r["name"] == name]
        self.emit(row, table([row], self.columns))

    def do_pause(self, options: dict[str, Any]) -> None:
        self.change(options["name"], {"paused": True})

    def do_resume(self, options: dict[str, Any]) -> None:
        self.change(options["name"], {"paused": False})

    def do_set(self, options: dict[str, Any]) -> None:
        self.change(options["name"], limit_changes(options))
