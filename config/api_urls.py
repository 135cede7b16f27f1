"""Everything under /api/: each app contributes its own urls module.

Every route matches with and without its trailing slash (see jobs/api/routers.py).
"""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path, reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.routers import OPTIONAL_SLASH
from jobs.api.urls import router as jobs_router
from notifications.api.urls import router as notifications_router
from releases.api.urls import router as releases_router
from scheduler.api.urls import router as scheduler_router

# Endpoints outside the routers, listed by the API root after the routers' resources.
OTHER_ENDPOINTS = {
    "stats/job-types": "stats/job-types/",
    "stats/queues": "stats/queues/",
    "stats/schedules": "stats/schedules/",
    "export": "export/",  # POST /api/import/ takes what it answers (no GET: not linked)
    "health": "health/",
    "schema": "schema/",
    "docs": "docs/",
}


class ApiRootView(APIView):
    """Jobdeck's API: every resource, by name. Log in (top right) to browse them."""

    # Not DRF's DefaultRouter root: that one lists a single router's resources, and it
    # reverses their URLs, which drops the optional trailing slash. This lists every
    # app's routers and the other endpoints, in their canonical, slashed form.

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        root = reverse("api-root")
        links = {
            prefix: f"{root}{prefix}/"
            for router in (jobs_router, releases_router, scheduler_router, notifications_router)
            for prefix, _viewset, _basename in router.registry
        }
        links.update({name: f"{root}{route}" for name, route in OTHER_ENDPOINTS.items()})
        return Response({name: request.build_absolute_uri(url) for name, url in links.items()})


@csrf_exempt  # it changes nothing; without this, a POST would get CSRF's HTML 403
def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """A JSON 404 for any /api/ URL no route matches (Django's default is an HTML page)."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    re_path(r"^$", ApiRootView.as_view(), name="api-root"),
    path("", include("jobs.api.urls")),
    path("", include("releases.api.urls")),
    path("", include("scheduler.api.urls")),
    path("", include("notifications.api.urls")),
    re_path(rf"^schema{OPTIONAL_SLASH}$", SpectacularAPIView.as_view(), name="api-schema"),
    re_path(
        rf"^docs{OPTIONAL_SLASH}$",
        SpectacularSwaggerView.as_view(url_name="api-schema"),
        name="api-docs",
    ),
    # The browsable API's "Log in" / "Log out" links.
    path("auth/", include("rest_framework.urls")),
    # Last: API clients get the API's error shape even for URLs that match nothing.
    re_path(r"^(?P<unmatched>.*)$", api_not_found),
]
