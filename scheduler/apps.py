from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import extensions

        from .dashboard import failing_schedules, schedules_widget

        extensions.register_dashboard_panel(schedules_widget)
        extensions.register_dashboard_panel(failing_schedules)
