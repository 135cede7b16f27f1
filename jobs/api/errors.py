"""One error shape for the whole API.

DRF's shapes: `{"field": ["message"]}` for validation errors (400) and
`{"detail": "…"}` otherwise. Domain errors map here: Django's ValidationError →
400, IllegalTransition → 409, an immutable version → 405; anything unexpected is
left to DRF (and so is a bug to fix, never a shape to rely on).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.exceptions import IllegalTransition, JobError
from releases.models import ImmutableError


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the object's current state."
    default_code = "conflict"


def validation_error_detail(exc: DjangoValidationError) -> dict | list:
    if hasattr(exc, "error_dict"):
        return {field: [str(m) for m in messages] for field, messages in exc.message_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_error_detail(exc))
    elif isinstance(exc, IllegalTransition):
        exc = Conflict(str(exc))
    elif isinstance(exc, ImmutableError):
        exc = exceptions.MethodNotAllowed(
            context["request"].method if context.get("request") else "PUT", str(exc)
        )
    elif isinstance(exc, JobError):
        exc = Conflict(str(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(response.data, list):
        response.data = {"non_field_errors": response.data}
    return response


def error_response(detail: str, code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"detail": detail}, status=code)
