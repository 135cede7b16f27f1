"""Jobs, wizard, job types and health: thin ViewSets over jobs.services.

The rules are jobs.permissions': a job another user may not see is a 404, never a
403; one they may see but not act on (cancel, retry, submit, discard) is a 403; a
job type they may not run is a 403 from the creating service itself.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import permissions, selectors, services
from jobs.engine import queries
from jobs.models import Job, JobLog, JobStatus, Task

from . import serializers as s
from .filters import ID_SCHEMA, ConfigSearchBackend, JobFilter
from .parsers import JSONParser
from .permissions import CanCleanUp

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

    # What the job mixins are mixed into (request, get_object, ...): a generic viewset.
    _JobView = GenericAPIView[Job]
else:
    _JobView = object


def idempotency_key(request: Request, unique_key: str | None) -> str | None:
    """The unique key of a create: the body's, or the Idempotency-Key header's (400
    when both are given and differ)."""
    header = request.headers.get("Idempotency-Key")
    if header is None or header == unique_key:
        return unique_key
    if unique_key is not None:
        raise ValidationError(
            {"unique_key": ["Differs from the Idempotency-Key header; give one or the same."]}
        )
    return header


class JobAccessMixin(_JobView):
    """Visibility (404) and the right to act (403) shared by the job viewsets."""

    parser_classes = [JSONParser]

    def visible_jobs(self) -> QuerySet[Job]:
        return Job.objects.visible_to(self.request.user)

    def get_actionable_object(self) -> Job:
        """The job named in the URL, if the user may act on it (else 404 or 403)."""
        job: Job = self.get_object()
        if not permissions.may_act(self.request.user, job):
            raise PermissionDenied("You may see this job but not act on it.")
        return job

    def validated(self, serializer_class: type, data: Any = None) -> dict:
        serializer = serializer_class(
            data=self.request.data if data is None else data,
            context={"request": self.request},
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def detail_queryset(self) -> QuerySet[Job]:
        """One job with its tasks (the serializer adds its recent audit trail)."""
        return (
            self.visible_jobs()
            .select_related("created_by")
            .prefetch_related(Prefetch("tasks", queryset=Task.objects.order_by("position")))
        )


class JobProgressActionsMixin(JobAccessMixin):
    """GET …/{id}/status/ and …/{id}/logs/ (jobs and wizard alike)."""

    @extend_schema(responses=s.JobStatusSerializer)
    @action(detail=True, methods=["get"])
    def status(self, request: Request, pk: str | None = None) -> Response:
        """A job's status, progress and current task: cheap enough to poll."""
        return Response(s.JobStatusSerializer(self.get_object()).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "tail", int, description="The last N lines (default 100, at most 10,000)."
            ),
            OpenApiParameter(
                "after",
                int,
                description="Lines with id > after, oldest first, at most 1,000 per call; "
                "takes precedence over tail.",
            ),
        ],
        responses=s.LogPageSerializer,
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """Tail or follow a job's log; `cursor` is what to pass as `after` next time."""
        job = self.get_object()
        query = self.validated(s.LogQuerySerializer, request.query_params)
        after = query.get("after")
        if after is not None:
            lines = selectors.log_after(job.pk, after, limit=1000)
        else:
            lines = selectors.log_tail(job.pk, query.get("tail", 100))
        if lines:
            cursor = lines[-1].pk
        elif after is not None:
            cursor = after
        else:  # nothing to show yet: following from the newest line skips nothing
            cursor = (
                JobLog.objects.filter(job_id=job.pk)
                .order_by("-id")
                .values_list("id", flat=True)
                .first()
                or 0
            )
        return Response({"results": s.LogLineSerializer(lines, many=True).data, "cursor": cursor})


