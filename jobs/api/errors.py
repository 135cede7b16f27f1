"""One error shape for the whole API.

DRF's shapes: `{"field": ["message"]}` for validation errors (400) and
`{"detail": "…"}` otherwise. Domain errors map here: Django's ValidationError →
400, Django's PermissionDenied (a job type the user may not run) → 403 with its
reason, IllegalTransition → 409, an immutable version → 405, a body over Django's
size limit → 413, other suspicious input (too many fields…) → 400; anything
unexpected is left to DRF (and so is a bug to fix, never a shape to rely on).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.api.parsers import RequestTooLarge
from jobs.exceptions import IllegalTransition, ImmutableError, JobError, validation_errors
from jobs.services import BulkValidationError


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the object's current state."
    default_code = "conflict"


def exception_handler(exc, context):
    if isinstance(exc, BulkValidationError):
        # {"jobs": {"<index>": {"field": ["message"]}}}: which items, and why.
        exc = exceptions.ValidationError({"jobs": {str(i): e for i, e in exc.errors.items()}})
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_errors(exc))
    elif isinstance(exc, PermissionDenied):
        # A service's refusal (jobs.permissions.JobTypeDenied, …) keeps its reason.
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, IllegalTransition):
        exc = Conflict(str(exc))
    elif isinstance(exc, ImmutableError):
        exc = exceptions.MethodNotAllowed(
            context["request"].method if context.get("request") else "PUT", str(exc)
        )
    elif isinstance(exc, JobError):
        exc = Conflict(str(exc))
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(str(exc) or None)
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(str(exc) or None)
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
