"""/api/export/ and /api/import/: the `schedules export|import` commands over HTTP
(thin over jobs.exchange; the document is the same JSON the command writes)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import exchange

from .filters import StrictBooleanField
from .pagination import reject_unknown_query_params
from .parsers import JSONParser


def _flag(request: Request, name: str) -> bool:
    """`?name=true|false|1|0` (absent: false); anything else a 400 naming it."""
    try:
        return bool(StrictBooleanField(required=False).clean(request.query_params.get(name)))
    except ValidationError as exc:
        raise ValidationError({name: exc.messages}) from None


class DocumentSerializer(serializers.Serializer):
    jobdeck = serializers.CharField(default=exchange.FORMAT)
    version = serializers.IntegerField(default=exchange.VERSION)
    exported_at = serializers.DateTimeField(required=False)
    secrets = serializers.ChoiceField(choices=["masked", "revealed"], required=False)
    templates = serializers.ListField(child=serializers.DictField(), required=False)
    schedules = serializers.ListField(child=serializers.DictField(), required=False)


class ChangeSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=["create", "update", "unchanged"])
    changes = serializers.DictField()


class ImportResultSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    summary = serializers.DictField(child=serializers.IntegerField())
    changes = ChangeSerializer(many=True)


class ExportView(APIView):
    """Every schedule and job template (and each kind an app registers), by name."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                many=True,
                # Every app has registered its kinds (AppConfig.ready) before URLs load.
                enum=[kind.name for kind in exchange.kinds()],
                description="Only these kinds (repeatable); default all.",
            ),
            OpenApiParameter(
                "reveal_secrets",
                bool,
                description="Secret config fields in clear: superusers only (403 otherwise).",
            ),
        ],
        responses=DocumentSerializer,
    )
    def get(self, request: Request) -> Response:
        reject_unknown_query_params(request, known=("kind", "reveal_secrets"))
        names = request.query_params.getlist("kind") or None
        doc = exchange.export_document(
            user=request.user, kind_names=names, reveal_secrets=_flag(request, "reveal_secrets")
        )
        return Response(doc)


class ImportView(APIView):
    """Create or update by name what the document describes, all or nothing."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        request=DocumentSerializer,
        parameters=[
            OpenApiParameter("dry_run", bool, description="Report the changes; make none."),
        ],
        responses={200: ImportResultSerializer},
        description="Any bad entry refuses the whole document, nothing changed: 400 "
        '`{"schedules": {"2": {"cron": ["…"]}}}` (kind, index, field).',
    )
    def post(self, request: Request) -> Response:
        reject_unknown_query_params(request, known=("dry_run",))
        dry_run = _flag(request, "dry_run")
        if not isinstance(request.data, dict):
            return Response(
                {"non_field_errors": ["The document must be a JSON object."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            result = exchange.import_document(
                dict(request.data), user=request.user, via="api", dry_run=dry_run
            )
        except exchange.ImportRefused as exc:
            return Response(exc.as_api(), status=status.HTTP_400_BAD_REQUEST)
        return Response(result.as_dict())
