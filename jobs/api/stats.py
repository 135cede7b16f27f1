"""/api/stats/{job-types|queues|schedules}/?window=24h|7d|30d: figures of finished jobs."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import stats

from .pagination import reject_unknown_query_params


class PercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p90 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class StatRowSerializer(serializers.Serializer):
    key = serializers.JSONField(help_text="The job type, the queue, or the schedule's id.")
    # An output field, not Field.label: DRF's metaclass takes it off the class.
    label = serializers.CharField()  # type: ignore[assignment]
    runs = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    failure_rate = serializers.FloatField(
        allow_null=True, help_text="failed / (completed + failed); null without either."
    )
    duration_seconds = PercentilesSerializer()


class StatsSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=list(stats.DIMENSIONS))
    window = serializers.ChoiceField(choices=list(stats.WINDOWS))
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    results = StatRowSerializer(many=True)


class StatsView(APIView):
    """Runs, failure rate and duration percentiles per job type, queue or schedule, of the
    jobs you may see that finished in the window (default 24h)."""

    permission_classes = [IsAuthenticated]
    by = "job-types"  # set per route (jobs/api/urls.py)

    @extend_schema(
        parameters=[
            OpenApiParameter("window", str, enum=list(stats.WINDOWS), description="Default 24h."),
        ],
        responses=StatsSerializer,
    )
    def get(self, request: Request) -> Response:
        reject_unknown_query_params(request, known=("window",))
        window = request.query_params.get("window") or "24h"
        if window not in stats.WINDOWS:
            raise ValidationError({"window": [f"Use one of: {', '.join(stats.WINDOWS)}."]})
        data = stats.cached_job_stats(user=request.user, by=self.by, window=window)
        return Response(StatsSerializer(data).data)
