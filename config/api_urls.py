"""Everything under /api/: each app contributes its own urls module."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


@csrf_exempt  # it changes nothing; without this, a POST would get CSRF's HTML 403
def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """A JSON 404 for any /api/ URL no route matches (Django's default is an HTML page)."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("", include("jobs.api.urls")),
    path("", include("releases.api.urls")),
    path("", include("scheduler.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: API clients get the API's error shape even for URLs that match nothing.
    re_path(r"^(?P<unmatched>.*)$", api_not_found),
]
