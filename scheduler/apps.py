from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import exchange, extensions

        from .dashboard import failing_schedules, schedules_widget
        from .exchange import ScheduleKind

        extensions.register_dashboard_panel(schedules_widget)
        extensions.register_dashboard_panel(failing_schedules)
        exchange.register_kind(ScheduleKind)  # export and import, after templates
