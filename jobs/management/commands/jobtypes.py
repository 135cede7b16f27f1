"""`manage.py jobtypes list|pause|resume|set`: job types' flow rules from the shell."""

from __future__ import annotations

import argparse
from typing import Any

from jobs import flow, flow_changes
from jobs.cli import ActionCommand
from jobs.models import FlowScope

from ._flow import add_limit_options, limit_changes, table

COLUMNS = [
    "name",
    "paused",
    "running",
    "concurrency_limit",
    "rate_limit",
    "rate_period_seconds",
    "timeout_seconds",
    "concurrency_key",
    "concurrency_key_limit",
]


class Command(ActionCommand):
    help = "List, pause, resume and limit job types (docs/flow-control.md)."
    scope = FlowScope.TYPE

    def add_actions(self, sub: argparse._SubParsersAction) -> None:
        sub.add_parser("list", help="every job type's flow rules (the code's or overridden)")
        for name, text in (
            ("pause", "no job of the type starts until resumed"),
            ("resume", "the type's jobs start again"),
        ):
            sub.add_parser(name, help=text).add_argument("name")
        limits = sub.add_parser("set", help="override a type's limits ('none': the code's)")
        limits.add_argument("name")
        add_limit_options(limits, timeout=True)

    def do_list(self, options: dict[str, Any]) -> None:
        rows = flow.type_figures()
        self.emit(rows, table(rows, COLUMNS))

    def change(self, name: str, changes: dict[str, Any]) -> None:
        flow_changes.update(scope=self.scope, name=name, changes=changes, user=self.user, via="cli")
        (row,) = [r for r in flow.type_figures() if r["name"] == name]
        self.emit(row, table([row], COLUMNS))

    def do_pause(self, options: dict[str, Any]) -> None:
        self.change(options["name"], {"paused": True})

    def do_resume(self, options: dict[str, Any]) -> None:
        self.change(options["name"], {"paused": False})

    def do_set(self, options: dict[str, Any]) -> None:
        self.change(options["name"], limit_changes(options))
