"""API tokens: issued for a username and password, stored hashed, expiring, revocable.

django-rest-knox keeps only a SHA-512 digest of each token (and its first 15
characters to find it), with an expiry (REST_KNOX["TOKEN_TTL"], from
JOBDECK_TOKEN_TTL_HOURS): the token itself is shown once, to whoever logged in,
and never again — not in the admin, not to staff with every view permission.
Revoking is deleting the row: POST /api/auth/logout/ (this token),
/api/auth/logout-all/ (all of the caller's), or the admin's API tokens page.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from knox import views as knox_views
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .authentication import TokenAuthentication


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, style={"input_type": "password"})

    def validate(self, attrs: dict) -> dict:
        user = authenticate(
            self.context.get("request"), username=attrs["username"], password=attrs["password"]
        )
        if user is None:
            raise serializers.ValidationError(
                "Unable to log in with provided credentials.", code="authorization"
            )
        attrs["user"] = user
        return attrs


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown this once: only its digest is stored.")
    expiry = serializers.DateTimeField(allow_null=True)


class TokenView(APIView):
    """Exchange a username and password for a new API token (`Authorization: Token …`)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    error_codes = ["403"]  # the user already holds TOKEN_LIMIT_PER_USER live tokens

    @extend_schema(request=TokenRequestSerializer, responses=TokenSerializer, auth=[])
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        now = timezone.now()
        user.auth_token_set.filter(expiry__lt=now).delete()  # expired: gone for good
        limit = knox_settings.TOKEN_LIMIT_PER_USER
        live = user.auth_token_set.filter(Q(expiry__gt=now) | Q(expiry__isnull=True))
        if limit is not None and live.count() >= limit:
            raise exceptions.PermissionDenied(
                f"{user.get_username()} already holds {limit} live tokens; "
                "revoke some (POST /api/auth/logout-all/) first."
            )
        instance, token = AuthToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL)
        return Response(TokenSerializer({"token": token, "expiry": instance.expiry}).data)


class LogoutView(knox_views.LogoutView):
    """Revoke the token this request is authenticated with."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, format: Any = None) -> Response:
        return super().post(request, format)


class LogoutAllView(knox_views.LogoutAllView):
    """Revoke every token of the caller."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, format: Any = None) -> Response:
        return super().post(request, format)
