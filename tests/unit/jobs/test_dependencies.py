"""Jobs that wait for other jobs, in one process: what the claim takes, what a parent's
completion, failure, cancel and retry do to its children (jobs.engine.dependencies)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs import engine, runner, selectors, services
from jobs.exceptions import IllegalTransition
from jobs.models import Job, JobDependency, JobStatus, TaskStatus

pytestmark = pytest.mark.django_db

S = JobStatus
Q = ["default"]


def step(fail: bool = False, **fields) -> Job:
    config = {"steps": 1, "delay": 0, **({"fail_at": 1, "fail_attempts": 9} if fail else {})}
    return services.job_create(job_type="demo.steps", config=config, **fields)


def status(*jobs: Job) -> list[str]:
    return [Job.objects.get(pk=j.pk).status for j in jobs]


def claimable() -> set[int]:
    return set(Job.objects.runnable(queues=Q).values_list("pk", flat=True))


def test_a_child_is_not_runnable_until_every_parent_completed():
    a, b = step(), step()
    c = step(depends_on=[a.pk, b.pk])
    assert c.waiting_on == 2
    assert claimable() == {a.pk, b.pk}
    runner.run_job(a.pk)
    assert Job.objects.get(pk=c.pk).waiting_on in (0, 1)
    runner.run_job(b.pk)
    assert status(a, b, c) == [S.COMPLETED] * 3
    assert Job.objects.get(pk=c.pk).waiting_on == 0
    assert set(JobDependency.objects.filter(child=c).values_list("settled", flat=True)) == {True}


def test_the_claim_never_takes_a_waiting_job_even_by_id():
    a = step()
    c = step(depends_on=[a.pk])
    assert engine.claim(worker="w:1", queues=Q, job_id=c.pk) is None
    claimed = engine.claim(worker="w:1", queues=Q)
    assert claimed is not None and claimed.job.pk == a.pk
    assert engine.claim(worker="w:1", queues=Q) is None


def test_a_waiting_job_says_what_it_waits_for():
    a = step()
    c = step(depends_on=[a.pk])
    c.refresh_from_db()
    assert selectors.waiting_reason(c) == f"waiting for parent #{a.pk} (pending)"


def test_a_failing_parent_cancels_its_children_and_theirs_with_the_reason():
    a = step(fail=True)
    b = step(depends_on=[a.pk])
    c = step(depends_on=[b.pk])
    runner.run_job(a.pk)
    assert status(a, b, c) == [S.FAILED, S.CANCELLED, S.CANCELLED]
    b.refresh_from_db()
    c.refresh_from_db()
    assert b.error == f"parent #{a.pk} failed"
    assert c.error == f"parent #{b.pk} cancelled"
    assert set(b.tasks.values_list("status", flat=True)) == {TaskStatus.SKIPPED}


def test_retrying_the_failed_parent_puts_the_children_it_cancelled_back_to_pending():
    a = step(fail=True)
    b = step(depends_on=[a.pk])
    c = step(depends_on=[b.pk])
    runner.run_job(a.pk)
    Job.objects.filter(pk=a.pk).update(config={"steps": 1, "delay": 0})
    services.job_retry(job=Job.objects.get(pk=a.pk))
    assert status(a, b, c) == [S.PENDING] * 3
    b.refresh_from_db()
    assert (b.error, b.cancelled_by_parent_id, b.waiting_on) == ("", None, 1)
    runner.run_job(a.pk)
    assert status(a, b, c) == [S.COMPLETED] * 3


def test_a_child_that_runs_anyway_runs_after_a_failure():
    a = step(fail=True)
    report = step(depends_on=[a.pk], on_parent_failure="run")
    runner.run_job(a.pk)
    assert status(a, report) == [S.FAILED, S.COMPLETED]


def test_cancelling_a_pending_parent_cancels_its_children():
    a = step()
    b = step(depends_on=[a.pk])
    services.job_cancel(job=a)
    assert status(a, b) == [S.CANCELLED, S.CANCELLED]
    assert Job.objects.get(pk=b.pk).error == f"parent #{a.pk} cancelled"


def test_a_child_stays_cancelled_while_another_of_its_parents_failed():
    a, b = step(fail=True), step(fail=True)
    d = step(depends_on=[a.pk, b.pk])
    runner.run_job(a.pk)
    runner.run_job(b.pk)
    Job.objects.filter(pk=a.pk).update(config={"steps": 1, "delay": 0})
    services.job_retry(job=Job.objects.get(pk=a.pk))
    d.refresh_from_db()
    assert (d.status, d.cancelled_by_parent_id, d.error) == (
        S.CANCELLED,
        b.pk,
        f"parent #{b.pk} failed",
    )


def test_a_job_created_after_its_parent_completed_runs_at_once():
    a = step()
    runner.run_job(a.pk)
    b = step(depends_on=[a.pk])
    assert b.waiting_on == 0
    assert claimable() == {b.pk}


def test_a_job_created_after_its_parent_failed_is_cancelled_in_its_name():
    a = step(fail=True)
    runner.run_job(a.pk)
    b = step(depends_on=[a.pk])
    assert (b.status, b.error) == (S.CANCELLED, f"parent #{a.pk} failed")


@pytest.mark.parametrize("bad", [[0], ["1"], [True], "1", [10**9]])
def test_depends_on_that_is_not_a_list_of_existing_job_ids_is_refused(bad):
    with pytest.raises(ValidationError) as exc:
        step(depends_on=bad)
    assert "depends_on" in exc.value.message_dict
    assert Job.objects.count() == 0


def test_depends_on_a_job_the_user_may_not_see_is_refused_like_a_missing_one(user, other_user):
    theirs = step(user=other_user)
    with pytest.raises(ValidationError) as exc:
        step(user=user, depends_on=[theirs.pk])
    assert exc.value.message_dict["depends_on"] == [
        f"There is no job #{theirs.pk} that you may see."
    ]
    assert Job.objects.count() == 1


def test_retrying_a_child_held_by_a_failed_parent_is_refused_naming_the_parent():
    a = step(fail=True)
    b = step(depends_on=[a.pk])
    runner.run_job(a.pk)
    with pytest.raises(IllegalTransition) as exc:
        services.job_retry(job=Job.objects.get(pk=b.pk))
    assert f"held by parent #{a.pk}, which failed; retry that one" in str(exc.value)
    assert status(b) == [S.CANCELLED]


def test_a_draft_cannot_be_a_parent():
    draft = services.job_create(job_type="demo.steps", config={"steps": 1}, draft=True)
    with pytest.raises(ValidationError) as exc:
        step(depends_on=[draft.pk])
    assert exc.value.message_dict["depends_on"] == [f"Job #{draft.pk} is a draft: submit it first."]


def test_a_retried_child_no_longer_waits_for_a_parent_deleted_meanwhile():
    a = step(run_after=timezone.now() + timedelta(hours=1))  # not drained with b
    b = step(fail=True)
    c = step(depends_on=[a.pk, b.pk])
    services.job_cancel(job=Job.objects.get(pk=c.pk))  # a person cancels it
    runner.run_job(b.pk)
    Job.objects.filter(pk=b.pk).delete()  # cleanup of old failed jobs
    services.job_retry(job=Job.objects.get(pk=c.pk))
    assert Job.objects.get(pk=c.pk).waiting_on == 1  # a only
    Job.objects.filter(pk=a.pk).update(run_after=None)
    runner.run_job(a.pk)
    assert status(a, c) == [S.COMPLETED, S.COMPLETED]
