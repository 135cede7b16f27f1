"""GET /metrics: the Prometheus exposition, behind a token or an address allow-list."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import registry


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in settings.JOBDECK_METRICS_ALLOWED_IPS:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def refusal(request: HttpRequest) -> JsonResponse | None:
    """None if the caller may scrape; else the API's error shape, 401 or 403."""
    token = settings.JOBDECK_METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            response = JsonResponse(
                {"detail": "Metrics need `Authorization: Bearer <JOBDECK_METRICS_TOKEN>`."},
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return None
    if not _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return JsonResponse(
            {"detail": "Metrics are served to JOBDECK_METRICS_ALLOWED_IPS only."}, status=403
        )
    return None


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refused = refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
