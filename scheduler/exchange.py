"""Schedules in an export (jobs.exchange): by name; a template by its name, a release by
its slug, the time as "HH:MM". A schedule that fires a template carries no job type,
config or release of its own in the document: they are the template's; one that fires a
workflow carries its spec (each node's secrets masked unless revealed)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from jobs import exchange
from jobs.models import JobTemplate

from . import selectors, services
from .models import Schedule

ENTRY_FIELDS = ("name", "template", *services.EDITABLE_FIELDS[2:])


class ScheduleKind(exchange.Kind):
    name = "schedules"
    label = "schedule"
    order = 20  # after templates
    model = Schedule
    fields = ENTRY_FIELDS

    def queryset(self):
        return selectors.schedule_list().select_related("release", "template")

    def export_entry(self, obj: Schedule, *, reveal: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": obj.name}
        if obj.template is not None:
            entry["template"] = obj.template.name
        elif obj.workflow is not None:
            entry["workflow"] = obj.workflow if reveal else services.redacted_workflow(obj.workflow)
        else:
            entry.update(
                job_type=obj.job_type,
                config=exchange.masked_config(obj.job_type, obj.config, reveal=reveal),
                release=getattr(obj.release, "slug", None),
            )
        entry.update(
            kind=obj.kind,
            interval_minutes=obj.interval_minutes,
            time=obj.time.strftime("%H:%M") if obj.time else None,
            weekdays=list(obj.weekdays or []),
            cron=obj.cron,
            timezone=obj.timezone,
            enabled=obj.enabled,
            misfire_policy=obj.misfire_policy,
            overlap_policy=obj.overlap_policy,
            dry_run=obj.dry_run,
        )
        return entry

    def apply(self, existing: Any, entry: dict[str, Any], *, user: Any, via: str) -> Schedule:
        fields = {**services.schedule_values(None), **entry}
        fields["template"] = exchange.related_by(
            JobTemplate, "name", entry.get("template"), "template"
        )
        release_model = Schedule._meta.get_field("release").related_model
        fields["release"] = exchange.related_by(
            release_model, "slug", entry.get("release"), "release"
        )
        if existing is None:
            if fields["template"] is None and fields.get("workflow") is None:
                exchange.refuse_masked_secrets(fields["job_type"], fields["config"])
            for node in _nodes(fields.get("workflow")):
                try:
                    exchange.refuse_masked_secrets(str(node.get("job_type")), node.get("config"))
                except ValidationError as exc:
                    raise ValidationError({"workflow": exc.messages}) from None
            return services.schedule_create(user=user, via=via, **fields)
        return services.schedule_update(schedule=existing, user=user, via=via, **fields)


def _nodes(spec: Any) -> list[dict[str, Any]]:
    """The node specs of a workflow spec (none if it is no spec: the service says why)."""
    jobs = spec.get("jobs") if isinstance(spec, dict) else None
    if not isinstance(jobs, dict):
        return []
    return [node for node in jobs.values() if isinstance(node, dict)]
