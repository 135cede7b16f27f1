"""Fixtures of the admin tests: logged-in clients and a job factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobStatus, TaskStatus
from tests.support.admin_helpers import grant


@pytest.fixture(autouse=True)
def test_settings(settings):
    """Plain HTTP for the test client (production redirects to HTTPS); fast hashing."""
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def viewer(staff_user):
    """Staff who may open the jobs admin and act on their own jobs only."""
    return grant(staff_user, "view_job", "delete_job")


@pytest.fixture
def watcher(django_user_model):
    """Staff who sees every job (view_all_jobs) but may manage only their own."""
    u = django_user_model.objects.create_user("wes", password="wes-pass-123", is_staff=True)
    return grant(u, "view_job", "view_all_jobs")


@pytest.fixture
def boss(manager):
    """The conftest manager (view_all_jobs, manage_all_jobs) who may open the admin."""
    return grant(manager, "view_job", "delete_job")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-123")


@pytest.fixture
def make_job() -> Callable[..., Job]:
    """make_job(status, owner, **fields): a demo.steps job forced into `status`."""

    def make(status: str = JobStatus.PENDING, owner=None, **fields: Any) -> Job:
        config = fields.pop("config", {"steps": 2, "delay": 0})
        job = services.job_create(
            job_type=fields.pop("job_type", "demo.steps"),
            config=config,
            user=owner,
            draft=status == JobStatus.DRAFT,
            release=fields.pop("release", None),
        )
        now = timezone.now()
        if status in (JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED):
            fields.setdefault("started_at", now - timedelta(seconds=3))
            fields.setdefault("attempts", 1)
        if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
            fields.setdefault("finished_at", now)
        if status == JobStatus.COMPLETED:
            fields.setdefault("progress_done", job.progress_total)
            job.tasks.update(status=TaskStatus.SUCCEEDED)
        if status == JobStatus.FAILED:
            job.tasks.filter(position=1).update(status=TaskStatus.FAILED, error="Boom")
        Job.objects.filter(pk=job.pk).update(status=status, **fields)
        job.refresh_from_db()
        return job

    return make
