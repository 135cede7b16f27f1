"""The benchmark's own job type and raw django-q2 function, loaded by the clusters it
starts through JOBDECK_JOBTYPE_MODULES=bench.jobtypes."""

from __future__ import annotations

from typing import Any

from jobs.registry import JobType, register
from jobs.worker.context import JobContext

NOOP = "bench.noop"


@register
class NoopJob(JobType):
    """One task that logs one line and returns: the platform's own overhead."""

    name = NOOP
    label = "Benchmark no-op"

    def run(self, ctx: JobContext) -> Any:
        ctx.log("noop")
        return None


def noop() -> None:
    """The raw django-q2 comparison task: does nothing."""
    return None
