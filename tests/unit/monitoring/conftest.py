"""Fixtures of the monitoring tests."""

from tests.support.schedule_fixtures import make_schedule  # noqa: F401
