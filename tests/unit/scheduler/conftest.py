"""Fixtures of the scheduler tests (tests/support/schedule_fixtures.py)."""

from tests.support.schedule_fixtures import (  # noqa: F401
    fast_password_hasher,
    make_schedule,
    plain_http,
)
