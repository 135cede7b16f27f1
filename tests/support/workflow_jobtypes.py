"""A job type for the workflow tests: sleeps until a wall-clock instant, then fails on
its first `fail_attempts` attempts, so that two jobs on two workers finish at the same
moment. The qcluster subprocesses load this module through JOBDECK_JOBTYPE_MODULES with
JOBDECK_WORKFLOW_TEST_TYPES=1; the tests register it per test (a fixture)."""

from __future__ import annotations

import os
import time

from rest_framework import serializers

from jobs import registry
from jobs.registry import JobType, register


class AtConfig(serializers.Serializer):
    at = serializers.FloatField(min_value=0)  # time.time() to finish at
    fail_attempts = serializers.IntegerField(min_value=0, default=0)


class At(JobType):
    """Finishes at `at` (seconds since the epoch): fails while its attempt is at most
    `fail_attempts`, else succeeds."""

    name = "workflow.at"
    config_serializer = AtConfig

    def run(self, ctx) -> dict:
        time.sleep(max(0.0, ctx.config["at"] - time.time()))
        if ctx.attempt <= ctx.config["fail_attempts"]:
            raise RuntimeError(f"failed at {ctx.config['at']} on attempt {ctx.attempt}")
        return {"at": ctx.config["at"]}


def at_type() -> type[JobType]:
    return type(registry.get(At.name))


if os.environ.get("JOBDECK_WORKFLOW_TEST_TYPES") == "1":
    register(At)
