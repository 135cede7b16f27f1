"""API tokens (django-rest-knox): stored hashed, expiring, revocable, never shown again.

The finding: a staff user holding only view permissions opened the DRF authtoken admin
(/admin/authtoken/tokenproxy/) and read every key in plain text, the superuser's too.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def login(username: str, password: str) -> str:
    response = APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1")


@pytest.fixture
def viewer(django_user_model):
    """Staff holding every view_* permission there is, and nothing else."""
    u = django_user_model.objects.create_user("vera", password="vera-pass-1", is_staff=True)
    u.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return u


def test_a_token_is_stored_only_as_a_digest(user):
    token = login("alice", "alice-pass-123")

    row = AuthToken.objects.get(user=user)
    assert token not in (row.digest, row.token_key) and row.token_key == token[:15]
    assert with_token(token).get("/api/jobs/").status_code == 200


def test_staff_with_every_view_permission_never_sees_anyones_token_in_the_admin(root, viewer):
    token = login("root", "root-pass-1")
    client = Client()
    client.force_login(viewer)

    assert client.get("/admin/authtoken/tokenproxy/").status_code == 404  # DRF's admin is gone
    listing = client.get("/admin/knox/authtoken/")
    assert listing.status_code == 200 and "root" in listing.content.decode()
    row = AuthToken.objects.get(user=root)
    detail = client.get(f"/admin/knox/authtoken/{row.pk}/change/")
    for page in (listing, detail, client.get("/admin/")):
        assert token not in page.content.decode()
        assert token[:15] not in page.content.decode()
    # Not even the superuser: the admin cannot show or make a token.
    client.force_login(root)
    assert token not in client.get(f"/admin/knox/authtoken/{row.pk}/change/").content.decode()
    assert client.get("/admin/knox/authtoken/add/").status_code == 403


def test_revoking_in_the_admin_is_deleting_the_row(root):
    token = login("root", "root-pass-1")
    client = Client()
    client.force_login(root)
    row = AuthToken.objects.get(user=root)

    response = client.post(
        "/admin/knox/authtoken/",
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert with_token(token).get("/api/jobs/").status_code == 401


def test_an_expired_token_is_refused_and_removed(user):
    token = login("alice", "alice-pass-123")
    AuthToken.objects.filter(user=user).update(expiry=timezone.now() - timedelta(seconds=1))

    assert with_token(token).get("/api/jobs/").status_code == 401
    assert not AuthToken.objects.filter(user=user).exists()


def test_a_token_expires_after_the_configured_ttl(user):
    login("alice", "alice-pass-123")

    row = AuthToken.objects.get(user=user)
    assert row.expiry is not None
    ttl = row.expiry - row.created
    assert timedelta(days=29) < ttl <= timedelta(days=30, seconds=5)


def test_logout_revokes_this_token_and_logout_all_every_token(user):
    first, second, third = (login("alice", "alice-pass-123") for _ in range(3))

    assert with_token(first).post("/api/auth/logout/").status_code == 204
    assert with_token(first).get("/api/jobs/").status_code == 401
    assert with_token(second).get("/api/jobs/").status_code == 200

    assert with_token(second).post("/api/auth/logout-all/").status_code == 204
    assert with_token(second).get("/api/jobs/").status_code == 401
    assert with_token(third).get("/api/jobs/").status_code == 401


def test_a_user_may_hold_only_so_many_live_tokens(user, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_LIMIT_PER_USER": 2}
    login("alice", "alice-pass-123")
    login("alice", "alice-pass-123")

    response = APIClient().post(
        "/api/auth/token/", {"username": "alice", "password": "alice-pass-123"}, format="json"
    )

    assert response.status_code == 403 and "detail" in response.json()
    assert AuthToken.objects.filter(user=user).count() == 2


@pytest.mark.parametrize(
    "header",
    [
        b"Token \xff\xfe\xfd",
        b"Token \x00" + b"a" * 63,
        b"Token " + b"g" * 64,
        b"Token " + "٣".encode() * 32,
        b"Token " + b"a" * 10_000,
        b"Token a b",
        b"Token",
    ],
)
def test_a_malformed_token_is_a_401_never_a_500(user, header):
    client = APIClient()
    response = client.get("/api/jobs/", HTTP_AUTHORIZATION=header.decode("latin-1"))

    assert response.status_code == 401
    assert "detail" in response.json()


@pytest.mark.django_db(transaction=True)
def test_existing_drf_tokens_are_migrated_hashed_and_keep_working(user):
    """Migration jobs.0007: each DRF key becomes a knox token of the same value, and
    DRF's plain-text table is dropped."""
    key = "0123456789abcdef0123456789abcdef01234567"
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {qn('authtoken_token')} ({qn('key')} varchar(40) PRIMARY KEY, "
            f"{qn('created')} varchar(40), {qn('user_id')} integer)"
        )
        cursor.execute(
            f"INSERT INTO {qn('authtoken_token')} VALUES (%s, %s, %s)", [key, "now", user.pk]
        )
    migration = importlib.import_module("jobs.migrations.0007_drf_tokens_to_knox")

    with connection.schema_editor() as editor:
        migration.forwards(apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    row = AuthToken.objects.get(user=user)
    assert row.digest != key and row.expiry > timezone.now()
    assert with_token(key).get("/api/jobs/").status_code == 200
