"""The job-type registry: job types are registered in code by name, never by import path.

A job type validates its config with a DRF serializer, names its ordered tasks,
runs each task and may analyse a config before it runs (drafts, the wizard).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, quote_plus

from django.core.exceptions import ValidationError
from rest_framework import serializers

if TYPE_CHECKING:
    from .models import Task
    from .worker.context import JobContext

# What a secret value is replaced with wherever it would be shown.
MASK = "********"


class EmptyConfig(serializers.Serializer):
    """For job types that take no configuration."""


class JobType:
    """Base class of job types. Subclass, set `name`, and decorate with `@register`."""

    name: ClassVar[str]
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_serializer: ClassVar[type[serializers.Serializer]] = EmptyConfig
    max_attempts: ClassVar[int] = 1
    # Exponential backoff base for automatic retries (seconds); None = the setting.
    retry_backoff: ClassVar[float | None] = None
    # Config keys whose values never leave the job row unredacted.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # False for carrier types (tasks.call) that only Jobdeck itself may create.
    user_creatable: ClassVar[bool] = True
    # True if the job acts on a release and needs one.
    requires_release: ClassVar[bool] = False
    # Who may create jobs of this type (and submit, retry or schedule them): a permission
    # ("app_label.codename"), or None for any signed-in user. jobs.permissions checks it
    # at every front door; rules that depend on the release or the config go in
    # may_create().
    create_permission: ClassVar[str | None] = None
    # Flow control (docs/flow-control.md), each overridable by an operator (a paused
    # type, other limits) except the key's. At most this many jobs of the type run at
    # once, across every cluster; None: no limit.
    concurrency_limit: ClassVar[int | None] = None
    # At most this many starts per this many seconds, e.g. (10, 60); None: no limit.
    rate_limit: ClassVar[tuple[int, int] | None] = None
    # A key formatted from the clean config ("account:{account_id}"): at most
    # concurrency_key_limit jobs of one key run at once, FIFO per key, and (with
    # key_rate_limit) at most so many start per period. A release's lock takes
    # precedence: its jobs run one at a time per release.
    concurrency_key: ClassVar[str | None] = None
    concurrency_key_limit: ClassVar[int] = 1
    key_rate_limit: ClassVar[tuple[int, int] | None] = None

    def may_create(self, user, release, config: dict) -> bool:
        """A rule beyond `create_permission` that needs the release or the clean config.

        Asked (by jobs.permissions) only for an active user who holds create_permission.
        """
        return True

    def validate(self, config: dict, release) -> dict:
        """Checks of a clean config that need the release or the database (a version
        that must exist, a job it refers to): raise ValidationError keyed by the config
        field (or `release`). Returns the config, possibly normalised."""
        return config

    def tasks(self, config: dict) -> list[str]:
        """Ordered task names. A type without explicit tasks runs as one task."""
        return [self.name]

    def run_task(self, ctx: JobContext, task: Task) -> Any:
        """Run one task; return a JSON-serialisable result. Raise to fail it."""
        return self.run(ctx)

    def run(self, ctx: JobContext) -> Any:
        raise NotImplementedError(f"{self.name} must implement run() or run_task()")

    def analyze(self, config: dict, release=None) -> dict:
        """What a run would do, without doing it (drafts, the wizard, dry runs)."""
        return {"tasks": self.tasks(config), "warnings": []}

    def result(self, task_results: list[Any]) -> Any:
        """The job's result from its tasks' results (default: the last one)."""
        return task_results[-1] if task_results else None

    def describe_config(self) -> list[dict]:
        """A JSON description of the config fields (API, admin's generated form)."""
        return [
            _describe_field(name, field) for name, field in self.config_serializer().fields.items()
        ]


_registry: dict[str, JobType] = {}


def register(cls: type[JobType]) -> type[JobType]:
    """Class decorator adding a job type to the registry."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in _registry and type(_registry[cls.name]) is not cls:
        raise ValueError(f"job type {cls.name!r} is already registered")
    _registry[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    _registry.pop(name, None)


def get(name: object) -> JobType:
    """The job type registered as `name`; ValidationError naming the field otherwise
    (`name` may be whatever a request carried: missing, a number, a list)."""
    job_type = _registry.get(name) if isinstance(name, str) else None
    if job_type is None:
        raise ValidationError({"job_type": [f"Unknown job type: {name!r}."]})
    return job_type


def all_types() -> list[JobType]:
    return sorted(_registry.values(), key=lambda jt: jt.name)


def choices(
    user_creatable_only: bool = True, types: Iterable[JobType] | None = None
) -> list[tuple[str, str]]:
    """(name, label) of `types` (default: all registered), for select boxes."""
    return [
        (jt.name, jt.label or jt.name)
        for jt in (all_types() if types is None else types)
        if jt.user_creatable or not user_creatable_only
    ]


def validate_config(job_type: JobType, config: Any) -> dict:
    """The config as the type's serializer cleans it, or ValidationError under `config`."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValidationError({"config": ["Config must be a JSON object."]})
    serializer = job_type.config_serializer(data=config)
    if not serializer.is_valid():
        raise ValidationError({"config": [_flatten(serializer.errors)]})
    return dict(serializer.data)


def validate_for_release(job_type: JobType, config: dict, release) -> dict:
    """The type's own `validate(config, release)`; its errors under `config` (one line,
    naming the config field) or `release`, like validate_config's."""
    try:
        return job_type.validate(config, release)
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise ValidationError({"config": [" ".join(exc.messages)]}) from None
        errors = exc.message_dict
        top = {k: v for k, v in errors.items() if k == "release"}
        nested = {k: v for k, v in errors.items() if k != "release"}
        if nested:
            top["config"] = [_flatten(nested)]
        raise ValidationError(top) from None


# --- secrets: masked wherever they could be shown -------------------------------------------


def redact(job_type_name: str, config: Any) -> Any:
    """The config with the type's secret fields masked (for display anywhere)."""
    job_type = _registry.get(job_type_name)
    if not job_type or not job_type.secret_fields or not isinstance(config, dict):
        return config
    return {k: (MASK if k in job_type.secret_fields else v) for k, v in config.items()}


def unredact(job_type_name: str, submitted: Any, stored: Any) -> Any:
    """`submitted` (a config edited from a masked copy) with each secret field that still
    reads MASK given back its stored value: an unchanged mask keeps the secret."""
    job_type = _registry.get(job_type_name)
    if not job_type or not isinstance(submitted, dict) or not isinstance(stored, dict):
        return submitted
    return {
        k: (stored[k] if k in job_type.secret_fields and v == MASK and k in stored else v)
        for k, v in submitted.items()
    }


def secret_values(job_type_name: str, config: Any) -> tuple[str, ...]:
    """The values of the type's secret config fields, as text (never to be shown)."""
    job_type = _registry.get(job_type_name)
    if not job_type or not job_type.secret_fields or not isinstance(config, dict):
        return ()
    values = (config.get(name) for name in job_type.secret_fields)
    return tuple(
        v if isinstance(v, str) else json.dumps(v)
        for v in values
        if v not in (None, "") and not isinstance(v, bool)
    )


@functools.lru_cache(maxsize=256)
def secret_forms(secret: str) -> tuple[str, ...]:
    """Every way `secret` can appear in text, longest first: as is, repr()/ascii()
    escaped (a backslash doubled, a newline as \\n), JSON-encoded, URL-encoded, as bytes,
    and each of those escaped once more (a repr inside a JSON log line)."""

    def escaped(value: str) -> set[str]:
        return {
            repr(value)[1:-1],
            ascii(value)[1:-1],
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            value.encode("unicode_escape").decode("ascii"),
        }

    first = {secret, quote(secret, safe=""), quote_plus(secret), *escaped(secret)}
    with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate has no bytes form
        first.add(repr(secret.encode())[2:-1])
    forms = {form for value in first for form in (value, *escaped(value))}
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every form of each secret (see secret_forms) replaced by MASK."""
    for secret in secrets:
        for form in secret_forms(secret):
            if form in text:
                text = text.replace(form, MASK)
    return text


def mask_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """A JSON-like value (a result, an analysis) with secrets masked in every string,
    key and number in it."""
    if not secrets:
        return value
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {mask_value(k, secrets): mask_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v, secrets) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return MASK if json.dumps(value) in secrets else value
    return value


def redact_text(job_type_name: str, config: Any, text: str) -> str:
    """`text` with the values of the type's secret config fields masked, in any form
    (log lines, error messages and tracebacks a handler produces)."""
    secrets = secret_values(job_type_name, config)
    return mask_text(text, secrets) if secrets else text


def redact_result(job_type_name: str, config: Any, value: Any) -> Any:
    """A handler's result (or a draft's analysis) with the job's secrets masked."""
    return mask_value(value, secret_values(job_type_name, config))


