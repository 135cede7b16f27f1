"""Export and import of configuration: schedules, job templates, and any kind an app registers.

A document is one JSON (or YAML) object: `{"jobdeck": "export", "version": 1,
"secrets": "masked" | "revealed", "<kind>": [entry, …], …}`; each entry names its object
(`name`, unique per kind). Import is

- **idempotent by name**: an entry whose object exists updates it, otherwise creates it;
  importing the same document twice changes nothing the second time;
- **all or nothing**: every entry is applied inside one transaction (each in its own
  savepoint, so every bad entry is reported); one invalid entry rolls all of them back
  and the error names the kind, the entry (index and name) and the field;
- **a diff**: what each entry creates or changes, field by field (secrets masked);
- **a dry run** on request: the same work, always rolled back.

Secret config fields are exported masked (`********`) unless a superuser asks for them
(`reveal_secrets`); importing a masked secret keeps the stored value of an existing
object and is refused for a new one (there is no value to keep).

Kinds register themselves from their app's `AppConfig.ready()` with `register_kind`
(jobs: templates; scheduler: schedules); their `order` says which import first (a
schedule may name a template of the same document). A kind is a small class: see
`Kind`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from . import registry
from .exceptions import validation_errors

FORMAT = "export"
VERSION = 1
MASK = registry.MASK
FORMATS = ("json", "yaml")


class Kind:
    """One exportable kind of object. Subclass, set the class attributes, register.

    `export_entry(obj, reveal)` → the entry (plain JSON values, `name` first; secrets
    masked unless `reveal`); `apply(existing, entry, user, via)` creates (existing is
    None) or updates the object through the app's services and returns it, raising
    ValidationError keyed by the entry's field names, or PermissionDenied.
    """

    name: ClassVar[str]  # the document's key: "schedules"
    label: ClassVar[str]  # "schedule"
    order: ClassVar[int] = 100  # lower kinds import first
    model: ClassVar[type[models.Model]]
    fields: ClassVar[tuple[str, ...]]  # the keys an entry may have (name among them)

    def queryset(self) -> models.QuerySet:
        return self.model._default_manager.all()

    def find(self, name: str) -> models.Model | None:
        return self.queryset().filter(name=name).first()

    def export_entry(self, obj: Any, *, reveal: bool) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, existing: Any, entry: dict[str, Any], *, user: Any, via: str) -> Any:
        raise NotImplementedError

    def may_write(self, user: Any, *, create: bool) -> bool:
        """Django's model permission to add (create) or change; None is Jobdeck itself."""
        if user is None:
            return True
        opts = self.model._meta
        action = "add" if create else "change"
        return bool(
            user.is_active and user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")
        )


_kinds: dict[str, Kind] = {}


def register_kind(kind: Kind | type[Kind]) -> None:
    instance = kind() if isinstance(kind, type) else kind
    _kinds[instance.name] = instance


def kinds(names: Iterable[str] | None = None) -> list[Kind]:
    """The registered kinds in import order (only `names`, if given: unknown → ValidationError)."""
    if names is not None:
        names = list(names)
        unknown = [n for n in names if n not in _kinds]
        if unknown:
            known = ", ".join(sorted(_kinds))
            raise ValidationError({"kind": [f"Unknown kind {', '.join(unknown)}; known: {known}."]})
    chosen = [k for k in _kinds.values() if names is None or k.name in names]
    return sorted(chosen, key=lambda k: (k.order, k.name))


# --- helpers for kinds --------------------------------------------------------------------


def masked_config(job_type: str, config: Any, *, reveal: bool) -> Any:
    return config if reveal else registry.redact(job_type, config)


def refuse_masked_secrets(job_type: str, config: Any, stored: Any = None) -> None:
    """A new object's config cannot keep a masked secret: there is no stored value."""
    try:
        jt = registry.get(job_type)
    except ValidationError:
        return  # the service names the unknown job type
    if not isinstance(config, dict):
        return
    stored = stored if isinstance(stored, dict) else {}
    masked = [k for k in jt.secret_fields if config.get(k) == MASK and k not in stored]
    if masked:
        raise ValidationError(
            {
                "config": [
                    f"{', '.join(masked)}: the secret is masked (********) and there is no "
                    "stored value to keep; export with revealed secrets, or set it."
                ]
            }
        )


