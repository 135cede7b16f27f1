"""Fixtures of the API tests: clients per user, and a clean throttle cache per test."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _plain_http_and_fresh_throttles(settings):
    # With DEBUG off every http:// request is redirected to https://; the test
    # client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
    # The fixtures create several users; a fast hasher keeps setup cheap.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Throttle counters live in the cache, which outlives a test's database.
    cache.clear()
    yield
    cache.clear()


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def bob_client(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    return client_for(staff_user)


@pytest.fixture
def manager_client(manager) -> APIClient:
    return client_for(manager)


@pytest.fixture
def watcher(django_user_model):
    """A user who may see every job (view_all_jobs) but manage only their own."""
    u = django_user_model.objects.create_user("wes", password="wes-pass-123")
    u.user_permissions.add(Permission.objects.get(codename="view_all_jobs"))
    return u


@pytest.fixture
def watcher_client(watcher) -> APIClient:
    return client_for(watcher)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


def grant(user, *codenames: str):
    """`user` (fetched again, so no permission cache is stale) holding `codenames`."""
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def cleaner(django_user_model):
    """A user holding jobs.cleanup_jobs (the named right of cleanup), nothing else."""
    u = django_user_model.objects.create_user("cleo", password="cleo-pass-123")
    return grant(u, "cleanup_jobs")


@pytest.fixture
def cleaner_client(cleaner) -> APIClient:
    return client_for(cleaner)
