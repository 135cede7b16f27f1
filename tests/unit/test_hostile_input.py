"""Hostile input never makes a 5xx, and never changes anything.

Every API list endpoint (every query parameter its schema documents, plus the
pagination ones) and every admin changelist (every parameter its filters, date
hierarchy, search, ordering and pagination links use) gets odd Unicode digits,
NUL bytes, out-of-range datetimes and UTC offsets, huge and negative numbers and
the like, one parameter at a time, as a superuser who sees everything. Each answer
must be below 500 (a 4xx, or the admin's redirect or page), and the database must
be exactly as before. Runs on SQLite and PostgreSQL (`./jobdeck test`).

The findings this started from: `GET /api/jobs/?created_by=²` ('²'.isdigit() is
true, int() raises), `?created_after=7098-12-01T03:35:31+19:34` (PostgreSQL:
time zone displacement out of range), the admin job list's `?q=²` and `?q=#²`, and
NUL bytes in admin filters (`?status__exact=%00`, `?job_type=%00`) on PostgreSQL.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.sessions.models import Session
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import services
from jobs.models import Job, JobStatus
from scheduler import services as schedule_services
from tests.support.job_factories import make_job
from tests.support.release_factories import make_release, make_version

pytestmark = pytest.mark.django_db

HOSTILE = [
    "²",  # isdigit() is true, int() refuses it
    "٣",  # an Arabic-Indic 3: int() accepts it
    "\x00",
    "-1",
    "-99999999999999999999",
    "99999999999999999999",
    "7098-12-01T03:35:31+19:34",  # an offset PostgreSQL cannot store
    "9999-12-31T23:59:59-23:59",  # in range, but not once in UTC
    "0001-01-01T00:00:00+14:00",
    "9999",
    "x" * 3000,
]


@pytest.fixture(autouse=True)
def _plain_http_and_fast_hashing(settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Throttling is not what this module is about: every request gets through.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1")


@pytest.fixture
def world(root, user, tmp_path, settings) -> dict[str, Any]:
    """A little of everything: jobs in every state, a release with a version, schedules
    of every kind, an API token."""
    from knox.models import AuthToken

    settings.MEDIA_ROOT = str(tmp_path / "media")
    for status in JobStatus.values:
        make_job(status, user=user)
    release = make_release("app", user=root)
    make_version(release, {"README.txt": b"hello\n", "bin/app": b"\x00\x01"})
    job = services.job_create(job_type="release.verify", release=release, user=root)
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=400))
    for kind, extra in (
        ("interval", {"interval_minutes": 5}),
        ("daily", {"time": "02:30"}),
        ("weekly", {"time": "23:15", "weekdays": [0, 4]}),
        ("cron", {"cron": "*/10 * * * *"}),
    ):
        schedule_services.schedule_create(
            name=f"every {kind}",
            job_type="demo.steps",
            config={"steps": 1},
            kind=kind,
            user=root,
            **extra,
        )
    AuthToken.objects.create(user=root)
    return {"release": release, "job": job, "schedule": schedule_services.Schedule.objects.first()}


def snapshot() -> dict[str, list]:
    """Every row of every table (sessions aside: logging in writes one)."""
    rows = {}
    for model in apps.get_models():
        if model is Session or model._meta.proxy:
            continue
        rows[model._meta.label] = list(model.objects.order_by("pk").values_list())
    return rows


def hostile_queries(names: set[str]):
    """(parameter, value) pairs, one hostile value of one parameter at a time."""
    for name in sorted(names):
        for value in HOSTILE:
            yield name, value


def assert_never_5xx(client, path: str, names: set[str]) -> None:
    failures = []
    for name, value in hostile_queries(names):
        # A failed statement aborts a PostgreSQL transaction: each request gets a
        # savepoint, so one failure is reported as one, not as all that follow.
        savepoint = transaction.savepoint_create()
        response = client.get(f"{path}?{urlencode({name: value})}")
        transaction.savepoint_rollback(savepoint)
        if response.status_code >= 500:
            failures.append((name, value[:40], response.status_code))
    assert not failures, f"{path}: {failures}"


# --- the API -----------------------------------------------------------------------------


def api_list_endpoints(world: dict[str, Any]) -> dict[str, set[str]]:
    """Every GET operation of the schema that returns a list or a page, with the query
    parameters the schema documents for it (path parameters filled with real ids)."""
    schema = APIClient().get("/api/schema/?format=json").json()
    ids = {
        "id": world["schedule"].pk,
        "release_pk": world["release"].pk,
        "number": 1,
        "name": "default",
    }
    endpoints: dict[str, set[str]] = {}
    for template, item in schema["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if "{id}" in template and template.startswith(("/api/jobs/", "/api/wizard/")):
            ids_here = {**ids, "id": world["job"].pk}
        elif "{id}" in template and template.startswith("/api/releases/"):
            ids_here = {**ids, "id": world["release"].pk}
        else:
            ids_here = ids
        path = re.sub(r"\{(\w+)\}", lambda m, i=ids_here: str(i[m.group(1)]), template)
        endpoints[path] = params | {"page_size", "cursor", "ordering"}
    return endpoints


def test_every_api_list_endpoint_answers_hostile_query_parameters_without_a_5xx(world, root):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(root)
    endpoints = api_list_endpoints(world)
    assert {"/api/jobs/", "/api/schedules/", "/api/releases/", "/api/job-types/"} <= set(endpoints)
    before = snapshot()

    for path, names in endpoints.items():
        assert_never_5xx(client, path, names)

    assert snapshot() == before


@pytest.mark.parametrize(
    "query",
    [
        {"created_by": "²"},
        {"created_by": "٣"},
        {"created_after": "7098-12-01T03:35:31+19:34"},
        {"created_before": "9999-12-31T23:59:59-23:59"},
        {"created_after": "0001-01-01T00:00:00+14:00"},
        {"job_type": "\x00"},
        {"release": "99999999999999999999"},
    ],
)
def test_the_job_list_filters_answer_odd_values_with_a_400_or_an_honest_empty_page(
    world, root, query
):
    client = APIClient()
    client.force_authenticate(root)

    response = client.get(f"/api/jobs/?{urlencode(query)}")

    assert response.status_code in (200, 400), response.content
    body = response.json()
    if response.status_code == 400:
        assert set(body) == set(query)  # names the parameter
    else:
        assert body["results"] == [] or list(query) == ["created_by"]


def test_created_by_takes_a_username_or_an_ascii_user_id(world, root, user):
    client = APIClient()
    client.force_authenticate(root)

    def ids(value: str) -> set[int]:
        response = client.get(f"/api/jobs/?{urlencode({'created_by': value})}")
        assert response.status_code == 200, response.content
        return {j["id"] for j in response.json()["results"]}

    alices = set(Job.objects.filter(created_by=user).values_list("pk", flat=True))
    assert ids(str(user.pk)) == ids("alice") == alices
    assert ids("²") == set() and ids("99999999999999999999") == set()


# --- the admin ---------------------------------------------------------------------------


def changelist_parameters(model_admin: admin.ModelAdmin, page: str) -> set[str]:
    """The query parameters a changelist's own links use (filters, sorting, pages,
    date hierarchy), plus search, ordering and page."""
    names = {"q", "o", "p"}
    for query in re.findall(r'href="\?([^"#]*)"', page):
        names |= set(parse_qs(html.unescape(query), keep_blank_values=True))
    if model_admin.date_hierarchy:
        field = model_admin.date_hierarchy
        names |= {f"{field}__year", f"{field}__month", f"{field}__day"}
    return names


ADMIN_MODELS = sorted(m._meta.label for m in admin.site._registry)


@pytest.mark.parametrize("label", ADMIN_MODELS)
def test_every_admin_changelist_answers_hostile_query_parameters_without_a_5xx(world, root, label):
    model = apps.get_model(label)
    model_admin = admin.site._registry[model]
    client = Client(raise_request_exception=False)
    client.force_login(root)
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    page = client.get(url)
    assert page.status_code == 200
    names = changelist_parameters(model_admin, page.content.decode())
    before = snapshot()

    assert_never_5xx(client, url, names)

    assert snapshot() == before


@pytest.mark.parametrize(
    "query",
    [
        {"q": "²"},
        {"q": "#²"},
        {"q": "99999999999999999999"},
        {"status__exact": "\x00"},
        {"job_type": "\x00"},
        {"created_at__year": "²"},
        {"created_at__year": "9999"},
        {"created_at__year": "9999", "created_at__month": "12", "created_at__day": "31"},
        {"created_by__id__exact": "99999999999999999999"},
    ],
)
def test_the_admin_job_list_answers_the_reported_queries_with_a_page_or_a_redirect(
    world, root, query
):
    client = Client()
    client.force_login(root)

    response = client.get(f"/admin/jobs/job/?{urlencode(query)}")

    assert response.status_code in (200, 302, 400), response.status_code


def test_the_admin_job_pages_answer_hostile_log_and_status_parameters(world, root):
    client = Client(raise_request_exception=False)
    client.force_login(root)
    job = world["job"]
    before = snapshot()

    for path in (f"/admin/jobs/job/{job.pk}/logs/", f"/admin/jobs/job/{job.pk}/status/"):
        assert_never_5xx(client, path, {"tail", "after"})

    assert snapshot() == before
