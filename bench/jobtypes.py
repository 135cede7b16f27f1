"""The benchmark's own job type and raw django-q2 function, loaded by the clusters it
starts through JOBDECK_JOBTYPE_MODULES=bench.jobtypes."""

from __future__ import annotations

import time
from typing import Any

from rest_framework import serializers

from jobs.registry import JobType, register
from jobs.worker.context import JobContext

NOOP = "bench.noop"
SLEEP = "bench.sleep"


@register
class NoopJob(JobType):
    """One task that logs one line and returns: the platform's own overhead."""

    name = NOOP
    label = "Benchmark no-op"

    def run(self, ctx: JobContext) -> Any:
        ctx.log("noop")
        return None


class SleepConfig(serializers.Serializer):
    seconds = serializers.FloatField(min_value=0, max_value=60, default=0.1)


@register
class SleepJob(JobType):
    """One task that logs one line and sleeps: a job waiting on I/O (an HTTP call)."""

    name = SLEEP
    label = "Benchmark sleep"
    config_serializer = SleepConfig

    def run(self, ctx: JobContext) -> Any:
        ctx.log("sleep")
        time.sleep(ctx.config["seconds"])
        return None


def noop() -> None:
    """The raw django-q2 comparison task: does nothing."""
    return None
