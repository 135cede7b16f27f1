"""Token authentication of the API: django-rest-knox's, hardened against hostile headers.

Kept apart from the views (jobs/api/auth.py): DRF imports authentication classes
while rest_framework.views is still being imported.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox import auth as knox_auth
from knox.models import AuthToken
from rest_framework import exceptions

# knox's tokens are 64 hex digits; tokens migrated from DRF's authtoken are 40.
_TOKEN = re.compile(r"[0-9a-f]{40,64}")


class TokenAuthentication(knox_auth.TokenAuthentication):
    """knox's token authentication, refusing a malformed token (bytes that are not
    UTF-8, a NUL, anything but hex digits) with a 401 before any query: knox would
    otherwise raise UnicodeDecodeError, or send PostgreSQL a NUL it cannot store."""

    def authenticate_credentials(self, token: bytes) -> tuple[Any, AuthToken]:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if not _TOKEN.fullmatch(text):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)


class TokenScheme(OpenApiAuthenticationExtension):
    """The schema's security scheme for our token authentication (as DRF's was named)."""

    target_class = "jobs.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict:
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Token"
        )
