"""Job templates: a named, saved job that a permitted user runs in one click or call.

Writes and runs go through these functions from every front door (admin, API, the
`schedules import` command); a schedule that uses a template fires it with
`template_job_fields`. A template's config is validated as a job's would be, and
saving one (or changing what it runs) needs the right to run its job type, as
running it does (job_create checks that again, for whoever runs it).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from . import exchange, permissions, queues, registry
from . import services as job_services
from .models import AuditAction, Job, JobTemplate
from .tags import clean_tags

FIELDS = ("name", "description", "job_type", "config", "release", "queue", "priority", "tags")
# What the job is: changing any of these needs the right to run the (new) job type.
JOB_FIELDS = ("job_type", "config", "release")


def template_values(template: JobTemplate | None) -> dict[str, Any]:
    """The editable fields of `template`, or a new one's defaults."""
    if template is None:
        return {
            "name": "",
            "description": "",
            "job_type": "",
            "config": {},
            "release": None,
            "queue": queues.DEFAULT_QUEUE,
            "priority": 0,
            "tags": [],
        }
    return {name: getattr(template, name) for name in FIELDS}


def template_clean(
    data: dict[str, Any], *, instance: JobTemplate | None = None, user: Any = None
) -> dict[str, Any]:
    """Validate a full set of template fields; return them cleaned.

    ValidationError names every bad field; then JobTypeDenied when `user` may not run
    the job type (on create, and when the job type, config or release change). A secret
    config value still reading as the mask keeps the stored one.
    """
    errors: dict[str, list[str]] = {}
    clean = dict(data)
    name = clean.get("name")
    name = name.strip() if isinstance(name, str) else ""
    clean["name"] = name
    if not name:
        errors["name"] = ["Enter a name."]
    elif len(name) > 200:
        errors["name"] = ["At most 200 characters."]
    else:
        taken = JobTemplate.objects.filter(name=name)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            errors["name"] = ["A template with this name already exists."]
    if not isinstance(clean.get("description"), str):
        errors["description"] = ["Must be text."]
    jt = None
    try:
        jt = registry.get(clean.get("job_type"))
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if jt is not None:
        if not jt.user_creatable:
            errors["job_type"] = [
                f"Jobs of type {jt.name!r} can only be created by Jobdeck itself."
            ]
        if instance is not None:
            clean["config"] = registry.unredact(jt.name, clean.get("config"), instance.config)
        try:
            clean["config"] = registry.validate_config(jt, clean.get("config"))
            if jt.requires_release and clean.get("release") is None:
                errors["release"] = [f"Job type {jt.name!r} needs a release."]
            else:
                clean["config"] = registry.validate_for_release(
                    jt, clean["config"], clean.get("release")
                )
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if clean.get("queue") not in queues.known_queues():
        known = ", ".join(sorted(queues.known_queues()))
        errors["queue"] = [f"Unknown queue {clean.get('queue')!r}; known: {known}."]
    priority = clean.get("priority")
    if isinstance(priority, bool) or not isinstance(priority, int) or not -100 <= priority <= 100:
        errors["priority"] = ["Priority must be an integer between -100 and 100."]
    try:
        clean["tags"] = clean_tags(clean.get("tags"))
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    assert jt is not None
    if instance is None or any(clean[f] != getattr(instance, f) for f in JOB_FIELDS):
        permissions.require_create(user, jt, release=clean["release"], config=clean["config"])
    return clean


def _owner(user: Any) -> Any:
    return user if user is not None and user.is_authenticated else None


