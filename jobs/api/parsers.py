"""Parsers that cannot be turned into a 500, or a memory hog, by their input."""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import QueryDict
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser as DRFFormParser
from rest_framework.parsers import JSONParser as DRFJSONParser
from rest_framework.utils import json
from rest_framework.utils.mediatypes import _MediaType

if TYPE_CHECKING:
    # django-stubs' type of a QueryDict made without mutable=True.
    from django.http.request import _ImmutableQueryDict


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


def read_limited(stream) -> bytes:
    """The body, or RequestTooLarge past DATA_UPLOAD_MAX_MEMORY_SIZE.

    DRF reads the raw stream, so Django's limit (enforced only by `request.body`)
    would not apply; we read at most limit + 1 bytes instead.
    """
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    raw = stream.read(limit + 1) if limit is not None else stream.read()
    if limit is not None and len(raw) > limit:
        raise RequestTooLarge(f"Request body exceeds {limit} bytes.")
    return raw


class JSONParser(DRFJSONParser):
    """DRF's JSON parser with Django's body size limit and a nesting guard.

    A body nested deeper than Python's recursion limit raises RecursionError inside
    `json.loads`, which DRF does not catch: it becomes a 400 here.
    """

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        parser_context = parser_context or {}
        raw = read_limited(stream)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        if media_type:
            charset = _MediaType(media_type).params.get("charset")
            encoding = charset or encoding
        try:
            codecs.lookup(encoding)
            text = raw.decode(encoding)
            parse_constant = json.strict_constant if self.strict else None
            return json.loads(text, parse_constant=parse_constant)
        except (ValueError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None


class FormParser(DRFFormParser):
    """DRF's form parser with Django's body size limit."""

    def parse(self, stream, media_type=None, parser_context=None) -> _ImmutableQueryDict:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        return QueryDict(read_limited(stream), encoding=encoding)
