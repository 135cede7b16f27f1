"""Queues: each django-q2 cluster claims only the queues it serves."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django_q.models import OrmQ

from jobs import queues, runner, services
from jobs.models import Job

pytestmark = pytest.mark.django_db

REPORTS = {"reports": "jobdeck-reports"}


def test_the_default_cluster_serves_default_and_a_named_cluster_its_mapped_queues(settings):
    settings.JOBDECK_QUEUE_CLUSTERS = {**REPORTS, "mail": "jobdeck"}
    assert queues.served_queues("jobdeck") == ["default", "mail"]
    assert queues.served_queues("jobdeck-reports") == ["reports"]
    assert queues.served_queues("nobody") == []


def test_a_job_in_an_unknown_queue_is_refused_and_nothing_is_created():
    with pytest.raises(ValidationError) as err:
        services.job_create(job_type="demo.steps", config={"steps": 1}, queue="reports")
    assert list(err.value.message_dict) == ["queue"]
    assert not Job.objects.exists()


def test_a_worker_claims_only_the_jobs_of_the_queues_its_cluster_serves(settings, monkeypatch):
    settings.JOBDECK_QUEUE_CLUSTERS = REPORTS
    report = services.job_create(job_type="demo.steps", config={"steps": 1}, queue="reports")
    default = services.job_create(job_type="demo.steps", config={"steps": 1})

    monkeypatch.setenv("Q_CLUSTER_NAME", "jobdeck-reports")
    assert runner.claim(worker="reports").job.pk == report.pk
    assert runner.claim(worker="reports") is None
    assert runner.claim(worker="reports", job_id=default.pk) is None

    monkeypatch.delenv("Q_CLUSTER_NAME")
    assert runner.claim(worker="default").job.pk == default.pk


def test_a_jobs_wakeup_goes_to_its_queues_cluster(settings, django_capture_on_commit_callbacks):
    settings.JOBDECK_QUEUE_CLUSTERS = REPORTS
    with django_capture_on_commit_callbacks(execute=True):
        services.job_create(job_type="demo.steps", config={"steps": 1}, queue="reports")
        services.job_create(job_type="demo.steps", config={"steps": 1})
    assert sorted(OrmQ.objects.values_list("key", flat=True)) == ["jobdeck", "jobdeck-reports"]
