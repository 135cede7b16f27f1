"""Domain errors; the API maps them to HTTP statuses, commands to one line."""

from django.core.exceptions import ValidationError


class JobError(Exception):
    """Base of Jobdeck's domain errors."""


class IllegalTransition(JobError):
    """A status change the state machine does not allow (HTTP 409)."""

    def __init__(self, job_id: int | None, action: str, current: str | None, allowed=()):
        self.job_id = job_id
        self.action = action
        self.current = current
        where = f"job #{job_id}" if job_id is not None else "job"
        if current is None:
            message = f"cannot {action} {where}: it no longer exists"
        else:
            message = f"cannot {action} {where}: it is {current}"
            if allowed:
                message += f" (only {', '.join(sorted(allowed))} jobs can be {_past(action)})"
        super().__init__(message)


class JobCancelled(JobError):
    """Raised inside a handler by `check_cancelled()` once a cancel was requested."""


def _past(action: str) -> str:
    return {"submit": "submitted", "cancel": "cancelled", "retry": "retried"}.get(
        action, action + "ed"
    )


def one_line(exc: ValidationError) -> str:
    """A ValidationError as one readable line: 'field: message; other: message'."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)
