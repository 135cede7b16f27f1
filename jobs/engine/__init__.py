"""The engine: the only code that writes `Job.status` and `Task.status`.

Each transition is one named function (transitions.py) that makes a conditional
write, reports whether it won and says in its docstring which race it settles. The
statements hand-written for speed are named and static, per database, in
sql/postgresql.sql and sql/sqlite.sql (queries.py loads them). The engine knows jobs,
tasks, logs and lock keys, and nothing of what a lock protects, of brokers or of the
apps built on jobs. docs/architecture.md lists the transitions and their statements.
"""

from .creation import NewJob, insert, insert_many
from .logs import append as append_log
from .logs import append_many as append_logs
from .logs import clean_message
from .transitions import (
    MOVES,
    Claim,
    Completion,
    LogLine,
    Swept,
    cancel,
    cancel_at_boundary,
    cancel_requested,
    claim,
    claim_state,
    complete,
    complete_and_claim,
    fail,
    fail_task,
    finish_task,
    heartbeat,
    requeue,
    retry,
    retry_delay,
    settle_and_claim,
    start_task,
    submit,
    sweep,
    task_progress,
    transition,
)

__all__ = [
    "MOVES",
    "Claim",
    "Completion",
    "LogLine",
    "NewJob",
    "Swept",
    "append_log",
    "append_logs",
    "cancel",
    "cancel_at_boundary",
    "cancel_requested",
    "claim",
    "claim_state",
    "clean_message",
    "complete",
    "complete_and_claim",
    "fail",
    "fail_task",
    "finish_task",
    "heartbeat",
    "insert",
    "insert_many",
    "requeue",
    "retry",
    "retry_delay",
    "settle_and_claim",
    "start_task",
    "submit",
    "sweep",
    "task_progress",
    "transition",
]
