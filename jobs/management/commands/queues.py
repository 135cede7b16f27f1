"""`manage.py queues list|pause|resume|set`: queues' flow rules from the shell."""

from __future__ import annotations

import argparse
from typing import Any

from jobs import flow, flow_changes
from jobs.cli import ActionCommand
from jobs.models import FlowScope

from ._flow import add_limit_options, limit_changes, table


class Command(ActionCommand):
    help = "List, pause, resume and limit queues (docs/flow-control.md)."
    scope = FlowScope.QUEUE

    def add_actions(self, sub: argparse._SubParsersAction) -> None:
        sub.add_parser("list", help="every queue: paused, pending, running, oldest wait, limits")
        for name, text in (
            ("pause", "no cluster starts the queue's pending jobs until resumed"),
            ("resume", "the queue's jobs start again"),
        ):
            sub.add_parser(name, help=text).add_argument("name")
        limits = sub.add_parser("set", help="set (or with 'none' clear) a queue's limits")
        limits.add_argument("name")
        add_limit_options(limits, timeout=False)

    def do_list(self, options: dict[str, Any]) -> None:
        rows = flow.queue_figures()
        self.emit(
            rows,
            table(
                rows,
                [
                    "name",
                    "paused",
                    "pending",
                    "running",
                    "oldest_pending_seconds",
                    "concurrency_limit",
                    "rate_limit",
                    "rate_period_seconds",
                ],
            ),
        )

    def change(self, name: str, changes: dict[str, Any]) -> None:
        flow_changes.update(scope=self.scope, name=name, changes=changes, user=self.user, via="cli")
        (row,) = [r for r in flow.queue_figures([name]) if r["name"] == name]
        self.emit(row, table([row], list(row)))

    def do_pause(self, options: dict[str, Any]) -> None:
        self.change(options["name"], {"paused": True})

    def do_resume(self, options: dict[str, Any]) -> None:
        self.change(options["name"], {"paused": False})

    def do_set(self, options: dict[str, Any]) -> None:
        self.change(options["name"], limit_changes(options))
