"""/api/jobs/, /api/wizard/jobs/, /api/job-types/, /api/auth/… and /api/health/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import auth, views

router = SimpleRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("wizard/jobs", views.WizardJobViewSet, basename="wizard-job")
router.register("job-types", views.JobTypeViewSet, basename="job-type")

urlpatterns = [
    path("auth/token/", auth.TokenView.as_view(), name="api-token"),
    path("auth/logout/", auth.LogoutView.as_view(), name="api-logout"),
    path("auth/logout-all/", auth.LogoutAllView.as_view(), name="api-logout-all"),
    path("health/", views.HealthView.as_view(), name="api-health"),
    *router.urls,
]
