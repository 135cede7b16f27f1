"""/api/templates/: job templates, and running one in one call (thin over jobs.jobtemplates).

Readable by any authenticated user (secret config fields masked); writes need the Django
model permissions (`jobs.add_jobtemplate`, `change_…`, `delete_…`) and the right to run
the template's job type; running one needs only the latter, checked by job_create.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import jobtemplates, registry
from jobs.models import JobTemplate

from .parsers import JSONParser
from .permissions import ReadAnyWriteByModelPerms
from .serializers import RELEASES, ConfigField, JobDetailSerializer, tags_field


class TemplateInputSerializer(serializers.Serializer):
    """Types only; validity (the job type, its config, the queue, tags) is the service's."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    job_type = serializers.CharField(max_length=100)
    config = ConfigField(required=False, default=dict)
    release = serializers.PrimaryKeyRelatedField(
        queryset=RELEASES, required=False, allow_null=True, default=None
    )
    queue = serializers.CharField(max_length=100, required=False, default="default")
    priority = serializers.IntegerField(min_value=-100, max_value=100, required=False, default=0)
    tags = tags_field()


class TemplateSerializer(serializers.ModelSerializer):
    config = serializers.SerializerMethodField()
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = JobTemplate
        fields = [
            "id",
            "name",
            "description",
            "job_type",
            "config",
            "release",
            "queue",
            "priority",
            "tags",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {}})
    def get_config(self, obj: JobTemplate) -> dict:
        return registry.redact(obj.job_type, obj.config)


class TemplateViewSet(viewsets.ModelViewSet):
    """Job templates: list, create, read, change, delete, and run."""

    serializer_class = TemplateSerializer
    permission_classes = [IsAuthenticated, ReadAnyWriteByModelPerms]
    parser_classes = [JSONParser]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    queryset = JobTemplate.objects.none()  # for schema generation; see get_queryset

    def get_queryset(self) -> QuerySet[JobTemplate]:
        return JobTemplate.objects.select_related("created_by").order_by("-id")

    def get_permissions(self):
        if self.action == "run":
            return [IsAuthenticated()]  # the job type's own right, checked by job_create
        return super().get_permissions()

    def _out(self, template: JobTemplate) -> dict:
        return TemplateSerializer(self.get_queryset().get(pk=template.pk)).data

    @extend_schema(request=TemplateInputSerializer, responses={201: TemplateSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = TemplateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = jobtemplates.template_create(user=request.user, via="api", **data.validated_data)
        return Response(self._out(template), status=status.HTTP_201_CREATED)

    @extend_schema(request=TemplateInputSerializer, responses=TemplateSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        template = self.get_object()
        data = TemplateInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if partial:  # only what the client sent, not the input serializer's defaults
            fields = {k: v for k, v in fields.items() if k in request.data}
        template = jobtemplates.template_update(
            template=template, user=request.user, via="api", **fields
        )
        return Response(self._out(template))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete a template; one that schedules use is a 400 naming them."""
        jobtemplates.template_delete(template=self.get_object(), user=request.user, via="api")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={201: JobDetailSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Run the template now: its job, owned by the caller (403 if they may not run
        its job type)."""
        job = jobtemplates.template_run(template=self.get_object(), user=request.user, via="api")
        job.refresh_from_db()
        return Response(JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)
