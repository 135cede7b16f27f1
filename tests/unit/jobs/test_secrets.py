"""A job type's secret config values never show, in whatever form they appear.

The findings: a secret in repr() form (a token with a backslash or a newline, raised
or logged with !r) was not masked in the error or the log; a secret a handler
returned in its result was returned by the API; a handler's own Python `logging`
calls reached the cluster's output unmasked.
"""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote

import pytest
from rest_framework import serializers
from rest_framework.test import APIClient

from jobs import registry, runner, services
from jobs.models import JobLog
from jobs.worker import secretlog

pytestmark = pytest.mark.django_db

# A token with a backslash, a newline, a quote and a non-ASCII letter: each has an
# escaped form of its own.
TOKEN = 'tok\\en\n"é-42'


class Config(serializers.Serializer):
    token = serializers.CharField(trim_whitespace=False)
    region = serializers.CharField(default="eu")


@pytest.fixture
def leaky():
    """A job type that leaks its secret every way a handler can."""

    class Leaky(registry.JobType):
        name = "test.leaky-forms"
        config_serializer = Config
        secret_fields = ("token",)

        def run(self, ctx):
            token = ctx.config["token"]
            ctx.log(f"calling with {token!r} and {json.dumps(token)}")
            logging.getLogger("some.library").warning(
                "GET https://api.example/?token=%s failed: %r", quote(token, safe=""), token
            )
            if ctx.config["region"] == "fail":
                raise RuntimeError(f"401 for {token!r}")
            return {"echo": token, "nested": [{"repr": repr(token)}], "note": f"used {token}"}

    registry.register(Leaky)
    yield Leaky
    registry.unregister("test.leaky-forms")


def forms_of(secret: str) -> list[str]:
    return [secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], quote(secret, safe="")]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for form in forms_of(TOKEN):
            assert form not in text, (form, text)


def test_every_escaped_form_of_a_secret_is_masked():
    text = f"a {TOKEN!r} b {json.dumps(TOKEN)} c {TOKEN!a} d {quote(TOKEN)} e {TOKEN}"

    masked = registry.mask_text(text, [TOKEN])

    assert_no_secret(masked)
    assert masked.count(registry.MASK) == 5


def test_a_secret_in_repr_form_is_masked_in_the_error_the_task_and_the_log(leaky):
    job = services.job_create(job_type=leaky.name, config={"token": TOKEN, "region": "fail"})

    runner.run_job(job.pk)

    job.refresh_from_db()
    assert job.status == "failed" and registry.MASK in job.error
    logs = list(JobLog.objects.filter(job=job).values_list("message", flat=True))
    assert_no_secret(job.error, *job.tasks.values_list("error", flat=True), *logs)


def test_a_secret_returned_in_a_result_is_never_stored_nor_returned_by_the_api(leaky, user):
    job = services.job_create(job_type=leaky.name, config={"token": TOKEN}, user=user)

    runner.run_job(job.pk)

    job.refresh_from_db()
    assert job.status == "completed"
    assert job.result["echo"] == registry.MASK
    client = APIClient()
    client.force_authenticate(user)
    body = client.get(f"/api/jobs/{job.pk}/").content.decode()
    assert_no_secret(
        body, json.dumps(job.result), *map(json.dumps, job.tasks.values_list("result", flat=True))
    )
    assert json.loads(body)["result"]["note"] == f"used {registry.MASK}"


def test_a_result_written_before_masking_is_masked_when_the_api_shows_it(leaky, user):
    job = services.job_create(job_type=leaky.name, config={"token": TOKEN}, user=user)
    type(job).objects.filter(pk=job.pk).update(result={"echo": TOKEN}, error=f"was {TOKEN!r}")
    client = APIClient()
    client.force_authenticate(user)

    for path in (f"/api/jobs/{job.pk}/", f"/api/jobs/{job.pk}/status/"):
        assert_no_secret(client.get(path).content.decode())


def test_a_handlers_own_logging_reaches_the_process_output_masked(leaky):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        job = services.job_create(job_type=leaky.name, config={"token": TOKEN})
        runner.run_job(job.pk)
        after = services.job_create(job_type=leaky.name, config={"token": "other"})
        logging.getLogger("some.library").warning("unrelated %s", TOKEN)  # no job running
    finally:
        logging.getLogger().removeHandler(handler)

    output = stream.getvalue()
    assert "some.library GET https://api.example/?token=********" in output
    assert_no_secret(output.split("unrelated")[0])
    assert secretlog.active_secrets() == () and after.pk


def test_the_logging_filter_masks_tracebacks_too(leaky):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    job = services.job_create(job_type=leaky.name, config={"token": TOKEN})
    secretlog.watch(job.pk, job.job_type, job.config)
    try:
        try:
            raise ValueError(f"bad {TOKEN!r}")
        except ValueError:
            logging.getLogger("handler").exception("failed")
    finally:
        secretlog.forget(job.pk)
        logging.getLogger().removeHandler(handler)

    assert "ValueError: bad '********'" in stream.getvalue()
    assert_no_secret(stream.getvalue())


def test_retrying_with_the_masked_config_the_api_showed_keeps_the_secret(leaky, user):
    job = services.job_create(
        job_type=leaky.name, config={"token": TOKEN, "region": "fail"}, user=user
    )
    runner.run_job(job.pk)
    client = APIClient()
    client.force_authenticate(user)
    shown = client.get(f"/api/jobs/{job.pk}/").json()["config"]
    assert shown["token"] == registry.MASK

    response = client.post(
        f"/api/jobs/{job.pk}/retry/", {"config": {**shown, "region": "eu"}}, format="json"
    )

    assert response.status_code == 200, response.json()
    job.refresh_from_db()
    assert job.config == {"token": TOKEN, "region": "eu"}
