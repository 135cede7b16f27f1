"""/api/schedules/…; like every API route, each matches with and without its trailing slash."""

from jobs.api.routers import OptionalSlashRouter

from .views import ScheduleViewSet

router = OptionalSlashRouter()
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = router.urls
