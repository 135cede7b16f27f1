"""The job-type registry: job types are registered in code by name, never by import path.

A job type validates its config with a DRF serializer, names its ordered tasks,
runs each task and may analyse a config before it runs (drafts, the wizard).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ValidationError
from rest_framework import serializers

if TYPE_CHECKING:
    from .models import Task
    from .worker.context import JobContext


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


def get(name: str) -> JobType:
    """The job type registered as `name`; ValidationError naming the field otherwise."""
    try:
        return _registry[name]
    except (KeyError, TypeError):
        raise ValidationError({"job_type": [f"Unknown job type: {name!r}."]}) from None


def all_types() -> list[JobType]:
    return sorted(_registry.values(), key=lambda jt: jt.name)


def choices(user_creatable_only: bool = True) -> list[tuple[str, str]]:
    return [
        (jt.name, jt.label or jt.name)
        for jt in all_types()
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


def redact(job_type_name: str, config: Any) -> Any:
    """The config with the type's secret fields masked (for display anywhere)."""
    job_type = _registry.get(job_type_name)
    if not job_type or not job_type.secret_fields or not isinstance(config, dict):
        return config
    return {k: ("********" if k in job_type.secret_fields else v) for k, v in config.items()}


def redact_text(job_type_name: str, config: Any, text: str) -> str:
    """`text` with the values of the type's secret config fields masked (log lines,
    error messages and tracebacks a handler produces)."""
    job_type = _registry.get(job_type_name)
    if not job_type or not job_type.secret_fields or not isinstance(config, dict):
        return text
    for name in job_type.secret_fields:
        value = config.get(name)
        if value not in (None, "") and str(value) in text:
            text = text.replace(str(value), "********")
    return text


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
