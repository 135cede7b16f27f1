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


class JobTimedOut(BaseException):
    """Raised inside a running handler when its job's attempt passes its timeout_seconds
    (jobs.worker.timeouts). A BaseException, like KeyboardInterrupt, so that a handler's
    `except Exception` cannot swallow it and keep working."""

    def __init__(self, seconds: int):
        self.seconds = seconds
        super().__init__(f"timed out after {seconds} s")


def _past(action: str) -> str:
    return {"submit": "submitted", "cancel": "cancelled", "retry": "retried"}.get(
        action, action + "ed"
    )


def one_line(exc: Exception) -> str:
    """Any error as one readable line; a ValidationError as 'field: message; other:
    message' (messages that name no field come bare). The one formatter of the
    commands, the admin's messages and the scheduler's skip reasons."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts = []
    for field, messages in exc.message_dict.items():
        text = " ".join(map(str, messages))
        parts.append(text if field in ("__all__", "non_field_errors") else f"{field}: {text}")
    return "; ".join(parts)


class ImmutableError(JobError):
    """A write to a record that never changes once saved (HTTP 405)."""


def validation_errors(exc: ValidationError) -> dict[str, list[str]]:
    """A ValidationError as `{field: [messages]}` (`non_field_errors` when it names
    no field): the one shape the API returns and bulk creation reports per item."""
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}
