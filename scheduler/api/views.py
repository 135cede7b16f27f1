"""Schedules API: thin views over scheduler.services and scheduler.selectors."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import workflows
from jobs.api.permissions import ReadAnyWriteByModelPerms
from jobs.api.serializers import JobDetailSerializer, JobListSerializer
from jobs.api.workflows import WorkflowDetailSerializer
from jobs.models import Workflow

from .. import selectors, services
from ..models import Schedule
from .filters import ScheduleFilter
from .serializers import (
    PreviewQuerySerializer,
    PreviewSerializer,
    ScheduleInputSerializer,
    ScheduleSerializer,
    ToggleSerializer,
)


class ChangeSchedulePerm(ReadAnyWriteByModelPerms):
    """Toggle and run-now change the schedule: they need `change_schedule`, not `add`."""

    perms_map = {
        **ReadAnyWriteByModelPerms.perms_map,
        "POST": ["%(app_label)s.change_%(model_name)s"],
    }


class ScheduleViewSet(viewsets.ModelViewSet):
    """Schedules: readable by any authenticated user, writable per model permissions."""

    serializer_class = ScheduleSerializer
    permission_classes = [IsAuthenticated, ReadAnyWriteByModelPerms]
    filterset_class = ScheduleFilter
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.schedule_list()

    def get_permissions(self):
        if self.action in ("toggle", "run"):
            return [IsAuthenticated(), ChangeSchedulePerm()]
        return super().get_permissions()

    @extend_schema(request=ScheduleInputSerializer, responses={201: ScheduleSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = ScheduleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = services.schedule_create(user=request.user, via="api", **data.validated_data)
        return Response(self._out(schedule), status=status.HTTP_201_CREATED)

    @extend_schema(request=ScheduleInputSerializer, responses=ScheduleSerializer)
    def update(self, request: Request, *args, **kwargs) -> Response:
        partial = kwargs.pop("partial", False)
        schedule = self.get_object()
        data = ScheduleInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if partial:  # only what the client sent, not the input serializer's defaults
            fields = {k: v for k, v in fields.items() if k in request.data}
        schedule = services.schedule_update(
            schedule=schedule, user=request.user, via="api", **fields
        )
        return Response(self._out(schedule))

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        services.schedule_delete(schedule=self.get_object(), user=request.user, via="api")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ToggleSerializer, responses=ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def toggle(self, request: Request, pk=None) -> Response:
        """Enable or disable; without a body, flip."""
        data = ToggleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = services.schedule_toggle(
            schedule=self.get_object(),
            enabled=data.validated_data["enabled"],
            user=request.user,
            via="api",
        )
        return Response(self._out(schedule))

    @extend_schema(
        request=None,
        responses={
            201: PolymorphicProxySerializer(
                component_name="ScheduleRun",
                serializers=[JobDetailSerializer, WorkflowDetailSerializer],
                resource_type_field_name=None,
            )
        },
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk=None) -> Response:
        """Run now: create the job immediately (a workflow schedule: the workflow, as
        GET /api/workflows/<id>/ shows it); next_run_at does not move."""
        made = services.schedule_run_now(schedule=self.get_object(), user=request.user, via="api")
        if isinstance(made, Workflow):
            workflow = workflows.with_counts(Workflow.objects.filter(pk=made.pk)).get()
            return Response(WorkflowDetailSerializer(workflow).data, status=status.HTTP_201_CREATED)
        return Response(
            JobDetailSerializer(made, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(responses=JobListSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])  # the schedule filters are not its
    def history(self, request: Request, pk=None) -> Response:
        """The jobs this schedule created that you may see, newest first (paginated)."""
        schedule = self.get_object()
        jobs = selectors.schedule_history(schedule=schedule, user=request.user)
        page = self.paginate_queryset(jobs)
        return self.get_paginated_response(JobListSerializer(page, many=True).data)

    @extend_schema(parameters=[PreviewQuerySerializer], responses=PreviewSerializer)
    @action(detail=True, methods=["get"], filter_backends=[])
    def preview(self, request: Request, pk=None) -> Response:
        """The next n occurrences (default 10, at most 100) in local time and UTC."""
        query = PreviewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        schedule = self.get_object()
        rows = selectors.schedule_preview(schedule=schedule, n=query.validated_data["n"])
        return Response(
            {
                "timezone": schedule.timezone,
                "description": selectors.schedule_description(schedule),
                "enabled": schedule.enabled,
                "results": rows,
            }
        )

    def _out(self, schedule: Schedule) -> dict:
        return ScheduleSerializer(
            selectors.schedule_list().get(pk=schedule.pk), context=self.get_serializer_context()
        ).data
