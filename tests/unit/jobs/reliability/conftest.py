"""The fault-injection suite's fixtures and hooks (tests/support/reliability.py)."""

from tests.support.reliability import (  # noqa: F401
    measure,
    pytest_collection_modifyitems,
    pytest_runtest_makereport,
    side_effects,
    start_cluster,
)
