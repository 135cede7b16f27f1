from rest_framework.routers import SimpleRouter

from .views import ScheduleViewSet

router = SimpleRouter()
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = router.urls
