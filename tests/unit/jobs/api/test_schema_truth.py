"""The responses match /api/schema/ (schemathesis checks every operation; these pin the
reported cases).

The findings: Schedule.time came back as "02:30" where the schema said
`format: time`; last_job_status could be null where the schema said it could not.
"""

from __future__ import annotations

import re

import jsonschema
import pytest
from rest_framework.test import APIClient

from scheduler import services

pytestmark = pytest.mark.django_db


def openapi() -> dict:
    return APIClient().get("/api/schema/?format=json").json()


def test_a_schedule_as_returned_is_valid_against_its_schema(api_client, user):
    services.schedule_create(
        name="nightly", job_type="demo.steps", config={"steps": 1}, kind="daily", time="02:30"
    )
    body = api_client.get("/api/schedules/").json()["results"][0]
    document = openapi()
    schema = document["components"]["schemas"]["Schedule"]

    assert body["time"] == "02:30" and body["last_job_status"] is None
    assert body["created_by"] is None
    assert "format" not in schema["properties"]["time"]
    assert re.fullmatch(schema["properties"]["time"]["pattern"], body["time"])
    for name in ("last_job_status", "created_by", "time"):
        assert schema["properties"][name]["nullable"] is True
    jsonschema.validate(
        body,
        {
            "$ref": "#/components/schemas/Schedule",
            "components": openapi_nullable(document["components"]),
        },
    )


def openapi_nullable(schema: dict) -> dict:
    """OpenAPI 3.0's `nullable: true` as JSON Schema's type union, for jsonschema."""
    if isinstance(schema, dict):
        schema = {k: openapi_nullable(v) for k, v in schema.items()}
        if schema.pop("nullable", False):
            schema = {"anyOf": [schema, {"type": "null"}]}
    elif isinstance(schema, list):
        schema = [openapi_nullable(v) for v in schema]
    return schema


@pytest.mark.parametrize("page_size", ["abc", "0", "-3", "²", "1.5"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_a_400(api_client, page_size):
    response = api_client.get(f"/api/jobs/?page_size={page_size}")

    assert response.status_code == 400 and "page_size" in response.json()


def test_a_schedule_filter_value_that_cannot_match_is_a_400_or_an_empty_page(api_client):
    assert api_client.get("/api/schedules/?enabled=maybe").status_code == 400
    empty = api_client.get("/api/schedules/?release=424242")
    assert empty.status_code == 200 and empty.json()["results"] == []
