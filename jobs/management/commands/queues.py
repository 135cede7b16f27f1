"""`manage.py queues list|pause|resume|set`: queues' flow rules from the shell."""

from __future__ import annotations

from typing import Any

from jobs import flow
from jobs.models import FlowScope

from ._flow import FlowCommand


class Command(FlowCommand):
    help = "List, pause, resume and limit queues (docs/flow-control.md)."
    scope = FlowScope.QUEUE
    columns = [
        "name",
        "paused",
        "pending",
        "running",
        "oldest_pending_seconds",
        "concurrency_limit",
        "rate_limit",
        "rate_period_seconds",
    ]
    list_help = "every queue: paused, pending, running, oldest wait, limits"
    pause_help = "no cluster starts the queue's pending jobs until resumed"
    resume_help = "the queue's jobs start again"
    set_help = "set (or with 'none' clear) a queue's limits"
    timeout = False

    def rows(self, name: str | None = None) -> list[dict[str, Any]]:
        return flow.queue_figures([name] if name else ())
