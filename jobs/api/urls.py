"""/api/jobs/, /api/wizard/jobs/, /api/job-types/, /api/auth/token/ and /api/health/.

Every route matches with and without its trailing slash (jobs/api/routers.py).
"""

from django.urls import re_path

from . import views
from .routers import OPTIONAL_SLASH, OptionalSlashRouter

router = OptionalSlashRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("wizard/jobs", views.WizardJobViewSet, basename="wizard-job")
router.register("job-types", views.JobTypeViewSet, basename="job-type")

urlpatterns = [
    re_path(rf"^auth/token{OPTIONAL_SLASH}$", views.TokenView.as_view(), name="api-token"),
    re_path(rf"^health{OPTIONAL_SLASH}$", views.HealthView.as_view(), name="api-health"),
    *router.urls,
]
