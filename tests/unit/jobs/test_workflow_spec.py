"""jobs.workflows.validate_spec (a spec checked as workflow_create would, nothing written)
and a node's release named by id or slug."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from jobs import workflows
from jobs.models import Job, Workflow
from jobs.permissions import JobTypeDenied
from jobs.services import BulkValidationError
from tests.support.release_factories import make_release

pytestmark = pytest.mark.django_db


def node(after=(), **extra):
    return {"job_type": "demo.steps", "config": {"steps": 1}, "after": list(after), **extra}


def test_a_valid_spec_passes_and_writes_nothing():
    workflows.validate_spec({"name": "n", "jobs": {"a": node(), "b": node(["a"])}})
    assert not Workflow.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"jobs": {"a": node(["b"]), "b": node(["a"])}}, ValidationError),
        ({"jobs": {"a": node(["zz"])}}, BulkValidationError),
        ({"jobs": {"a": {"job_type": "demo.steps", "config": {"steps": 0}}}}, BulkValidationError),
        ({"jobs": {"a": node(unique_key="k")}}, BulkValidationError),
        ({"jobs": "none"}, ValidationError),
    ],
)
def test_a_bad_spec_raises_what_workflow_create_would(spec, error):
    with pytest.raises(error):
        workflows.validate_spec(spec)
    with pytest.raises(error):
        workflows.workflow_create(spec=spec)
    assert not Job.objects.exists()


def test_the_users_right_to_run_each_type_is_checked_unless_jobdeck_itself(user):
    spec = {"jobs": {"clean": {"job_type": "maintenance.cleanup", "config": {}}}}
    with pytest.raises(JobTypeDenied):
        workflows.validate_spec(spec, user)
    workflows.validate_spec(spec)


def test_a_nodes_release_is_named_by_id_or_slug():
    release = make_release("web")
    spec = {"jobs": {"a": node(release="web"), "b": node(["a"], release=release.pk)}}
    workflows.validate_spec(spec)
    _, ids = workflows.workflow_create(spec=spec)
    assert {Job.objects.get(pk=pk).release_id for pk in ids.values()} == {release.pk}
    with pytest.raises(BulkValidationError) as caught:
        workflows.validate_spec({"jobs": {"a": node(release="nope")}})
    assert caught.value.errors == {
        "a": {"release": ["There is no release 'nope' (give its id or slug)."]}
    }
