"""/api/notification-rules/: thin views over notifications.services."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.api.filters import StrictBooleanFilter
from jobs.api.parsers import JSONParser

from .. import permissions, services
from ..models import RULE_EVENTS, Channel, Delivery, NotificationRule
from .serializers import DeliverySerializer, RuleInputSerializer, RuleSerializer


class RuleFilter(django_filters.FilterSet):
    event = django_filters.ChoiceFilter(choices=RULE_EVENTS)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    enabled = StrictBooleanFilter()

    class Meta:
        model = NotificationRule
        fields = ["event", "channel", "enabled"]


class NotificationRuleViewSet(viewsets.ModelViewSet):
    """Notification rules: yours (all of them with notifications.manage_all_rules)."""

    serializer_class = RuleSerializer
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]
    filterset_class = RuleFilter
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    queryset = NotificationRule.objects.none()  # for schema generation; see get_queryset

    def get_queryset(self) -> QuerySet[NotificationRule]:
        rules = NotificationRule.objects.select_related("created_by")
        return permissions.visible_rules(rules, self.request.user)

    def _input(self, partial: bool = False) -> dict[str, Any]:
        data = RuleInputSerializer(data=self.request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if partial:  # only what the client sent, not the input serializer's defaults
            fields = {k: v for k, v in fields.items() if k in self.request.data}
        return fields

    @extend_schema(request=RuleInputSerializer, responses={201: RuleSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = services.rule_create(user=request.user, via="api", **self._input())
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RuleInputSerializer, responses=RuleSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        rule = self.get_object()
        rule = services.rule_update(
            rule=rule, user=request.user, via="api", **self._input(partial=partial)
        )
        return Response(RuleSerializer(rule).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.rule_delete(rule=self.get_object(), user=request.user, via="api")
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send a test notification through this rule now (a delivery job)."""
        delivery = services.rule_test(rule=self.get_object(), user=request.user, via="api")
        delivery = Delivery.objects.select_related("job").get(pk=delivery.pk)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """This rule's deliveries, newest first (paginated)."""
        rule = self.get_object()
        deliveries = Delivery.objects.filter(rule=rule).select_related("job").order_by("-id")
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)
