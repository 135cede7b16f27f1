"""Fixtures of the releases tests (tests/support/release_fixtures.py)."""

from tests.support.release_fixtures import media_root, release, release_manager  # noqa: F401
