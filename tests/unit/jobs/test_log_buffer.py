"""A running job's log lines are buffered and written in order, with the task's
bookkeeping at the latest; nothing is lost when a write fails."""

from __future__ import annotations

import pytest

from jobs import registry, runner, services
from jobs.models import JobLog, JobStatus, LogLevel
from jobs.worker.logbuffer import LogBuffer

pytestmark = pytest.mark.django_db


@pytest.fixture
def chatty():
    """A two-task type: each task logs three lines, then `probe(ctx)` runs."""

    class Chatty(registry.JobType):
        name = "test.chatty"
        probe = staticmethod(lambda ctx: None)

        def tasks(self, config):
            return ["one", "two"]

        def run_task(self, ctx, task):
            for i in range(3):
                ctx.log(f"task {task.position} line {i}")
            type(self).probe(ctx)
            return task.position

    registry.register(Chatty)
    yield Chatty
    registry.unregister("test.chatty")


def messages(job_id: int) -> list[str]:
    lines = JobLog.objects.filter(job_id=job_id).order_by("id")
    return list(lines.values_list("message", flat=True))


def run(job_type_name: str = "test.chatty", **kwargs) -> int:
    job = services.job_create(job_type=job_type_name, **kwargs)
    runner.execute(runner.claim(worker="w", job_id=job.pk))
    return job.pk


def test_lines_are_held_until_their_task_ends_then_written_in_order(chatty, settings):
    settings.JOBDECK_LOG_FLUSH_SECONDS = 60
    seen_during = []
    chatty.probe = staticmethod(lambda ctx: seen_during.append(len(messages(ctx.job.pk))))
    job_id = run()
    assert seen_during == [0, 3]  # task 1's lines were written with task 1's success
    assert messages(job_id) == [f"task {t} line {i}" for t in (1, 2) for i in range(3)]
    assert set(JobLog.objects.filter(job_id=job_id).values_list("task__position", flat=True)) == {
        1,
        2,
    }


def test_a_full_buffer_is_written_at_once(chatty, settings):
    settings.JOBDECK_LOG_FLUSH_SECONDS = 60
    settings.JOBDECK_LOG_FLUSH_LINES = 2
    seen_during = []
    chatty.probe = staticmethod(lambda ctx: seen_during.append(len(messages(ctx.job.pk))))
    run()
    assert seen_during == [2, 5]  # the third line of each task waited for the task's end


def test_with_no_flush_delay_every_line_is_written_at_once(chatty, settings):
    settings.JOBDECK_LOG_FLUSH_SECONDS = 0
    seen_during = []
    chatty.probe = staticmethod(lambda ctx: seen_during.append(len(messages(ctx.job.pk))))
    run()
    assert seen_during == [3, 6]


def test_lines_logged_before_a_failure_come_before_the_failure_line(chatty, settings):
    settings.JOBDECK_LOG_FLUSH_SECONDS = 60

    def failing(self, ctx, task):
        ctx.log(f"before {task.position}")
        if task.position == 2:
            raise RuntimeError("boom")
        return None

    chatty.run_task = failing  # the registry holds an instance: patch its class
    job_id = run()
    lines = messages(job_id)
    assert lines[:2] == ["before 1", "before 2"]
    assert lines[2].startswith("task 2 (two) failed: RuntimeError: boom")
    assert JobLog.objects.get(job_id=job_id, message__startswith="task 2").level == LogLevel.ERROR


def test_lines_whose_write_failed_are_kept_for_the_next_flush(settings):
    settings.JOBDECK_LOG_FLUSH_SECONDS = 60
    job = services.job_create(job_type="demo.steps", config={"steps": 1, "delay": 0})
    logs = LogBuffer(job.pk)
    logs.add("first", LogLevel.INFO, None)
    with pytest.raises(RuntimeError), logs.writing() as lines:
        assert len(lines) == 1
        raise RuntimeError("the transaction rolled back")
    logs.add("second", LogLevel.INFO, None)
    logs.flush()
    assert messages(job.pk) == ["first", "second"]


def test_a_cancelled_job_keeps_the_lines_its_task_logged(chatty, settings):
    settings.JOBDECK_LOG_FLUSH_SECONDS = 60

    def cancel_after_logging(ctx):
        if ctx.task.position == 1:
            services.job_cancel(job=ctx.job)

    chatty.probe = staticmethod(cancel_after_logging)
    job_id = run()
    assert messages(job_id) == [*(f"task 1 line {i}" for i in range(3)), "cancelled"]
    assert services.Job.objects.get(pk=job_id).status == JobStatus.CANCELLED


def test_a_line_written_directly_for_a_running_job_comes_after_its_buffered_lines(chatty, settings):
    # e.g. a django.tasks signal receiver calling services.job_log inside the worker
    settings.JOBDECK_LOG_FLUSH_SECONDS = 60

    def direct(ctx):
        services.job_log(job_id=ctx.job.pk, message=f"direct {ctx.task.position}")

    chatty.probe = staticmethod(direct)
    job_id = run()
    assert messages(job_id) == [
        *(f"task 1 line {i}" for i in range(3)),
        "direct 1",
        *(f"task 2 line {i}" for i in range(3)),
        "direct 2",
    ]
