"""Queues and job types as objects: their flow rules and figures, paused and resumed,
limits overridden (jobs.flow reads, jobs.flow_changes writes, docs/flow-control.md).

Reading needs jobs.manage_queues or the right to see every user's jobs (the figures
count everyone's); changing needs jobs.manage_queues, checked by jobs.flow_changes.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import flow, flow_changes, permissions, registry
from jobs.models import FlowScope

from . import serializers as s
from .pagination import reject_unknown_query_params
from .parsers import JSONParser

# A queue or job type name in a URL: anything but a slash (types have dots).
NAME = r"[^/]+"


class CanSeeQueues(BasePermission):
    """The queues' figures span every user's jobs: jobs.manage_queues, or the right to
    see (or manage) all jobs."""

    message = "Queues need the jobs.manage_queues or jobs.view_all_jobs permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and (permissions.may_manage_queues(user) or permissions.sees_all_jobs(user))
        )


class FlowViewSetMixin(viewsets.ViewSet):
    scope: str
    parser_classes = [JSONParser]
    lookup_field = "name"
    lookup_value_regex = NAME

    def figures(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def known(self, name: str) -> str:
        """`name` if it names a queue or job type here (404 otherwise)."""
        try:
            return flow_changes.check_name(self.scope, name)
        except DjangoValidationError:
            raise NotFound(
                f"No {'queue' if self.scope == FlowScope.QUEUE else 'job type'} {name!r}."
            ) from None

    def changed(self, request: Request, name: str, changes: dict[str, Any]) -> Response:
        name = self.known(name)
        flow_changes.update(
            scope=self.scope, name=name, changes=changes, user=request.user, via="api"
        )
        return Response(self.figures(name))


class QueueViewSet(FlowViewSetMixin):
    """Every queue with jobs waiting or running, a setting, or a cluster: paused,
    depth, running, oldest wait and limits."""

    scope = FlowScope.QUEUE
    permission_classes = [IsAuthenticated, CanSeeQueues]

    def figures(self, name: str) -> dict[str, Any]:
        for row in flow.queue_figures([name]):
            if row["name"] == name:
                return s.QueueSerializer(row).data
        raise NotFound(f"No queue {name!r}.")

    @extend_schema(responses=s.QueueSerializer(many=True))
    def list(self, request: Request) -> Response:
        reject_unknown_query_params(request, known=())
        return Response(s.QueueSerializer(flow.queue_figures(), many=True).data)

    @extend_schema(responses=s.QueueSerializer)
    def retrieve(self, request: Request, name: str) -> Response:
        reject_unknown_query_params(request, known=())
        return Response(self.figures(self.known(name)))

    @extend_schema(request=s.FlowChangeSerializer, responses=s.QueueSerializer)
    def partial_update(self, request: Request, name: str) -> Response:
        """Set a queue's concurrency or rate limit (null: none), or pause it."""
        return self.changed(request, name, _changes(request))

    @extend_schema(request=None, responses=s.QueueSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, name: str) -> Response:
        """No cluster starts the queue's pending jobs until it is resumed; running
        ones finish."""
        return self.changed(request, name, {"paused": True})

    @extend_schema(request=None, responses=s.QueueSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, name: str) -> Response:
        return self.changed(request, name, {"paused": False})


def _changes(request: Request) -> dict[str, Any]:
    """The body's fields as given: jobs.flow_changes validates them (an unknown
    field, a string for a number: 400 naming the field)."""
    if not isinstance(request.data, dict):
        from rest_framework.exceptions import ValidationError

        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return dict(request.data)


def type_row(jt: registry.JobType, flows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": jt.name,
        "label": jt.label or jt.name,
        "description": jt.description or (jt.__doc__ or "").strip(),
        "user_creatable": jt.user_creatable,
        "requires_release": jt.requires_release,
        "max_attempts": jt.max_attempts,
        "config": jt.describe_config(),
        **{k: v for k, v in flows[jt.name].items() if k != "name"},
    }


class JobTypeViewSet(FlowViewSetMixin):
    """The job types the caller may create, a JSON description of their config, and
    their flow rules; an operator (jobs.manage_queues) pauses or limits them."""

    scope = FlowScope.TYPE

    def figures(self, name: str) -> dict[str, Any]:
        flows = {row["name"]: row for row in flow.type_figures()}
        return s.JobTypeSerializer(type_row(registry.get(name), flows)).data

    @extend_schema(responses=s.JobTypeSerializer(many=True))
    def list(self, request: Request) -> Response:
        reject_unknown_query_params(request, known=())  # not paginated, so not checked there
        flows = {row["name"]: row for row in flow.type_figures()}
        types = permissions.creatable_types(request.user)
        if permissions.may_manage_queues(request.user):  # an operator sees every type
            types = registry.all_types()
        data = [type_row(jt, flows) for jt in types]
        return Response(s.JobTypeSerializer(data, many=True).data)

    @extend_schema(responses=s.JobTypeSerializer)
    def retrieve(self, request: Request, name: str) -> Response:
        reject_unknown_query_params(request, known=())
        name = self.known(name)
        visible = {jt.name for jt in permissions.creatable_types(request.user)}
        if name not in visible and not permissions.may_manage_queues(request.user):
            raise NotFound(f"No job type {name!r} you may run.")
        return Response(self.figures(name))

    @extend_schema(request=s.FlowChangeSerializer, responses=s.JobTypeSerializer)
    def partial_update(self, request: Request, name: str) -> Response:
        """Pause a job type or override its limits and timeout (null: the code's)."""
        return self.changed(request, name, _changes(request))

    @extend_schema(request=None, responses=s.JobTypeSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, name: str) -> Response:
        return self.changed(request, name, {"paused": True})

    @extend_schema(request=None, responses=s.JobTypeSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, name: str) -> Response:
        return self.changed(request, name, {"paused": False})
