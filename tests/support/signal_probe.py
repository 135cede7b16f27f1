"""Receivers proving where django.tasks signals fire: each writes a line to the job log.

The qcluster processes of the integration tests import this module through
JOBDECK_JOBTYPE_MODULES; the unit tests import it directly.
"""

from __future__ import annotations

import os

from django.dispatch import receiver
from django.tasks import TaskResult
from django.tasks.signals import task_finished, task_started

from jobs import services
from jobs.tasks_backend import JobdeckBackend

PREFIX = "probe:"


def _record(signal_name: str, sender: type, task_result: TaskResult) -> None:
    if not (isinstance(sender, type) and issubclass(sender, JobdeckBackend)):
        return
    services.job_log(
        job_id=int(task_result.id),
        message=f"{PREFIX} {signal_name} {task_result.status} pid={os.getpid()}",
    )


@receiver(task_started, dispatch_uid="jobdeck-test-probe-started")
def on_started(sender: type, task_result: TaskResult, **kwargs: object) -> None:
    _record("task_started", sender, task_result)


@receiver(task_finished, dispatch_uid="jobdeck-test-probe-finished")
def on_finished(sender: type, task_result: TaskResult, **kwargs: object) -> None:
    _record("task_finished", sender, task_result)
