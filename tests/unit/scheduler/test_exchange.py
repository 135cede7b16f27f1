"""Export and import of schedules and templates: round trips, all or nothing, diffs, secrets."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from jobs import exchange, jobtemplates
from jobs.models import AuditEvent, JobTemplate
from scheduler import services
from scheduler.models import Schedule
from tests.support.search_jobtypes import ACCOUNT, account_type

pytestmark = pytest.mark.django_db

SECRET = "hunter2-secret"


@pytest.fixture(autouse=True)
def account():
    with account_type() as jt:
        yield jt


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "r@example.com", "root-pass-1")


@pytest.fixture
def world(root):
    """A template, a schedule of every kind, one firing the template, one with a secret."""
    template = jobtemplates.template_create(
        name="billing", job_type=ACCOUNT, config={"account_id": 1, "token": SECRET}, tags=["b"]
    )
    services.schedule_create(
        name="every 5",
        job_type="demo.steps",
        config={"steps": 2},
        kind="interval",
        interval_minutes=5,
        user=root,
    )
    services.schedule_create(
        name="nightly",
        job_type=ACCOUNT,
        config={"account_id": 7, "token": SECRET},
        kind="daily",
        time="02:30",
        timezone="Europe/Paris",
        dry_run=True,
        user=root,
    )
    services.schedule_create(
        name="weekly",
        template=template,
        kind="weekly",
        time="23:15",
        weekdays=[4, 0],
        overlap_policy="queue",
        user=root,
    )
    services.schedule_create(name="cron", job_type="demo.steps", config={"steps": 1},
                             kind="cron", cron="*/10 * * * *", enabled=False,
                             misfire_policy="run_once", user=root)  # fmt: skip
    return template


def entries(doc) -> dict:
    return {k: doc[k] for k in ("templates", "schedules")}


def test_export_delete_import_gives_back_identical_schedules(world, root):
    before = exchange.export_document(user=root, reveal_secrets=True)
    assert [s["name"] for s in before["schedules"]] == ["cron", "every 5", "nightly", "weekly"]
    Schedule.objects.all().delete()
    JobTemplate.objects.all().delete()

    result = exchange.import_document(json.loads(exchange.dump(before)), user=root)

    assert result.counts() == {"create": 5, "update": 0, "unchanged": 0}
    after = exchange.export_document(user=root, reveal_secrets=True)
    assert entries(after) == entries(before)
    assert Schedule.objects.get(name="nightly").config["token"] == SECRET
    assert Schedule.objects.get(name="weekly").template.name == "billing"


def test_the_yaml_round_trip_through_the_command(world, root, tmp_path, capsys):
    path = tmp_path / "export.yaml"
    call_command("schedules", "export", "--format", "yaml", "-o", str(path), "--user", "root",
                 "--reveal-secrets")  # fmt: skip
    before = exchange.export_document(user=root, reveal_secrets=True)
    assert path.read_text().startswith("jobdeck: export\n")
    Schedule.objects.all().delete()
    JobTemplate.objects.all().delete()

    call_command("schedules", "import", str(path), "--user", "root")

    out = capsys.readouterr().out
    assert "+ schedules 'nightly': create" in out
    assert "5 created, 0 updated, 0 unchanged." in out
    assert entries(exchange.export_document(user=root, reveal_secrets=True)) == entries(before)


def test_importing_again_changes_nothing(world, root):
    doc = exchange.export_document(user=root, reveal_secrets=True)
    events = AuditEvent.objects.count()

    result = exchange.import_document(doc, user=root)

    assert result.counts() == {"create": 0, "update": 0, "unchanged": 5}
    assert AuditEvent.objects.count() == events


def test_an_import_prints_the_diff_of_what_changes(world, root):
    doc = exchange.export_document(user=root)
    nightly = next(s for s in doc["schedules"] if s["name"] == "nightly")
    nightly["time"] = "03:00"
    nightly["config"]["account_id"] = 8

    result = exchange.import_document(doc, user=root)

    change = next(c for c in result.changes if c.name == "nightly")
    assert change.action == "update"
    assert change.changes["time"] == {"old": "02:30", "new": "03:00"}
    assert change.changes["config"]["new"] == {
        "account_id": 8, "region": "eu", "db": {}, "token": "********"
    }  # fmt: skip
    lines = result.lines()
    assert "~ schedules 'nightly': update" in lines
    assert '    time: "02:30" → "03:00"' in lines
    assert SECRET not in "\n".join(lines)
    # The masked secret kept its stored value.
    assert Schedule.objects.get(name="nightly").config["token"] == SECRET


def test_a_bad_import_changes_nothing_and_names_the_entry_and_field(world, root):
    doc = exchange.export_document(user=root, reveal_secrets=True)
    doc["templates"][0]["priority"] = 3  # a good change, rolled back with the rest
    doc["schedules"].append({"name": "new one", "job_type": "demo.steps", "kind": "cron",
                             "config": {"steps": 1}, "cron": "61 * * * *"})  # fmt: skip
    doc["schedules"][0]["timezone"] = "Mars/Olympus"
    before = exchange.export_document(user=root, reveal_secrets=True)
    events = AuditEvent.objects.count()

    with pytest.raises(exchange.ImportRefused) as exc:
        exchange.import_document(doc, user=root)

    assert set(exc.value.errors["schedules"]) == {0, 4}
    assert "timezone" in exc.value.errors["schedules"][0]
    assert "cron" in exc.value.errors["schedules"][4]
    summary = exc.value.summary()
    assert summary[0].startswith("schedules[0] 'cron': timezone: Unknown IANA timezone")
    assert summary[1].startswith("schedules[4] 'new one': cron: ")
    assert exchange.export_document(user=root, reveal_secrets=True) | {"exported_at": 0} == (
        before | {"exported_at": 0}
    )
    assert not Schedule.objects.filter(name="new one").exists()
    assert AuditEvent.objects.count() == events


def test_the_command_refuses_a_bad_file_in_one_line_and_exits_non_zero(world, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schedules": [{"name": "x", "kind": "hourly", "colour": 1}]}))

    with pytest.raises(CommandError) as exc:
        call_command("schedules", "import", str(path))

    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("import refused, nothing changed: schedules[0] 'x': colour: Unknown")
    assert not Schedule.objects.filter(name="x").exists()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[1, 2]", "must be an object"),
        ("{bad", "Not valid JSON or YAML"),
        ('{"jobdeck": "export", "version": 9}', "Unsupported version 9"),
        ('{"notification_rulez": []}', "Unknown kind notification_rulez"),
        ('{"schedules": {"a": 1}}', "schedules: must be a list"),
        ('{"schedules": [{"name": "a"}, {"name": "a"}]}', "appears more than once"),
        ('{"schedules": [3]}', "An entry must be an object"),
    ],
)
def test_malformed_documents_are_refused(text, problem):
    with pytest.raises(exchange.ImportRefused) as exc:
        exchange.import_document(exchange.parse(text))

    assert problem in "; ".join(exc.value.summary())


def test_a_new_object_with_a_masked_secret_is_refused(world, root):
    doc = exchange.export_document(user=root)  # masked
    Schedule.objects.filter(name="nightly").delete()

    with pytest.raises(exchange.ImportRefused) as exc:
        exchange.import_document(doc, user=root)

    assert "token: the secret is masked" in exc.value.errors["schedules"][2]["config"][0]


def test_secrets_are_masked_unless_a_superuser_asks(world, root, user):
    masked = json.dumps(exchange.export_document(user=user))
    assert SECRET not in masked and "********" in masked
    with pytest.raises(PermissionDenied):
        exchange.export_document(user=user, reveal_secrets=True)
    with pytest.raises(PermissionDenied):
        exchange.export_document(user=None, reveal_secrets=True)  # the shell names a superuser
    assert SECRET in json.dumps(exchange.export_document(user=root, reveal_secrets=True))


def test_importing_needs_the_model_permissions(world, root, user):
    doc = exchange.export_document(user=root, reveal_secrets=True)
    doc["schedules"][0]["enabled"] = True

    with pytest.raises(exchange.ImportRefused) as exc:
        exchange.import_document(doc, user=user)

    assert exc.value.errors["templates"][0] == {
        "non_field_errors": ["you may not change templates"]
    }
    assert exc.value.errors["schedules"][0] == {
        "non_field_errors": ["you may not change schedules"]
    }
    user.user_permissions.add(
        Permission.objects.get(codename="change_schedule", content_type__app_label="scheduler")
    )
    user = type(user).objects.get(pk=user.pk)  # a fresh permission cache
    result = exchange.import_document(doc, user=user, kind_names=["schedules"])
    assert [c.name for c in result.changes if c.action == "update"] == ["cron"]


def test_a_dry_run_reports_and_changes_nothing(world, root):
    doc = exchange.export_document(user=root)
    doc["schedules"][1]["interval_minutes"] = 15

    result = exchange.import_document(doc, user=root, dry_run=True)

    assert [c.name for c in result.changes if c.action == "update"] == ["every 5"]
    assert (
        result.lines()[-1]
        == "dry run, nothing changed: would 0 to create, 1 to update, 4 unchanged."
    )
    assert Schedule.objects.get(name="every 5").interval_minutes == 5


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_exports_and_imports_the_same_document(world, root):
    exported = api(root).get("/api/export/?reveal_secrets=true")
    assert exported.status_code == 200, exported.content
    doc = exported.json()
    Schedule.objects.all().delete()
    JobTemplate.objects.all().delete()

    dry = api(root).post("/api/import/?dry_run=true", doc, format="json")
    assert dry.status_code == 200, dry.content
    assert dry.json()["summary"] == {"create": 5, "update": 0, "unchanged": 0}
    assert not Schedule.objects.exists()

    done = api(root).post("/api/import/", doc, format="json")
    assert done.status_code == 200
    assert entries(api(root).get("/api/export/?reveal_secrets=true").json()) == entries(doc)


def test_the_api_refuses_a_bad_import_with_kind_index_and_field(world, root):
    doc = {"schedules": [{"name": "ok", "job_type": "demo.steps", "config": {"steps": 1},
                          "kind": "interval", "interval_minutes": 5},
                         {"name": "bad", "job_type": "demo.steps", "kind": "daily",
                          "time": "25:00"}]}  # fmt: skip

    response = api(root).post("/api/import/", doc, format="json")

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["schedules"]
    assert set(body["schedules"]["1"]) == {"config", "time"}
    assert not Schedule.objects.filter(name="ok").exists()


def test_the_api_keeps_secrets_for_superusers_and_checks_its_parameters(world, user):
    assert api(user).get("/api/export/?reveal_secrets=true").status_code == 403
    assert api(user).get("/api/export/?kind=nope").status_code == 400
    assert api(user).get("/api/export/?other=1").status_code == 400
    assert api(user).post("/api/import/?dry_run=maybe", {}, format="json").status_code == 400
    only = api(user).get("/api/export/?kind=templates").json()
    assert "schedules" not in only and only["templates"][0]["config"]["token"] == "********"
