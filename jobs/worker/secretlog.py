"""Masks the secrets of the jobs a worker is running in every Python logging record.

ctx.log() masks a job's secret config values before they are stored, but a
handler's own `logging` calls (or a library's: an HTTP client logging a URL that
carries a token) go to the cluster's output through the process's logging
handlers. While a job with secret fields runs, the runner registers its secret
values here (`watch` / `forget`) and puts a `SecretFilter` on every handler of the
process; the filter rewrites each record's message, traceback and stack with the
secrets masked (jobs.registry.mask_text: as typed, repr()-escaped, JSON- and
URL-encoded). Records from any thread are masked while the job runs.
"""

from __future__ import annotations

import logging
import threading

from .. import registry

_lock = threading.Lock()
_secrets: dict[int, tuple[str, ...]] = {}  # job id → its secret values, while it runs


def active_secrets() -> tuple[str, ...]:
    return tuple(value for values in list(_secrets.values()) for value in values)


class SecretFilter(logging.Filter):
    """Rewrites a record so that no running job's secret reaches any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = active_secrets()
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it
            return True
        masked = registry.mask_text(message, secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = registry.mask_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = registry.mask_text(record.stack_info, secrets)
        return True


_filter = SecretFilter()


def install() -> None:
    """Put the filter on every handler of the process (root's and named loggers'),
    once each; handlers configured later get it the next time a job is watched."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if _filter not in handler.filters:
                handler.addFilter(_filter)


def watch(job_id: int, job_type: str, config: object) -> None:
    """While job `job_id` runs, mask its secret config values in every log record."""
    secrets = registry.secret_values(job_type, config)
    if not secrets:
        return  # nothing to mask: no cost for jobs without secret fields
    with _lock:
        install()
        _secrets[job_id] = secrets


def forget(job_id: int) -> None:
    with _lock:
        _secrets.pop(job_id, None)