@transaction.atomic
def template_create(*, user: Any = None, via: str = "system", **fields: Any) -> JobTemplate:
    """Create a template (validated like the job it makes)."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown template fields: {', '.join(sorted(unknown))}")
    clean = template_clean({**template_values(None), **fields}, user=user)
    template = JobTemplate.objects.create(**clean, created_by=_owner(user))
    job_services.audit(job=None, user=user, via=via, action=AuditAction.CREATED, target=template)
    return template


@transaction.atomic
def template_update(
    *, template: JobTemplate, user: Any = None, via: str = "system", **fields: Any
) -> JobTemplate:
    """Change some fields (the change is audited, secrets masked); the schedules that use
    the template keep their copy of its job type, config and release in step."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown template fields: {', '.join(sorted(unknown))}")
    locked = JobTemplate.objects.select_for_update().get(pk=template.pk)
    before = template_values(locked)
    clean = template_clean({**before, **fields}, instance=locked, user=user)
    changed = [name for name in FIELDS if clean[name] != before[name]]
    if not changed:
        return locked
    for name in changed:
        setattr(locked, name, clean[name])
    locked.save(update_fields=[*changed, "updated_at"])

    job_services.audit(
        job=None,
        user=user,
        via=via,
        action=AuditAction.CHANGED,
        target=locked,
        detail={
            "changes": {
                n: {
                    "old": job_services.audited_value(n, before),
                    "new": job_services.audited_value(n, clean),
                }
                for n in changed
            }
        },
    )
    if any(name in JOB_FIELDS for name in changed):
        # The reverse relation of scheduler.Schedule.template: jobs imports no scheduler.
        locked.schedules.update(
            job_type=locked.job_type, config=locked.config, release=locked.release
        )
    return locked


class TemplateInUse(ValidationError):
    """A template that schedules use cannot be deleted (400; the admin says which)."""


@transaction.atomic
def template_delete(*, template: JobTemplate, user: Any = None, via: str = "system") -> None:
    """Delete a template no schedule uses; the jobs it made are kept."""
    users = list(template.schedules.order_by("name").values_list("name", flat=True)[:6])
    if users:
        shown = ", ".join(repr(n) for n in users[:5]) + (", …" if len(users) > 5 else "")
        raise TemplateInUse(
            {"template": [f"Template {template.name!r} is used by schedules {shown}."]}
        )
    job_services.audit(job=None, user=user, via=via, action=AuditAction.DELETED, target=template)
    JobTemplate.objects.filter(pk=template.pk).delete()


def template_job_fields(template: JobTemplate) -> dict[str, Any]:
    """The job_create arguments that make `template`'s job."""
    return {
        "job_type": template.job_type,
        "config": template.config,
        "release": template.release,
        "queue": template.queue,
        "priority": template.priority,
        "tags": template.tags,
    }


@transaction.atomic
def template_run(*, template: JobTemplate, user: Any = None, via: str = "system") -> Job:
    """Create the template's job now, owned by `user`; job_create checks that `user`
    may run its type (JobTypeDenied, a 403, otherwise)."""
    if user is not None and not user.is_authenticated:
        raise PermissionDenied("Log in to run a template.")
    job = job_services.job_create(user=user, via=via, **template_job_fields(template))
    job_services.audit(
        job=job,
        user=user,
        via=via,
        action=AuditAction.RAN,
        target=template,
        detail={"template": template.pk, "name": template.name},
    )
    return job


# --- export and import (jobs.exchange) ---------------------------------------------------


class TemplateKind(exchange.Kind):
    """Job templates in an export: by name, the release by its slug."""

    name = "templates"
    label = "template"
    order = 10  # before schedules, which may name a template
    model = JobTemplate
    fields = FIELDS

    def queryset(self):
        return JobTemplate.objects.select_related("release")

    def export_entry(self, obj: JobTemplate, *, reveal: bool) -> dict[str, Any]:
        return {
            "name": obj.name,
            "description": obj.description,
            "job_type": obj.job_type,
            "config": exchange.masked_config(obj.job_type, obj.config, reveal=reveal),
            "release": getattr(obj.release, "slug", None),
            "queue": obj.queue,
            "priority": obj.priority,
            "tags": obj.tags,
        }

    def apply(self, existing: Any, entry: dict[str, Any], *, user: Any, via: str) -> JobTemplate:
        fields = {**template_values(None), **entry}
        release_model = JobTemplate._meta.get_field("release").related_model
        fields["release"] = exchange.related_by(
            release_model, "slug", entry.get("release"), "release"
        )
        if existing is None:
            exchange.refuse_masked_secrets(fields["job_type"], fields["config"])
            return template_create(user=user, via=via, **fields)
        return template_update(template=existing, user=user, via=via, **fields)