def related_by(model: type[models.Model], field_name: str, value: Any, entry_field: str) -> Any:
    """The `model` row whose `field_name` is `value` (None for None), or ValidationError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError({entry_field: [f"Give the {field_name} as text."]})
    obj = model._default_manager.filter(**{field_name: value}).first()
    if obj is None:
        raise ValidationError({entry_field: [f"No {model._meta.verbose_name} {value!r}."]})
    return obj


# --- export ---------------------------------------------------------------------------------


def may_reveal(user: Any) -> bool:
    """Only a superuser may export secrets in clear."""
    return bool(user is not None and user.is_active and user.is_superuser)


def export_document(
    *,
    user: Any,
    kind_names: Iterable[str] | None = None,
    names: Iterable[str] | None = None,
    reveal_secrets: bool = False,
    querysets: dict[str, models.QuerySet] | None = None,
) -> dict[str, Any]:
    """The export of every registered kind (or `kind_names`), by name; with `names`, only
    the objects so named; `querysets` narrows a kind to chosen rows (admin actions)."""
    if reveal_secrets and not may_reveal(user):
        raise PermissionDenied("Only a superuser may export secrets unmasked.")
    doc: dict[str, Any] = {
        "jobdeck": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "secrets": "revealed" if reveal_secrets else "masked",
    }
    wanted = set(names) if names is not None else None
    for kind in kinds(kind_names):
        qs = (querysets or {}).get(kind.name, kind.queryset())
        if wanted is not None:
            qs = qs.filter(name__in=wanted)
        doc[kind.name] = [
            kind.export_entry(obj, reveal=reveal_secrets) for obj in qs.order_by("name")
        ]
    return doc


def dump(doc: dict[str, Any], fmt: str = "json") -> str:
    """The document as JSON (indented) or YAML text."""
    plain = json.loads(json.dumps(doc, cls=DjangoJSONEncoder))
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
    return json.dumps(plain, indent=2, ensure_ascii=False) + "\n"


def parse(text: str, fmt: str | None = None) -> dict[str, Any]:
    """A document from JSON or YAML text (`fmt` None: JSON if it parses, else YAML)."""
    data: Any
    if fmt in (None, "json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            if fmt == "json":
                raise ImportRefused(document=[f"Not valid JSON: {exc}"]) from None
            data = _yaml(text)
    else:
        data = _yaml(text)
    if not isinstance(data, dict):
        raise ImportRefused(document=["The document must be an object (a mapping)."])
    return data


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ImportRefused(
            document=[f"Not valid JSON or YAML: {str(exc).splitlines()[0]}"]
        ) from None


# --- import ---------------------------------------------------------------------------------


@dataclass
class Change:
    kind: str
    name: str
    action: str  # "create" | "update" | "unchanged"
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "changes": self.changes,
        }


@dataclass
class ImportResult:
    dry_run: bool
    changes: list[Change]

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "unchanged": 0}
        for change in self.changes:
            out[change.action] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "summary": self.counts(),
            "changes": [c.as_dict() for c in self.changes],
        }

    def lines(self) -> list[str]:
        """The diff, one line per entry and per changed field."""
        out: list[str] = []
        for c in self.changes:
            mark = {"create": "+", "update": "~", "unchanged": "="}[c.action]
            out.append(f"{mark} {c.kind} {c.name!r}: {c.action}")
            if c.action == "update":
                for name, diff in c.changes.items():
                    out.append(f"    {name}: {_short(diff['old'])} → {_short(diff['new'])}")
        n = self.counts()
        head = "dry run, nothing changed: would " if self.dry_run else ""
        out.append(
            f"{head}{n['create']} to create, {n['update']} to update, {n['unchanged']} unchanged."
            if self.dry_run
            else f"{n['create']} created, {n['update']} updated, {n['unchanged']} unchanged."
        )
        return out


def _short(value: Any) -> str:
    text = json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "…"


class ImportRefused(ValidationError):
    """Nothing was imported. `errors`: {kind: {index: {field: [messages]}}}, plus
    `document` for problems with the document as a whole; `names` the entries' names."""

    def __init__(
        self,
        errors: dict[str, dict[int, dict[str, list[str]]]] | None = None,
        *,
        document: list[str] | None = None,
        names: dict[tuple[str, int], str] | None = None,
    ) -> None:
        self.errors = errors or {}
        self.document = document or []
        self.names = names or {}
        super().__init__({"import": self.summary()})

    def summary(self) -> list[str]:
        """One message per problem: `schedules[2] 'nightly': cron: …`."""
        out = list(self.document)
        for kind, entries in self.errors.items():
            for index, fields in entries.items():
                name = self.names.get((kind, index))
                where = f"{kind}[{index}]" + (f" {name!r}" if name else "")
                for fname, messages in fields.items():
                    prefix = "" if fname == "non_field_errors" else f"{fname}: "
                    out.append(f"{where}: {prefix}{' '.join(messages)}")
        return out

    def as_api(self) -> dict[str, Any]:
        """The API's error shape: `{"schedules": {"2": {"cron": […]}}}`."""
        body: dict[str, Any] = {
            kind: {str(i): fields for i, fields in entries.items()}
            for kind, entries in self.errors.items()
        }
        if self.document:
            body["non_field_errors"] = self.document
        return body


