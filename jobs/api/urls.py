"""/api/jobs/, /api/wizard/jobs/, /api/job-types/, /api/queues/, /api/templates/,
/api/workflows/,
/api/auth/…, /api/health/.

Every route matches with and without its trailing slash (jobs/api/routers.py).
"""

from django.urls import re_path

from jobs.stats import DIMENSIONS

from . import auth, exchange, flow_views, job_templates, stats, views, workflows
from .routers import OPTIONAL_SLASH, OptionalSlashRouter

router = OptionalSlashRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("wizard/jobs", views.WizardJobViewSet, basename="wizard-job")
router.register("job-types", flow_views.JobTypeViewSet, basename="job-type")
router.register("queues", flow_views.QueueViewSet, basename="queue")
router.register("templates", job_templates.TemplateViewSet, basename="job-template")
router.register("workflows", workflows.WorkflowViewSet, basename="workflow")

urlpatterns = [
    re_path(rf"^auth/token{OPTIONAL_SLASH}$", auth.TokenView.as_view(), name="api-token"),
    re_path(rf"^auth/logout{OPTIONAL_SLASH}$", auth.LogoutView.as_view(), name="api-logout"),
    re_path(
        rf"^auth/logout-all{OPTIONAL_SLASH}$", auth.LogoutAllView.as_view(), name="api-logout-all"
    ),
    re_path(rf"^health{OPTIONAL_SLASH}$", views.HealthView.as_view(), name="api-health"),
    *(
        re_path(
            rf"^stats/{by}{OPTIONAL_SLASH}$", stats.StatsView.as_view(by=by), name=f"api-stats-{by}"
        )
        for by in DIMENSIONS
    ),
    re_path(rf"^export{OPTIONAL_SLASH}$", exchange.ExportView.as_view(), name="api-export"),
    re_path(rf"^import{OPTIONAL_SLASH}$", exchange.ImportView.as_view(), name="api-import"),
    *router.urls,
]
