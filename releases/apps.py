from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import extensions

        from . import locks

        extensions.register_lock_key(locks.lock_key)
        extensions.register_lock_label(locks.PREFIX, locks.label, related=("release",))
