"""Log tail/follow read only what they return; cleanup touches only old finished jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import selectors, services
from jobs.models import AuditEvent, Job, JobLog, JobStatus, Task
from tests.support.admin_helpers import grant
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db


def test_tail_returns_the_last_n_lines_oldest_first_in_one_query(django_assert_num_queries):
    job = make_job()
    for i in range(50):
        services.job_log(job_id=job.pk, message=f"line {i}")
    with django_assert_num_queries(1):
        lines = selectors.log_tail(job.pk, 3)
    assert [line.message for line in lines] == ["line 47", "line 48", "line 49"]
    assert selectors.log_tail(job.pk, 0) == []


def test_follow_returns_only_lines_after_the_cursor():
    job, other = make_job(), make_job()
    first = [services.job_log(job_id=job.pk, message=f"a{i}") for i in range(3)]
    services.job_log(job_id=other.pk, message="not mine")
    later = [services.job_log(job_id=job.pk, message=f"b{i}") for i in range(2)]
    assert [x.message for x in selectors.log_after(job.pk, first[-1].pk)] == ["b0", "b1"]
    assert selectors.log_after(job.pk, later[-1].pk) == []
    assert [x.message for x in selectors.log_after(job.pk, 0, limit=2)] == ["a0", "a1"]


def test_the_log_query_plan_uses_the_job_id_index():
    job = make_job()
    plan = JobLog.objects.filter(job_id=job.pk, id__gt=0).order_by("id")[:10].explain()
    assert "joblog_job_id_idx" in plan


def test_log_messages_are_bounded_and_nul_bytes_are_made_storable(settings):
    settings.JOBDECK_LOG_MESSAGE_MAX = 20
    job = make_job()
    line = services.job_log(job_id=job.pk, message="x" * 100)
    assert len(line.message) == 20 and line.message.endswith("…")
    line = services.job_log(job_id=job.pk, message="a\x00b<script>\x1b[31m")
    line.refresh_from_db()
    assert line.message == "a\\x00b<script>\x1b[31m"


def finished_days_ago(status: str, days: int) -> Job:
    job = make_job(status)
    services.job_log(job_id=job.pk, message="hello")
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=days))
    return job


def test_cleanup_deletes_only_old_finished_jobs_with_their_tasks_and_logs(user):
    old = [
        finished_days_ago(s, 40)
        for s in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    ]
    recent = finished_days_ago(JobStatus.COMPLETED, 5)
    active = [make_job(JobStatus.PENDING), make_job(JobStatus.RUNNING), make_job(JobStatus.DRAFT)]
    Job.objects.filter(pk__in=[j.pk for j in active]).update(
        created_at=timezone.now() - timedelta(days=90)
    )

    preview = services.job_cleanup(older_than=timedelta(days=30), dry_run=True)
    assert (preview["jobs"], preview["tasks"], preview["logs"]) == (3, 6, 3)
    assert Job.objects.count() == 7

    user = grant(user, "cleanup_jobs")  # a person cleaning up needs the named right
    summary = services.job_cleanup(
        older_than=timedelta(days=30), user=user, via="test", batch_size=2
    )
    assert (summary["jobs"], summary["tasks"], summary["logs"]) == (3, 6, 3)
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {recent.pk, *(j.pk for j in active)}
    assert not Task.objects.filter(job_id__in=[j.pk for j in old]).exists()
    assert not JobLog.objects.filter(job_id__in=[j.pk for j in old]).exists()
    event = AuditEvent.objects.get(action="cleanup")
    assert (event.actor, event.via, event.detail["jobs"]) == (user, "test", 3)


def test_cleanup_pauses_between_batches_not_before_the_first_or_after_the_last(
    settings, monkeypatch
):
    settings.JOBDECK_CLEANUP_PAUSE_SECONDS = 0.25
    for _ in range(5):
        finished_days_ago(JobStatus.COMPLETED, 40)
    pauses: list[float] = []
    monkeypatch.setattr(services.time, "sleep", pauses.append)

    summary = services.job_cleanup(older_than=timedelta(days=30), batch_size=2)

    assert summary["jobs"] == 5
    assert pauses == [0.25, 0.25]  # batches of 2, 2 and 1: a pause before the 2nd and 3rd
    assert services.job_cleanup(older_than=timedelta(days=30), pause=0)["jobs"] == 0
    assert pauses == [0.25, 0.25]


def test_cleanup_refuses_a_negative_age():
    with pytest.raises(Exception, match="zero or more"):
        services.job_cleanup(older_than=timedelta(days=-1))


def _job_with_references() -> tuple[Job, dict]:
    """An old finished job with tasks, logs (one attached to a task), an audit event,
    and a schedule and an occurrence pointing at it."""
    from scheduler.models import Occurrence, Schedule

    job = finished_days_ago(JobStatus.FAILED, 40)
    task = job.tasks.get(position=1)
    services.job_log(job_id=job.pk, task_id=task.pk, message="in a task")
    AuditEvent.objects.create(job=job, action="retried")
    schedule = Schedule.objects.create(
        name=f"s{job.pk}", job_type="demo.steps", kind="interval", interval_minutes=1, last_job=job
    )
    occurrence = Occurrence.objects.create(schedule=schedule, fire_at=timezone.now(), job=job)
    return job, {"schedule": schedule, "occurrence": occurrence}


@pytest.mark.parametrize("how", ["cleanup", "delete"])
def test_deleting_jobs_cascades_and_nulls_references_like_the_models_say(how):
    job, refs = _job_with_references()
    other, other_refs = _job_with_references()
    Job.objects.filter(pk=other.pk).update(finished_at=timezone.now())  # kept by cleanup
    tasks = Task.objects.filter(job=job).count()
    logs = JobLog.objects.filter(job=job).count()

    if how == "cleanup":
        summary = services.job_cleanup(older_than=timedelta(days=30))
        assert (summary["jobs"], summary["tasks"], summary["logs"]) == (1, tasks, logs)
    else:
        services.job_delete(job=job)

    assert not Job.objects.filter(pk=job.pk).exists()
    assert not Task.objects.filter(job_id=job.pk).exists()
    assert not JobLog.objects.filter(job_id=job.pk).exists()
    assert not AuditEvent.objects.filter(job_id=job.pk).exists()
    # SET_NULL relations (scheduler.Schedule.last_job, Occurrence.job) keep their rows.
    for obj in refs.values():
        obj.refresh_from_db()
    assert refs["schedule"].last_job_id is None and refs["occurrence"].job_id is None
    for obj in other_refs.values():
        obj.refresh_from_db()
    assert other_refs["schedule"].last_job_id == other.pk
    assert other_refs["occurrence"].job_id == other.pk
    assert JobLog.objects.filter(job=other).count() == logs


def test_cleanup_falls_back_to_django_s_collector_when_a_delete_signal_listens():
    from django.db.models.signals import pre_delete

    job, refs = _job_with_references()
    seen: list[int] = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    pre_delete.connect(receiver, sender=Job)
    try:
        summary = services.job_cleanup(older_than=timedelta(days=30))
    finally:
        pre_delete.disconnect(receiver, sender=Job)
    assert seen == [job.pk] and summary["jobs"] == 1 and summary["logs"] == 2
    refs["occurrence"].refresh_from_db()
    assert refs["occurrence"].job_id is None
