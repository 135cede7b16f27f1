"""Job types are registered in code; django-q2 settings that break guarantees are refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from jobs import registry, services
from jobs.checks import check_q_cluster
from jobs.models import Job

pytestmark = pytest.mark.django_db


def test_built_in_job_types_are_registered():
    names = {jt.name for jt in registry.all_types()}
    assert {"demo.steps", "maintenance.cleanup"} <= names


def test_an_unknown_job_type_is_refused_and_nothing_is_created():
    with pytest.raises(ValidationError) as err:
        services.job_create(job_type="os.system", config={})
    assert err.value.message_dict == {"job_type": ["Unknown job type: 'os.system'."]}
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"steps": 0}, "steps: Ensure this value is greater than or equal to 1."),
        ({}, "steps: This field is required."),
        ({"steps": 2, "fail_at": 3}, "fail_at: Must not exceed steps."),
        ([1, 2], "Config must be a JSON object."),
    ],
)
def test_an_invalid_config_is_refused_naming_the_field_and_nothing_is_created(config, message):
    with pytest.raises(ValidationError) as err:
        services.job_create(job_type="demo.steps", config=config)
    assert err.value.message_dict == {"config": [message]}
    assert not Job.objects.exists()


def test_the_config_is_stored_as_the_type_cleaned_it():
    job = services.job_create(job_type="demo.steps", config={"steps": "3"})
    assert job.config == {"steps": 3, "delay": 1.0, "fail_at": None, "fail_attempts": 1}
    assert list(job.tasks.values_list("name", flat=True)) == ["step 1", "step 2", "step 3"]


@pytest.mark.parametrize(
    "priority, run_after, max_attempts, field",
    [(101, None, None, "priority"), (0, "naive", None, "run_after"), (0, None, 0, "max_attempts")],
)
def test_scheduling_fields_are_validated(priority, run_after, max_attempts, field):
    from datetime import datetime

    when = datetime(2030, 1, 1) if run_after == "naive" else None
    with pytest.raises(ValidationError) as err:
        services.job_create(
            job_type="demo.steps",
            config={"steps": 1},
            priority=priority,
            run_after=when,
            max_attempts=max_attempts,
        )
    assert list(err.value.message_dict) == [field]


def test_config_fields_are_described_for_generated_forms():
    fields = {f["name"]: f for f in registry.get("demo.steps").describe_config()}
    assert fields["steps"]["type"] == "integer" and fields["steps"]["required"]
    assert fields["steps"]["min_value"] == 1
    assert fields["delay"]["default"] == 1.0


def test_the_shipped_q_cluster_settings_pass_the_startup_check():
    assert check_q_cluster() == []


@pytest.mark.parametrize(
    "override, error_id",
    [
        ({"timeout": 600, "retry": 600}, "jobdeck.E002"),
        ({"max_attempts": 0}, "jobdeck.E003"),
        ({"ack_failures": False}, "jobdeck.E004"),
        ({"recycle": 0, "max_rss": None}, "jobdeck.E005"),
        ({"timeout": None}, "jobdeck.E001"),
    ],
)
def test_unsafe_q_cluster_settings_are_refused_at_startup(settings, override, error_id):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, **override}
    assert error_id in [e.id for e in check_q_cluster()]


def test_secret_config_fields_are_redacted_for_display():
    class Secretive(registry.JobType):
        name = "test.secretive"
        secret_fields = ("token",)

    registry.register(Secretive)
    try:
        assert registry.redact("test.secretive", {"token": "s3cr3t", "n": 1}) == {
            "token": "********",
            "n": 1,
        }
    finally:
        registry.unregister("test.secretive")


def test_secret_values_never_reach_log_lines_or_error_messages():
    from rest_framework import serializers

    from jobs import runner
    from jobs.models import JobLog

    class Config(serializers.Serializer):
        token = serializers.CharField()

    class Leaky(registry.JobType):
        name = "test.leaky"
        config_serializer = Config
        secret_fields = ("token",)

        def run(self, ctx):
            ctx.log(f"calling the API with {ctx.config['token']}")
            raise RuntimeError(f"401 for token {ctx.config['token']}")

    registry.register(Leaky)
    try:
        job = services.job_create(job_type="test.leaky", config={"token": "s3cr3t-value"})
        runner.run_job(job.pk)
        job.refresh_from_db()
        texts = [job.error, *JobLog.objects.filter(job=job).values_list("message", flat=True)]
        texts += list(job.tasks.values_list("error", flat=True))
        assert job.status == "failed" and "********" in job.error
        assert not [t for t in texts if "s3cr3t-value" in t]
    finally:
        registry.unregister("test.leaky")
