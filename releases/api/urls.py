"""/api/releases/…: releases, their versions (nested), history, apply and rollback."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ReleaseViewSet, VersionViewSet

router = SimpleRouter()
router.register("releases", ReleaseViewSet, basename="release")

versions = VersionViewSet.as_view({"get": "list", "post": "create"})
version = VersionViewSet.as_view({"get": "retrieve"})
apply = VersionViewSet.as_view({"post": "apply"})

urlpatterns = [
    *router.urls,
    path("releases/<int:release_pk>/versions/", versions, name="release-versions"),
    path("releases/<int:release_pk>/versions/<int:number>/", version, name="release-version"),
    path(
        "releases/<int:release_pk>/versions/<int:number>/apply/",
        apply,
        name="release-version-apply",
    ),
]
