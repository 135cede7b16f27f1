"""Fixtures of the notification tests: a fresh rule cache, local webhooks allowed."""

from __future__ import annotations

import pytest

from notifications import services


@pytest.fixture(autouse=True)
def fresh_rule_cache():
    # Rules live in the test's transaction: no process-wide cache may outlive it.
    services.rules_changed()
    yield
    services.rules_changed()


@pytest.fixture
def local_webhooks(settings):
    settings.JOBDECK_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    return settings


@pytest.fixture
def secret_type():
    """A job type with a secret config field."""
    from rest_framework import serializers

    from jobs import registry

    class Config(serializers.Serializer):
        token = serializers.CharField()

    class WithSecret(registry.JobType):
        name = "test.notify-secret"
        config_serializer = Config
        secret_fields = ("token",)

        def run(self, ctx):
            raise RuntimeError(f"refused {ctx.config['token']}")

    registry.register(WithSecret)
    yield WithSecret.name
    registry.unregister(WithSecret.name)


from tests.support.schedule_fixtures import make_schedule  # noqa: E402, F401
