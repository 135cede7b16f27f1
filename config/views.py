"""The landing page at `/`: where a newcomer finds the admin, the API and its docs."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse


def home(request: HttpRequest) -> TemplateResponse:
    """Links to the admin, the browsable API, the API docs and schema, and health."""
    api = reverse("api-root")  # the API's routes reverse without their optional slash
    links = [
        (
            reverse("admin:index"),
            "Admin",
            "the operator's console: jobs, logs, dashboard, "
            "schedules, releases; run, cancel and retry jobs",
        ),
        (api, "API", "the REST API's root, browsable in a web browser"),
        (f"{api}docs/", "API docs", "Swagger UI of the OpenAPI schema"),
        (f"{api}schema/", "OpenAPI schema", "YAML; ?format=json for JSON"),
        (f"{api}health/", "Health", "database, cluster and queue, for load balancers"),
    ]
    context = {**admin.site.each_context(request), "title": "Jobdeck", "links": links}
    return TemplateResponse(request, "jobdeck/home.html", context)
