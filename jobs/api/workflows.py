"""/api/workflows/: a graph of jobs created in one call, its status, cancel and retry
(thin over jobs.workflows, where the rules are).

Anyone authenticated may create one (each node's job type checks its own right to
run); a workflow is visible to its creator and to holders of jobs.view_all_jobs, and
cancel and retry need the right to act on its jobs (owner or jobs.manage_all_jobs).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import workflows
from jobs.models import Workflow

from .pagination import reject_unknown_query_params
from .parsers import JSONParser


class WorkflowCreateSerializer(serializers.Serializer):
    """Shapes only; the graph and each node's job spec are validated by jobs.workflows."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    jobs = serializers.DictField(
        child=serializers.DictField(),
        help_text='{"<node>": {<a job spec as for POST /api/jobs/>, "after": ["<node>", …], '
        '"on_parent_failure": "cancel" | "run"}, …}',
    )


class WorkflowCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    jobs = serializers.DictField(child=serializers.IntegerField())


class NodeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()


class WorkflowSerializer(serializers.ModelSerializer):
    """A workflow in lists: its status and progress from its jobs' counts (annotated)."""

    status = serializers.SerializerMethodField()
    done = serializers.IntegerField(read_only=True)
    total = serializers.IntegerField(read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Workflow
        fields = ["id", "name", "status", "done", "total", "created_by", "created_at", "schedule"]
        read_only_fields = fields

    def get_status(self, workflow: Workflow) -> str:
        return workflows.status_of(workflow)


class WorkflowDetailSerializer(WorkflowSerializer):
    """A workflow with each node's job and status, and the counts by status."""

    counts = serializers.SerializerMethodField()
    jobs = serializers.SerializerMethodField()

    class Meta(WorkflowSerializer.Meta):
        fields = [*WorkflowSerializer.Meta.fields, "counts", "jobs"]
        read_only_fields = fields

    _states: dict[int, workflows.WorkflowStatus] | None = None

    def _state(self, workflow: Workflow) -> workflows.WorkflowStatus:
        """The workflow's status, read once per serializer (three fields show it)."""
        if self._states is None:
            self._states = {}
        if workflow.pk not in self._states:
            self._states[workflow.pk] = workflows.workflow_status(workflow)
        return self._states[workflow.pk]

    def get_status(self, workflow: Workflow) -> str:
        return self._state(workflow).status

    def get_counts(self, workflow: Workflow) -> dict[str, int]:
        return self._state(workflow).counts

    @extend_schema(responses=NodeSerializer)
    def get_jobs(self, workflow: Workflow) -> dict[str, dict[str, Any]]:
        return {
            node: {"id": pk, "status": st} for node, (pk, st) in self._state(workflow).nodes.items()
        }


class WorkflowViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Workflows: create one (the whole graph, atomically), list, read, cancel, retry."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]
    queryset = Workflow.objects.none()  # for schema generation; see get_queryset

    def get_queryset(self) -> QuerySet[Workflow]:
        visible = workflows.visible_workflows(Workflow.objects.all(), self.request.user)
        return workflows.with_counts(visible).order_by("-id")

    def get_serializer_class(self) -> type:
        return WorkflowSerializer if self.action == "list" else WorkflowDetailSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        reject_unknown_query_params(request, ["cursor", "page_size"])
        return super().list(request, *args, **kwargs)

    @extend_schema(request=WorkflowCreateSerializer, responses={201: WorkflowCreatedSerializer})
    def create(self, request: Request) -> Response:
        """Create the whole graph in one transaction, validated as a whole: 400 names
        each bad node (`{"jobs": {"<node>": {"config": […]}}}`) or the cycle."""
        body = WorkflowCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        workflow, ids = workflows.workflow_create(
            spec=body.validated_data, user=request.user, via="api"
        )
        return Response({"id": workflow.pk, "jobs": ids}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=WorkflowDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel every pending and running job of the workflow."""
        workflow = self.get_object()
        workflows.workflow_cancel(workflow=workflow, user=request.user, via="api")
        return Response(WorkflowDetailSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=WorkflowDetailSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Retry the workflow's failed and cancelled jobs (each puts back the children
        its failure cancelled)."""
        workflow = self.get_object()
        workflows.workflow_retry(workflow=workflow, user=request.user, via="api")
        return Response(WorkflowDetailSerializer(self.get_object()).data)
