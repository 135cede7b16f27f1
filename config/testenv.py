"""pytest plugin (loaded with -p before Django is configured): test-only env defaults."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Unit tests run jobs in-process without a heartbeat thread; the integration
# harness gives its qcluster processes their own short intervals.
os.environ.setdefault("JOBDECK_HEARTBEAT_SECONDS", "0")
