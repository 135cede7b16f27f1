"""Test-only job types for timeouts: handlers that keep working until interrupted.

Registered on import: by the timeout tests in the test process, and in qcluster
subprocesses through JOBDECK_JOBTYPE_MODULES=tests.support.timeout_jobtypes.
"""

from __future__ import annotations

import time

from rest_framework import serializers

from jobs.models import Task
from jobs.registry import JobType, register
from jobs.worker.context import JobContext

MODULE = __name__


class BusyConfig(serializers.Serializer):
    # How long each task works if nothing stops it.
    seconds = serializers.FloatField(min_value=0, max_value=600, default=60)
    tasks = serializers.IntegerField(min_value=1, max_value=10, default=1)
    # Sleep between iterations (False: a pure Python loop, never blocking).
    sleep = serializers.BooleanField(default=False)
    # How often (seconds) a task writes a progress update and a log line.
    every = serializers.FloatField(min_value=0, max_value=3600, default=0.1)


@register
class Busy(JobType):
    """Each task loops for `seconds`, writing progress and a log line every `every`
    seconds, and swallows every Exception it meets (as careless handlers do)."""

    name = "timeouts.busy"
    config_serializer = BusyConfig

    def tasks(self, config: dict) -> list[str]:
        return [f"work {i}" for i in range(1, config["tasks"] + 1)]

    def run_task(self, ctx: JobContext, task: Task) -> dict:
        config = ctx.config
        end = time.monotonic() + config["seconds"]
        ticks, next_write = 0, 0.0
        while time.monotonic() < end:
            try:
                ticks += 1
                now = time.monotonic()
                if now >= next_write:
                    ctx.log(f"{task.name}: tick {ticks}")
                    ctx.progress(ticks, 0)
                    next_write = now + config["every"]
                if config["sleep"]:
                    time.sleep(0.01)
            except Exception:  # the point: a handler that swallows every error
                pass
        return {"ticks": ticks}


@register
class BusyWithDefault(Busy):
    """timeouts.busy whose type sets a default timeout of 1 s."""

    name = "timeouts.busy_default"
    timeout_seconds = 1
