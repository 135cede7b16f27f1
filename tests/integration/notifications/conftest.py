"""Fixtures of the notification integration tests."""

from __future__ import annotations

import pytest

from notifications import services


@pytest.fixture(autouse=True)
def fresh_rule_cache():
    # The rules this process cached die with the test's database: never reuse them.
    services.rules_changed()
    yield
    services.rules_changed()
