"""Job types for the flow-control tests: one keyed by account (at most two running per
account). The qcluster subprocesses load this module through JOBDECK_JOBTYPE_MODULES
with JOBDECK_FLOW_TEST_TYPES=1, which registers the types; the tests register them
per test (a fixture), so the rest of the suite never sees them."""

from __future__ import annotations

import os
import time

from rest_framework import serializers

from jobs import registry
from jobs.registry import JobType, register


class KeyedConfig(serializers.Serializer):
    account = serializers.IntegerField(min_value=1)
    delay = serializers.FloatField(min_value=0, max_value=60, default=0.0)


class Keyed(JobType):
    """Sleeps `delay` seconds; at most two jobs of one account run at once."""

    name = "flow.keyed"
    config_serializer = KeyedConfig
    concurrency_key = "account:{account}"
    concurrency_key_limit = 2

    def run(self, ctx) -> dict:
        time.sleep(ctx.config["delay"])
        return {"account": ctx.config["account"]}


def keyed() -> type[JobType]:
    return type(registry.get(Keyed.name))


if os.environ.get("JOBDECK_FLOW_TEST_TYPES") == "1":
    register(Keyed)
