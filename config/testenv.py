"""pytest plugin (loaded with -p before Django is configured): test-only env defaults."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Unit tests run jobs in-process without a heartbeat thread; the integration
# harness gives its qcluster processes their own short intervals.
os.environ.setdefault("JOBDECK_HEARTBEAT_SECONDS", "0")
# One process needs no shared cache, and the unit tests' query counts are the views'
# own: the rate-limit tests (tests/api/test_throttles.py) use the database cache and
# Redis explicitly, across processes.
os.environ.setdefault("JOBDECK_CACHE_URL", "locmem://")
# Test clients and live servers speak plain HTTP; production keeps these on.
for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ.setdefault(name, "0")
