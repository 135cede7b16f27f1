"""OpenAPI generation: every operation documents the errors it can return.

drf-spectacular documents only success responses; clients (and schemathesis'
status-code conformance check) need the error statuses and their JSON shapes too.
"""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny

DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# {"field": ["message"]}, nested for lists of objects (bulk creation).
VALIDATION_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": {}}

DESCRIPTIONS = {
    "400": 'Invalid input: `{"field": ["message"]}`.',
    "401": "Not authenticated.",
    "403": "Authenticated but not allowed.",
    "404": "Not found, or not visible to this user.",
    "405": "Method not allowed.",
    "409": "Illegal state transition.",
    "413": "Request body too large.",
    "429": "Throttled.",
}


def _error(code: str) -> dict[str, Any]:
    schema = VALIDATION_SCHEMA if code == "400" else DETAIL_SCHEMA
    return {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": schema}}}


EMPTY_STRING: dict[str, Any] = {"type": "string", "maxLength": 0}
CONSTRAINTS = ("format", "enum", "minLength", "maxLength", "pattern", "minimum", "maximum")


def or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or an empty string: a filter given empty is no filter (django-filter)."""
    if schema.get("type") == "string" and not any(k in schema for k in CONSTRAINTS):
        return schema
    if "anyOf" in schema and EMPTY_STRING in schema["anyOf"]:
        return schema
    return {"anyOf": [schema, EMPTY_STRING]}


class JobdeckAutoSchema(AutoSchema):
    """AutoSchema adding the error responses an operation can produce, and saying that
    a list's filters may be given empty (`?status=` is no filter)."""

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        filterset = getattr(self.view, "filterset_class", None)
        if operation is None or filterset is None or self.method.upper() != "GET":
            return operation
        names = set(filterset.base_filters)
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query" and parameter.get("name") in names:
                parameter["schema"] = or_empty(parameter["schema"])
        return operation

    def _get_response_bodies(
        self, direction: Literal["request", "response"] = "response"
    ) -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        method = self.method.upper()
        has_body = method in ("POST", "PUT", "PATCH")
        has_path_param = "{" in self.path
        anonymous = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        codes = ["429"]
        if has_body or method == "GET":
            # Bad bodies, bad filters and bad query parameters.
            codes.append("400")
        if not anonymous:
            codes += ["401", "403"]
        if has_path_param or method == "GET":
            # Unknown or invisible objects; an invalid list cursor is a 404 too.
            codes.append("404")
        if has_path_param and method != "GET":
            codes.append("409")
        if has_body:
            codes.append("413")
        codes += getattr(self.view, "error_codes", [])  # a view's own refusals
        for code in codes:
            responses.setdefault(code, _error(code))
        return responses
