"""pytest plugin (loaded with -p before Django is configured): test-only env defaults, and
the services the selected tests need.

Under `./jobdeck test` (JOBDECK_ENSURE_SERVICES=1), once pytest has collected and
deselected the tests it will run, this starts (or installs) exactly what they use:
PostgreSQL when the run is on PostgreSQL, Redis for tests marked `redis`, Chromium for
tests marked `browser` (scripts/ensure-services). Plain pytest starts nothing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Unit tests run jobs in-process without a heartbeat thread; the integration
# harness gives its qcluster processes their own short intervals.
os.environ.setdefault("JOBDECK_HEARTBEAT_SECONDS", "0")
# One process needs no shared cache, and the unit tests' query counts are the views'
# own: the rate-limit tests (tests/unit/jobs/api/test_throttles.py) use the database cache and
# Redis explicitly, across processes.
os.environ.setdefault("JOBDECK_CACHE_URL", "locmem://")
# Test clients and live servers speak plain HTTP; production keeps these on.
for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ.setdefault(name, "0")

ENSURE_SERVICES = Path(__file__).resolve().parent.parent / "scripts" / "ensure-services"
# Service → the marker of the tests that need it.
MARKED = {"redis": "redis", "chromium": "browser"}


def services_needed(items: Iterable[pytest.Item], database_engine: str) -> list[str]:
    """What these tests talk to: the run's database if it is PostgreSQL, and the marked."""
    items = list(items)
    if not items:
        return []
    needed = ["postgres"] if "postgresql" in database_engine else []
    needed += [
        service
        for service, marker in MARKED.items()
        if any(item.get_closest_marker(marker) for item in items)
    ]
    return needed


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.environ.get("JOBDECK_ENSURE_SERVICES") != "1":
        return
    from django.conf import settings

    needed = services_needed(session.items, settings.DATABASES["default"]["ENGINE"])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    collect_only = session.config.option.collectonly
    note = " (not started: --collect-only)" if collect_only and needed else ""
    if reporter is not None:
        reporter.write_line(f"services these tests need: {', '.join(needed) or 'none'}{note}")
    if needed and not collect_only:
        done = subprocess.run([str(ENSURE_SERVICES), *needed], check=False)
        if done.returncode:
            pytest.exit(f"scripts/ensure-services {' '.join(needed)} failed", returncode=3)
