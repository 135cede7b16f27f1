"""Test-only job types for the reliability suite.

Loaded by the qcluster subprocesses through JOBDECK_JOBTYPE_MODULES and imported by
the test process (conftest). Each records its work in `reliability_side_effect`,
whose UNIQUE(job_id) turns a second run of one job's work into an IntegrityError.
"""

from __future__ import annotations

import os
import signal
import time

from django.db import connection
from rest_framework import serializers

from jobs.registry import JobType, register
from jobs.worker.context import JobContext

SIDE_EFFECT_TABLE = "reliability_side_effect"


def record_side_effect(job_id: int, attempt: int) -> None:
    """The job's work, committed once: a second INSERT for one job raises IntegrityError."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SIDE_EFFECT_TABLE} (job_id, attempt, pid) VALUES (%s, %s, %s)",
            [job_id, attempt, os.getpid()],
        )


class OnceConfig(serializers.Serializer):
    seconds = serializers.FloatField(min_value=0, max_value=600, default=0)
    # Sleep of attempts 2, 3, … (default: `seconds`), so a re-queued job can finish fast.
    later_seconds = serializers.FloatField(
        min_value=0, max_value=600, allow_null=True, required=False, default=None
    )
    # Attempts (1-based) on which the job SIGKILLs its own worker before its work.
    kill_on_attempts = serializers.ListField(
        child=serializers.IntegerField(min_value=1), default=list
    )


@register
class Once(JobType):
    """Sleeps `seconds` (logging its start), then records its work in the side-effect table."""

    name = "reliability.once"
    config_serializer = OnceConfig
    user_creatable = True

    def run(self, ctx: JobContext) -> dict:
        ctx.log(f"attempt {ctx.attempt} started in pid {os.getpid()}")
        if ctx.attempt in ctx.config["kill_on_attempts"]:
            os.kill(os.getpid(), signal.SIGKILL)
        seconds = ctx.config["seconds"]
        if ctx.attempt > 1 and ctx.config.get("later_seconds") is not None:
            seconds = ctx.config["later_seconds"]
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
        record_side_effect(ctx.job.pk, ctx.attempt)
        return {"pid": os.getpid(), "attempt": ctx.attempt}


class InstantConfig(serializers.Serializer):
    fail = serializers.BooleanField(default=False)


@register
class Instant(JobType):
    """Two instant tasks, the second failing when `fail` is set (the state machine's jobs)."""

    name = "reliability.instant"
    config_serializer = InstantConfig

    def tasks(self, config: dict) -> list[str]:
        return ["first", "second"]

    def run_task(self, ctx: JobContext, task) -> dict:
        if task.position == 2 and ctx.config["fail"]:
            raise RuntimeError("failing as configured")
        return {"task": task.position}
