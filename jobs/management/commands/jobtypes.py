"""`manage.py jobtypes list|pause|resume|set`: job types' flow rules from the shell."""

from __future__ import annotations

from typing import Any

from jobs import flow
from jobs.models import FlowScope

from ._flow import FlowCommand


class Command(FlowCommand):
    help = "List, pause, resume and limit job types (docs/flow-control.md)."
    scope = FlowScope.TYPE
    columns = [
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
    list_help = "every job type's flow rules (the code's or overridden)"
    pause_help = "no job of the type starts until resumed"
    resume_help = "the type's jobs start again"
    set_help = "override a type's limits ('none': the code's)"
    timeout = True

    def rows(self, name: str | None = None) -> list[dict[str, Any]]:
        return flow.type_figures()
