"""The very same task objects run unchanged on Django's ImmediateBackend."""

from __future__ import annotations

import pytest
from django.tasks import TaskResultStatus, task_backends
from django.tasks.backends.immediate import ImmediateBackend
from django.test import override_settings

from tests.support.django_tasks import add, async_add, fail, with_context

IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture(autouse=True)
def immediate_backend():
    with override_settings(TASKS=IMMEDIATE):
        assert isinstance(task_backends["default"], ImmediateBackend)
        yield


def test_a_successful_task_returns_its_value():
    result = add.enqueue(2, 3)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5


def test_a_failing_task_records_the_exception_class_and_traceback():
    result = fail.enqueue("boom")
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.ValueError"
    assert "ValueError: boom" in result.errors[0].traceback


def test_a_context_task_and_an_async_task_run_too():
    result = with_context.enqueue(7)
    assert result.return_value["id"] == result.id
    assert result.return_value["attempt"] == 1
    assert async_add.enqueue(4, 5).return_value == 9
