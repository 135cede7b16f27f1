"""Releases API: thin views over releases.services (same rules as admin and commands)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils.datastructures import MultiValueDict
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.api.permissions import ReadAnyWriteByModelPerms
from jobs.api.serializers import JobDetailSerializer, JobListSerializer
from jobs.models import Job

from .. import selectors, services
from ..models import Artefact, Release, ReleaseVersion
from .serializers import (
    ReleaseInputSerializer,
    ReleaseSerializer,
    ReleaseUpdateSerializer,
    VersionInputSerializer,
    VersionSerializer,
)


class CanApply(BasePermission):
    """Applying or rolling back changes the release: the right every release.* job type
    needs too (services.APPLY_PERMISSION, Django's change_release)."""

    def has_permission(self, request: Request, view) -> bool:
        return bool(request.user and request.user.has_perm(services.APPLY_PERMISSION))


def _json_field(raw: str, name: str) -> Any:
    """A JSON value sent as a multipart form field."""
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ValidationError({name: ["Not valid JSON."]}) from None


def _job_response(request: Request, job: Job) -> Response:
    data = JobDetailSerializer(job, context={"request": request}).data
    return Response(data, status=status.HTTP_202_ACCEPTED)


class ReleaseViewSet(viewsets.ModelViewSet):
    """Releases: readable by any authenticated user, writable per model permissions."""

    queryset = Release.objects.select_related("current_version", "created_by").order_by("-id")
    serializer_class = ReleaseSerializer
    permission_classes = [IsAuthenticated, ReadAnyWriteByModelPerms]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=ReleaseInputSerializer, responses={201: ReleaseSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = ReleaseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = services.release_create(user=request.user, via="api", **data.validated_data)
        return Response(ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReleaseUpdateSerializer, responses={200: ReleaseSerializer})
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        release = self.get_object()
        data = ReleaseUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        release = services.release_update(
            release=release, user=request.user, via="api", **data.validated_data
        )
        return Response(ReleaseSerializer(release).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        services.release_delete(release=self.get_object(), user=request.user, via="api")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: JobListSerializer(many=True)})
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated])
    def jobs(self, request: Request, pk=None) -> Response:
        """The release's history: its jobs the caller may see, newest first."""
        release = self.get_object()
        jobs = selectors.release_jobs(release).filter(
            pk__in=Job.objects.visible_to(request.user).values("pk")
        )
        page = self.paginate_queryset(jobs)
        rows = page if page is not None else list(jobs)
        data = JobListSerializer(rows, many=True, context={"request": request}).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(request=None, responses={202: JobDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, CanApply])
    def rollback(self, request: Request, pk=None) -> Response:
        job = services.release_rollback(release=self.get_object(), user=request.user, via="api")
        return _job_response(request, job)


# The nested routes are regexes (for the optional trailing slash): say their ids are integers.
RELEASE_PK = OpenApiParameter("release_pk", int, OpenApiParameter.PATH)
NUMBER = OpenApiParameter("number", int, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(parameters=[RELEASE_PK]),
    create=extend_schema(parameters=[RELEASE_PK]),
    retrieve=extend_schema(parameters=[RELEASE_PK, NUMBER]),
    apply=extend_schema(parameters=[RELEASE_PK, NUMBER]),
)
class VersionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """A release's versions: list, create (multipart upload), retrieve. Never changed:
    PUT, PATCH and DELETE are 405."""

    serializer_class = VersionSerializer
    permission_classes = [IsAuthenticated, ReadAnyWriteByModelPerms]
    lookup_field = "number"
    lookup_value_regex = r"\d+"
    queryset = ReleaseVersion.objects.none()  # for the permission class and the schema

    def get_release(self) -> Release:
        if not hasattr(self, "_release"):
            self._release = get_object_or_404(Release, pk=self.kwargs["release_pk"])
        return self._release

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ReleaseVersion.objects.none()
        return (
            ReleaseVersion.objects.filter(release=self.get_release())
            .select_related("parent", "created_by")
            .prefetch_related(Prefetch("files", queryset=Artefact.objects.order_by("kind", "path")))
            .order_by("-id")
        )

    @extend_schema(request=VersionInputSerializer, responses={201: VersionSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        release = self.get_release()
        data = request.data
        if isinstance(data, MultiValueDict):  # multipart: repeated fields arrive as lists
            fields = {k: data.get(k) for k in ("manifest", "comment", "parent") if k in data}
            manifest = fields.get("manifest")
            if isinstance(manifest, str):
                fields["manifest"] = _json_field(manifest, "manifest")
            data = {
                **fields,
                "files": request.FILES.getlist("files"),
                **({"paths": data.getlist("paths")} if "paths" in data else {}),
            }
        inp = VersionInputSerializer(data=data)
        inp.is_valid(raise_exception=True)
        version = services.version_create(
            release=release, user=request.user, via="api", **inp.validated_data
        )
        version = self.get_queryset().get(pk=version.pk)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={202: JobDetailSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, CanApply])
    def apply(self, request: Request, release_pk=None, number=None) -> Response:
        version = self.get_object()
        job = services.release_apply(
            release=self.get_release(), number=version.number, user=request.user, via="api"
        )
        return _job_response(request, job)
