"""Built-in job types of the jobs app: demo.steps and maintenance.cleanup."""

from __future__ import annotations

import time
from datetime import timedelta

from rest_framework import serializers

from . import permissions, services
from .models import Task
from .registry import JobType, register
from .worker.context import JobContext


class DemoStepsConfig(serializers.Serializer):
    steps = serializers.IntegerField(min_value=1, max_value=1000, help_text="Number of tasks.")
    delay = serializers.FloatField(
        min_value=0, max_value=3600, default=1.0, help_text="Seconds each task sleeps."
    )
    fail_at = serializers.IntegerField(
        min_value=1,
        allow_null=True,
        required=False,
        default=None,
        help_text="Task number that raises (on the first fail_attempts attempts).",
    )
    fail_attempts = serializers.IntegerField(
        min_value=0, default=1, help_text="How many attempts task fail_at fails on."
    )

    def validate(self, attrs):
        if attrs.get("fail_at") is not None and attrs["fail_at"] > attrs["steps"]:
            raise serializers.ValidationError({"fail_at": "Must not exceed steps."})
        return attrs


@register
class DemoSteps(JobType):
    """Runs `steps` tasks that log and sleep, so a person can watch, cancel and retry."""

    name = "demo.steps"
    label = "Demo: numbered steps"
    description = "Runs N steps that each log and sleep; one step can be made to fail."
    config_serializer = DemoStepsConfig

    def tasks(self, config: dict) -> list[str]:
        return [f"step {i}" for i in range(1, config["steps"] + 1)]

    def run_task(self, ctx: JobContext, task: Task) -> dict:
        config = ctx.config
        ctx.log(f"step {task.position} of {config['steps']} started")
        deadline = time.monotonic() + config["delay"]
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))
            ctx.check_cancelled()
        if task.position == config.get("fail_at") and ctx.attempt <= config["fail_attempts"]:
            raise RuntimeError(
                f"step {task.position} failed on attempt {ctx.attempt} (as configured)"
            )
        ctx.log(f"step {task.position} done")
        return {"step": task.position}

    def result(self, task_results: list) -> dict:
        return {"steps": len(task_results)}

    def analyze(self, config: dict, release=None) -> dict:
        warnings = []
        if config.get("fail_at"):
            warnings.append(f"step {config['fail_at']} is set to fail")
        return {
            "tasks": self.tasks(config),
            "estimated_seconds": config["steps"] * config["delay"],
            "warnings": warnings,
        }


class CleanupConfig(serializers.Serializer):
    older_than_days = serializers.IntegerField(
        min_value=0, max_value=services.CLEANUP_MAX_DAYS, default=30
    )
    dry_run = serializers.BooleanField(default=False)


@register
class MaintenanceCleanup(JobType):
    """Deletes finished jobs older than N days, with their tasks and logs."""

    name = "maintenance.cleanup"
    label = "Maintenance: clean up finished jobs"
    config_serializer = CleanupConfig
    # It deletes every user's jobs: the same right as POST /api/jobs/cleanup/.
    create_permission = permissions.CLEANUP_JOBS

    def run(self, ctx: JobContext) -> dict:
        summary = services.job_cleanup(
            older_than=timedelta(days=ctx.config["older_than_days"]),
            dry_run=ctx.config["dry_run"],
            via="job",
        )
        verb = "would delete" if summary["dry_run"] else "deleted"
        ctx.log(
            f"{verb} {summary['jobs']} jobs, {summary['tasks']} tasks, {summary['logs']} log lines"
        )
        return summary

    def analyze(self, config: dict, release=None) -> dict:
        summary = services.job_cleanup(
            older_than=timedelta(days=config["older_than_days"]), dry_run=True
        )
        return {"tasks": self.tasks(config), "would_delete": summary, "warnings": []}


from . import tasks_jobtype  # noqa: E402, F401  (registers tasks.call, the django.tasks carrier)
