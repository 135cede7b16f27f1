from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import extensions

        from . import services

        # Jobs finishing (any process, any cluster): deliveries for the matching rules.
        extensions.register_job_finished(services.jobs_finished)
