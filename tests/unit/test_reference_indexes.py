"""Every foreign key the database follows on delete (cascade or set null) leads an index:
without one, deleting a row scans the referring table (a cleanup of 1,000,000 jobs would
scan jobs_job once per job)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import models

APPS = ["jobs", "scheduler", "releases", "notifications", "monitoring"]


def _leading_columns(model: type[models.Model]) -> set[str]:
    meta = model._meta
    leading = set()
    for index in meta.indexes:
        if index.fields:
            leading.add(index.fields[0].lstrip("-"))
    for constraint in meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and constraint.fields:
            leading.add(constraint.fields[0])
    for together in meta.unique_together:
        leading.add(together[0])
    return leading


def _references():
    for label in APPS:
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.concrete_fields:
                if isinstance(field, models.ForeignKey):
                    yield pytest.param(model, field, id=f"{model._meta.label}.{field.name}")


@pytest.mark.parametrize(("model", "field"), list(_references()))
def test_a_foreign_key_leads_an_index(model, field):
    assert field.db_index or field.unique or field.name in _leading_columns(model), (
        f"{model._meta.label}.{field.name} has no index: deleting the row it references "
        "scans the whole table"
    )
