"""Property-based run of the whole API against its own OpenAPI schema (schemathesis).

Every operation gets a bounded number of generated requests (schema-valid and
schema-violating), each with **all** of schemathesis' checks, for two roles: an
ordinary user who owns a few jobs in every state, and a superuser who sees
everything (releases with versions, schedules of every kind, other users' jobs). No
response may be a 5xx, nor break the schema: status code, content type, body,
headers, and the rest of the checks.

What the schema cannot promise is configured per operation, not switched off
(SCHEMATHESIS_CONFIG): a schema-valid request may still be refused with a 400 where
the refusal depends on data no schema expresses: credentials, which job types and
configs exist, a cron expression or a timezone name, a release's versions.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from knox.models import AuthToken
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from jobs import services as job_services
from jobs.models import Job, JobStatus
from scheduler import services as schedule_services
from tests.support.job_factories import make_job
from tests.support.release_factories import make_release, make_version

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 10
# A 400 to a schema-valid request is right where validity depends on data the schema
# cannot express; everywhere else it would be a schema that lies.
DATA_DEPENDENT = [
    ("POST", "/api/auth/token/"),  # the credentials
    ("POST", "/api/jobs/"),  # the job type's config and rules, the release's versions
    ("POST", "/api/jobs/bulk/"),
    ("POST", "/api/workflows/"),  # the nodes' job types, configs, and the graph's shape
    ("POST", "/api/jobs/{id}/retry/"),
    ("POST", "/api/wizard/jobs/"),
    ("POST", "/api/schedules/"),  # cron expressions, timezone names, the job type's config
    ("PUT", "/api/schedules/{id}/"),
    ("PATCH", "/api/schedules/{id}/"),
    ("POST", "/api/releases/"),  # a slug already taken
    ("PATCH", "/api/releases/{id}/"),
    ("POST", "/api/releases/{release_pk}/versions/"),  # the manifest against the files
    ("POST", "/api/releases/{id}/rollback/"),  # whether there is a version to go back to
]
# Bodies past DATA_UPLOAD_MAX_MEMORY_SIZE (10,000 bulk items of generated junk) are
# refused before they are parsed: a 413 is a rejection too.
LARGE_BODIES = [("POST", "/api/jobs/bulk/"), ("POST", "/api/workflows/")]
NEGATIVE_REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429"]
SCHEMATHESIS_CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-method": method,
                "include-path": path,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]
                    },
                    **(
                        {
                            "negative_data_rejection": {
                                "expected-statuses": [*NEGATIVE_REJECTED, "413"]
                            }
                        }
                        if (method, path) in LARGE_BODIES
                        else {}
                    ),
                },
            }
            for method, path in DATA_DEPENDENT
        ]
    }
)


@pytest.fixture
def world(user, django_user_model, tmp_path, settings):
    """Rows for generated ids and filters to hit, and a token for each role."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1")
    for status in JobStatus.values:
        make_job(status, user=user)
        make_job(status, user=root)
    release = make_release("app", user=root)
    make_version(release, {"README.txt": b"v1"})
    make_version(release, {"README.txt": b"v2"})
    make_release("bare")  # no versions, no owner
    applied = job_services.job_create(
        job_type="release.apply", release=release, config={"version": 1}, user=root
    )
    Job.objects.filter(pk=applied.pk).update(
        status=JobStatus.COMPLETED, finished_at=timezone.now() - timedelta(days=1)
    )
    for kind, extra in (
        ("interval", {"interval_minutes": 5}),
        ("daily", {"time": "02:30"}),
        ("weekly", {"time": "23:15", "weekdays": [0, 4]}),
        ("cron", {"cron": "*/10 * * * *"}),
    ):
        schedule = schedule_services.schedule_create(
            name=f"every {kind}", job_type="demo.steps", config={"steps": 1}, kind=kind, **extra
        )
    schedule_services.schedule_run_now(schedule=schedule, user=root)  # one with a last job
    return {
        "user": AuthToken.objects.create(user=user)[1],
        "superuser": AuthToken.objects.create(user=root)[1],
    }


@pytest.fixture
def keep_test_connection():
    """Requests go through the real WSGI handler, whose request_started/finished
    signals close the connection, and with it the test's transaction; Django's
    own test client disconnects them the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def no_throttling(settings):
    # Hundreds of requests a minute from one user: rate limits are tested elsewhere.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}


@pytest.mark.parametrize("role", ["user", "superuser"])
def test_every_operation_passes_every_check_and_never_answers_with_a_5xx(
    world, role, subtests, keep_test_connection
):
    from config.wsgi import application

    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, config=SCHEMATHESIS_CONFIG
    )
    headers = {"Authorization": f"Token {world[role]}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:
        if operation.path in ("/api/auth/logout/", "/api/auth/logout-all/"):
            continue  # they revoke the token the run uses (tests/api/test_tokens.py)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with subtests.test(operation=operation.label, mode=mode.value, role=role):
                run_operation(operation, mode, headers)


def run_operation(operation, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def check(case) -> None:
        case.call_and_validate(headers=headers)

    try:
        check()
    except Unsatisfiable:
        # Nothing to negate: the operation takes no parameters and no body.
        assert mode is GenerationMode.NEGATIVE