def _entries(doc: dict[str, Any], chosen: Sequence[Kind]) -> dict[str, list[Any]]:
    problems: list[str] = []
    if doc.get("jobdeck", FORMAT) != FORMAT:
        problems.append(f"Not a Jobdeck export (jobdeck: {doc.get('jobdeck')!r}).")
    if doc.get("version", VERSION) != VERSION:
        problems.append(
            f"Unsupported version {doc.get('version')!r}; this Jobdeck reads {VERSION}."
        )
    meta = {"jobdeck", "version", "exported_at", "secrets"}
    known = {k.name for k in kinds()}
    unknown = sorted(set(doc) - meta - known)
    if unknown:
        problems.append(f"Unknown kind {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    out: dict[str, list[Any]] = {}
    for kind in chosen:
        value = doc.get(kind.name, [])
        if value is None:
            value = []
        if not isinstance(value, list):
            problems.append(f"{kind.name}: must be a list of entries.")
            continue
        out[kind.name] = value
    if problems:
        raise ImportRefused(document=problems)
    return out


def _check_shape(kind: Kind, entry: Any, seen: set[str]) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, dict):
        raise ValidationError({"non_field_errors": ["An entry must be an object."]})
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError({"name": ["Every entry needs a name (text)."]})
    unknown = sorted(set(entry) - set(kind.fields))
    if unknown:
        raise ValidationError(
            {f: [f"Unknown field; a {kind.label} has: {', '.join(kind.fields)}."] for f in unknown}
        )
    if name in seen:
        raise ValidationError({"name": [f"{name!r} appears more than once in the document."]})
    seen.add(name)
    return name, entry


def import_document(
    doc: dict[str, Any],
    *,
    user: Any = None,
    via: str = "system",
    dry_run: bool = False,
    kind_names: Iterable[str] | None = None,
) -> ImportResult:
    """Apply `doc` all or nothing (see the module docstring); ImportRefused if any entry
    is bad, with nothing changed. A dry run does the same work and rolls it back."""
    chosen = kinds(kind_names)
    entries = _entries(doc, chosen)
    errors: dict[str, dict[int, dict[str, list[str]]]] = {}
    names: dict[tuple[str, int], str] = {}
    changes: list[Change] = []
    with transaction.atomic():
        for kind in chosen:
            seen: set[str] = set()
            for index, raw in enumerate(entries.get(kind.name, [])):
                if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                    names[(kind.name, index)] = raw["name"]
                try:
                    name, entry = _check_shape(kind, raw, seen)
                    with transaction.atomic():  # a savepoint: a bad entry undoes only itself
                        changes.append(_apply(kind, name, entry, user=user, via=via))
                except ValidationError as exc:
                    errors.setdefault(kind.name, {})[index] = validation_errors(exc)
                except PermissionDenied as exc:
                    errors.setdefault(kind.name, {})[index] = {
                        "non_field_errors": [str(exc) or "Permission denied."]
                    }
        if errors:
            raise ImportRefused(errors, names=names)  # rolls back every entry
        if dry_run:
            transaction.set_rollback(True)
    return ImportResult(dry_run=dry_run, changes=changes)


def _apply(kind: Kind, name: str, entry: dict[str, Any], *, user: Any, via: str) -> Change:
    existing = kind.find(name)
    if not kind.may_write(user, create=existing is None):
        action = "add" if existing is None else "change"
        raise PermissionDenied(f"you may not {action} {kind.label}s")
    before = kind.export_entry(existing, reveal=True) if existing is not None else None
    obj = kind.apply(existing, entry, user=user, via=via)
    obj = kind.queryset().get(pk=obj.pk)
    after = kind.export_entry(obj, reveal=True)
    if before is None:
        return Change(kind.name, name, "create")
    masked_after = kind.export_entry(obj, reveal=False)
    masked_before = _mask_like(before, masked_after)
    diff = {
        f: {"old": masked_before.get(f), "new": masked_after.get(f)}
        for f in after
        if before.get(f) != after.get(f)
    }
    for d in diff.values():  # a secret changed behind identical masks
        if d["old"] == d["new"]:
            d["new"] = f"{_short(d['new'])} (a secret changed)"
    return Change(kind.name, name, "update" if diff else "unchanged", diff)


def _mask_like(revealed: dict[str, Any], masked_reference: dict[str, Any]) -> dict[str, Any]:
    """`revealed` with the same secret fields masked as in `masked_reference`."""
    out = dict(revealed)
    for key, value in masked_reference.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {k: (MASK if value.get(k) == MASK else v) for k, v in out[key].items()}
    return out