def _flatten(errors: Any, prefix: str = "") -> str:
    """DRF's nested error dict as one readable line: 'steps: must be >= 1; delay: …'."""
    if isinstance(errors, dict):
        return "; ".join(
            _flatten(v, f"{prefix}{k}: " if k != "non_field_errors" else prefix)
            for k, v in errors.items()
        )
    if isinstance(errors, list):
        return "; ".join(_flatten(v, prefix) for v in errors)
    return f"{prefix}{errors}"


def _describe_field(name: str, field: serializers.Field) -> dict:
    kind = {
        serializers.BooleanField: "boolean",
        serializers.IntegerField: "integer",
        serializers.FloatField: "number",
        serializers.DecimalField: "number",
        serializers.ChoiceField: "choice",
        serializers.ListField: "list",
        serializers.DictField: "object",
        serializers.JSONField: "json",
    }
    field_type = next((v for k, v in kind.items() if isinstance(field, k)), "string")
    info: dict[str, Any] = {
        "name": name,
        "type": field_type,
        "required": field.required,
        "label": str(field.label or name.replace("_", " ").capitalize()),
        "help_text": str(field.help_text or ""),
        "allow_null": field.allow_null,
    }
    if field.default is not serializers.empty:
        info["default"] = field.default() if callable(field.default) else field.default
    for attr in ("min_value", "max_value", "max_length"):
        if getattr(field, attr, None) is not None:
            info[attr] = getattr(field, attr)
    if isinstance(field, serializers.ChoiceField):
        info["choices"] = [str(c) for c in field.choices]
    return info
