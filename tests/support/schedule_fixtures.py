"""Factories for schedule tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler import services
from scheduler.models import Schedule

NOW = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def make_schedule(user):
    counter = iter(range(1, 10_000))

    def make(now: datetime = NOW, **fields: Any) -> Schedule:
        values: dict[str, Any] = {
            "name": f"schedule {next(counter)}",
            "job_type": "demo.steps",
            "config": {"steps": 1, "delay": 0},
            "kind": "interval",
            "interval_minutes": 1,
        }
        values.update(fields)
        return services.schedule_create(user=values.pop("user", user), now=now, **values)

    return make


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """The shared user fixtures hash passwords; the default hasher costs ~1 s per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def plain_http(settings):
    """With DEBUG off every http:// request is redirected to https:// (tests speak http).

    Throttle counters live in the cache, which outlives a test's database: start fresh.
    """
    from django.core.cache import cache

    settings.SECURE_SSL_REDIRECT = False
    cache.clear()
    yield
    cache.clear()