class JobViewSet(
    JobProgressActionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Jobs: list, create, read, follow, cancel and retry."""

    filter_backends = [DjangoFilterBackend, ConfigSearchBackend]
    filterset_class = JobFilter
    query_param_prefixes = ("config.",)  # ?config.<key>=<JSON value> (ConfigSearchBackend)
    cursor_orderings = {"created_at": "id", "-created_at": "-id"}
    queryset = Job.objects.none()  # for schema generation; see get_queryset

    @extend_schema(
        description="Newest first. Besides the filters below, `config.<key>=<value>` "
        "(repeatable) keeps the jobs whose config holds that value at that key, compared "
        'as JSON: `config.account_id=42` matches the number 42, `config.account_id="42"` '
        "the string; a dotted key walks into objects (`config.db.host=x`). Keys are "
        "letters, digits, `_` and `-`; any other key is a 400.",
        # The aliases' schema is IdFilter's, which has no room for their descriptions.
        parameters=[
            OpenApiParameter("release_id", ID_SCHEMA, description="Alias of `release`."),
            OpenApiParameter(
                "user_id", ID_SCHEMA, description="Alias of `created_by` (a user id)."
            ),
        ],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Job]:
        if self.action == "list":
            # No tasks, no per-row related managers: constant queries per page.
            return self.visible_jobs().select_related("created_by")
        if self.action == "retrieve":
            return self.detail_queryset()
        return self.visible_jobs()

    def get_serializer_class(self) -> type:
        if self.action == "list":
            return s.JobListSerializer
        return s.JobDetailSerializer

    @extend_schema(
        request=s.JobCreateSerializer,
        responses={201: s.JobCreatedSerializer, 200: s.JobCreatedSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="The job's unique key: a create with the key of a pending or "
                "running job returns that job (200, `existing: true`).",
            )
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a job (or, with `draft: true`, a draft); 400 names the bad field.
        With a unique key (or an Idempotency-Key header) held by a pending or running
        job, that job is returned with 200 and `existing: true`."""
        data = self.validated(s.JobCreateSerializer)
        data["unique_key"] = idempotency_key(request, data.get("unique_key"))
        job = services.job_create(user=request.user, via="api", **data)
        existing = job.existing
        job = self.detail_queryset().get(pk=job.pk)
        body = {**s.JobDetailSerializer(job).data, "existing": existing}
        return Response(body, status=status.HTTP_200_OK if existing else status.HTTP_201_CREATED)

    @extend_schema(
        request=s.BulkCreateSerializer,
        responses={201: s.BulkCreatedSerializer},
        description="Up to 10,000 pending jobs in one call, validated as a whole: any bad "
        'item refuses them all, with errors keyed by index: `{"jobs": {"3": {"config": […]}}}`.',
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        """Create many jobs at once, all or nothing."""
        specs = self.validated(s.BulkCreateSerializer)["jobs"]
        ids = services.job_bulk_create(specs=specs, user=request.user, via="api")
        return Response(
            {"count": len(ids), "ids": list(ids), "existing": sorted(ids.existing)},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses=s.JobStatusSerializer)
    @action(detail=True, methods=["post", "put"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a pending job at once, a running one at its next task boundary."""
        job = services.job_cancel(job=self.get_actionable_object(), user=request.user, via="api")
        return Response(s.JobStatusSerializer(job).data)

    @extend_schema(request=s.RetrySerializer, responses=s.JobStatusSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Run a failed or cancelled job again (optionally with a corrected config)."""
        job = self.get_actionable_object()
        data = self.validated(s.RetrySerializer)
        job = services.job_retry(job=job, user=request.user, via="api", config=data["config"])
        return Response(s.JobStatusSerializer(job).data)

    @extend_schema(request=s.CleanupSerializer, responses=s.CleanupResultSerializer)
    @action(detail=False, methods=["post"], permission_classes=[IsAuthenticated, CanCleanUp])
    def cleanup(self, request: Request) -> Response:
        """Delete finished jobs older than N days (needs jobs.cleanup_jobs); `dry_run`
        only counts."""
        data = self.validated(s.CleanupSerializer)
        summary = services.job_cleanup(
            older_than=timedelta(days=data["older_than_days"]),
            dry_run=data["dry_run"],
            user=request.user,
            via="api",
        )
        return Response(summary)


class WizardJobViewSet(
    JobProgressActionsMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Plan before run: a draft is analysed in the background, then submitted or discarded."""

    queryset = Job.objects.none()

    def get_queryset(self) -> QuerySet[Job]:
        if self.action == "list":
            return self.visible_jobs().filter(status=JobStatus.DRAFT).select_related("created_by")
        if self.action == "retrieve":
            return self.detail_queryset()
        return self.visible_jobs()

    def get_serializer_class(self) -> type:
        return s.JobListSerializer if self.action == "list" else s.WizardJobSerializer

    @extend_schema(request=s.JobCreateSerializer, responses={201: s.WizardJobSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a draft (whatever `draft` says) and start its analysis."""
        data = self.validated(s.JobCreateSerializer)
        data["draft"] = True
        job = services.job_create(user=request.user, via="api", **data)
        job = self.detail_queryset().get(pk=job.pk)
        return Response(s.WizardJobSerializer(job).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Discard a draft; a submitted job is not the wizard's to delete (409)."""
        job = self.get_actionable_object()
        services.job_delete(
            job=job, user=request.user, via="api", statuses=[JobStatus.DRAFT], action="discard"
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.AnalysisSerializer)
    @action(detail=True, methods=["get"])
    def analysis(self, request: Request, pk: str | None = None) -> Response:
        """The draft's analysis: pending until a worker has run the job type's analyze()."""
        job = self.get_object()
        if job.analysis is None:  # created directly, not through the wizard
            raise NotFound(f"Job #{job.pk} was not created as a draft; it has no analysis.")
        return Response({"analysis": {}, **job.analysis})

    @extend_schema(request=None, responses=s.JobStatusSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        """Turn the draft into a pending job that runs (409 if it is not a draft)."""
        job = services.job_submit(job=self.get_actionable_object(), user=request.user, via="api")
        return Response(s.JobStatusSerializer(job).data)


class HealthView(APIView):
    """Liveness for load balancers and operators; no authentication.

    - `database`: `SELECT 1`; unreachable → status `down`, HTTP 503.
    - `cluster`: a qcluster was seen recently if django-q2's `jobdeck.tick`
      schedule has `next_run` no older than JOBDECK_HEALTH_CLUSTER_SECONDS
      (default 150 s) — every cluster's scheduler advances it past "now" each
      minute, through the shared database, so this works across processes and
      machines — or a running job heartbeated within that window. Neither →
      `down`, HTTP 503. (django-q2's own Stat lives in the cache, which the
      default LocMem backend does not share between processes.)
    - `queue`: pending and running counts (capped), the age of the oldest due
      pending job, running jobs with a stale heartbeat. A stale job, or a due
      job waiting longer than JOBDECK_HEALTH_QUEUE_SECONDS (default 300 s),
      makes the status `degraded` (HTTP 200).
    """

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []  # load balancers poll it
    COUNT_CAP = 10_000

    @extend_schema(
        responses={
            200: s.HealthSerializer,
            503: OpenApiResponse(s.HealthSerializer, description="Database or cluster down."),
        },
        auth=[],
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        try:
            queries.execute("ping", {})
        except DatabaseError as exc:
            body = {
                "status": "down",
                "database": {"status": "down", "error": type(exc).__name__},
                "cluster": {"status": "unknown"},
                "queue": {},
            }
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        cluster = self.cluster_state(now)
        queue = self.queue_state(now)
        if not cluster["seen"]:
            overall = "down"
        elif (
            queue["stale_running"]
            or (queue["oldest_due_seconds"] or 0) > settings.JOBDECK_HEALTH_QUEUE_SECONDS
        ):
            overall = "degraded"
        else:
            overall = "ok"
        body = {"status": overall, "database": {"status": "ok"}, "cluster": cluster, "queue": queue}
        code = status.HTTP_503_SERVICE_UNAVAILABLE if overall == "down" else status.HTTP_200_OK
        return Response(body, status=code)

    def cluster_state(self, now) -> dict[str, Any]:
        tick_next_run, _ = selectors.tick_next_run()
        last_heartbeat = selectors.last_heartbeat()
        seen = selectors.cluster_alive(now, tick_next_run, last_heartbeat)
        return {
            "status": "ok" if seen else "not seen",
            "seen": seen,
            "tick_next_run": tick_next_run.isoformat() if tick_next_run else None,
            "last_heartbeat": last_heartbeat.isoformat() if last_heartbeat else None,
        }

    def queue_state(self, now) -> dict[str, Any]:
        def capped(qs: QuerySet) -> int:
            # COUNT over a LIMIT: cheap with millions of pending jobs.
            return qs[: self.COUNT_CAP].count()

        pending = Job.objects.filter(status=JobStatus.PENDING)
        running = Job.objects.filter(status=JobStatus.RUNNING)
        oldest = (
            pending.filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("id")
            .values_list("queued_at", "run_after", "created_at")
            .first()
        )
        oldest_due = None
        if oldest:
            queued_at, run_after, created_at = oldest
            # Waiting since it was queued, or since it fell due if it was delayed.
            since = max(t for t in (queued_at or created_at, run_after) if t is not None)
            oldest_due = round(max(0.0, (now - since).total_seconds()), 3)
        stale_cutoff = now - timedelta(seconds=settings.JOBDECK_STALE_SECONDS)
        return {
            "pending": capped(pending),
            "running": capped(running),
            "count_cap": self.COUNT_CAP,
            "oldest_due_seconds": oldest_due,
            "stale_running": capped(running.filter(heartbeat_at__lt=stale_cutoff)),
            "broker_messages": self.broker_messages(),
        }

    def broker_messages(self) -> int | None:
        """Messages waiting in django-q2's ORM broker (None with another broker)."""
        if "orm" not in settings.Q_CLUSTER:
            return None
        from django_q.models import OrmQ

        return OrmQ.objects.all()[: self.COUNT_CAP].count()
