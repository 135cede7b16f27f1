"""/api/releases/…: releases, their versions (nested), history, apply and rollback.

Like every API route, each matches with and without its trailing slash.
"""

from django.urls import re_path

from jobs.api.routers import OPTIONAL_SLASH, OptionalSlashRouter

from .views import ReleaseViewSet, VersionViewSet

router = OptionalSlashRouter()
router.register("releases", ReleaseViewSet, basename="release")

versions = VersionViewSet.as_view({"get": "list", "post": "create"})
version = VersionViewSet.as_view({"get": "retrieve"})
apply = VersionViewSet.as_view({"post": "apply"})

VERSIONS = r"^releases/(?P<release_pk>[0-9]+)/versions"

urlpatterns = [
    *router.urls,
    re_path(rf"{VERSIONS}{OPTIONAL_SLASH}$", versions, name="release-versions"),
    re_path(rf"{VERSIONS}/(?P<number>[0-9]+){OPTIONAL_SLASH}$", version, name="release-version"),
    re_path(
        rf"{VERSIONS}/(?P<number>[0-9]+)/apply{OPTIONAL_SLASH}$",
        apply,
        name="release-version-apply",
    ),
]
