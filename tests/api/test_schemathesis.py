"""Property-based run of the whole API against its own OpenAPI schema (schemathesis).

Every operation gets a bounded number of generated requests, authenticated as a
user who owns a few jobs in every state; no response may be a 5xx or break the
schema (status code, content type, body shape, headers).
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from knox.models import AuthToken
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from jobs.models import JobStatus
from tests.jobs.factories import make_job

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 12
# Left out on purpose: "schema-valid request rejected" flags every business rule the
# schema cannot express (an unknown job type, a config the type refuses, wrong
# credentials), and "schema-violating request accepted" flags DRF's documented
# leniency (an unparsable page_size falls back to the default, an empty filter is
# no filter). Server errors, status codes, content types, response bodies and
# headers, auth and resource checks all stay on.
EXCLUDED_CHECKS = [positive_data_acceptance, negative_data_rejection]


@pytest.fixture
def token(user) -> str:
    # Jobs in every state, owned by the client, so that generated ids hit real rows.
    for status in JobStatus.values:
        make_job(status, user=user)
    return AuthToken.objects.create(user=user)[1]


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


def test_every_operation_answers_within_its_schema_and_never_with_a_5xx(
    token, subtests, keep_test_connection
):
    from config.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    headers = {"Authorization": f"Token {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with subtests.test(operation=operation.label, mode=mode.value):
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
        case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)

    try:
        check()
    except Unsatisfiable:
        # Nothing to negate: the operation takes no parameters and no body.
        assert mode is GenerationMode.NEGATIVE
