"""Plain django.tasks functions, with no Jobdeck-specific code (used by tests and docs)."""

from __future__ import annotations

import asyncio
import logging
import time

from django.tasks import TaskContext, task

logger = logging.getLogger(__name__)


@task
def add(a: int, b: int) -> int:
    logger.info("adding %s and %s", a, b)
    return a + b


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task
def slow(seconds: float, label: str = "") -> str:
    time.sleep(seconds)
    return label


@task(takes_context=True)
def with_context(context: TaskContext, x: int) -> dict:
    return {
        "id": context.task_result.id,
        "attempt": context.attempt,
        "worker_ids": context.task_result.worker_ids,
        "x": x,
    }


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    logger.warning("async adding %s and %s", a, b)
    return a + b


@task
def returns_tuple() -> tuple:
    return (1, "two")


@task
def returns_object() -> object:
    return object()
