"""/api/notification-rules/…; like every API route, each matches with and without its slash."""

from jobs.api.routers import OptionalSlashRouter

from .views import NotificationRuleViewSet

router = OptionalSlashRouter()
router.register("notification-rules", NotificationRuleViewSet, basename="notification-rule")

urlpatterns = router.urls
