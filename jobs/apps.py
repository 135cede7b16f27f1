from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin
        from django.utils.module_loading import autodiscover_modules
        from django_q.signals import post_spawn

        from . import (
            broker,
            checks,  # noqa: F401  (registers the django-q2 safety checks)
            extensions,
        )
        from .admin_stats import stats_panel
        from .admin_views import check_changelist_lookups
        from .exchange import register_kind
        from .jobtemplates import TemplateKind
        from .periodic import ensure_schedules
        from .stats import register_sqlite_aggregate
        from .worker.heartbeat import on_worker_spawn

        # Every app's admin is registered by now (the admin app is ready first): no
        # changelist query string reaches the database unchecked.
        check_changelist_lookups(admin.site)
        extensions.register_dashboard_panel(stats_panel)  # a link to the statistics page
        # Jobs whose last parent completed: wake workers for them once that commits.
        extensions.register_jobs_runnable(broker.wake_released)
        register_kind(TemplateKind)  # export and import (scheduler adds schedules)
        # The statistics' duration percentiles on SQLite (PostgreSQL has percentile_cont).
        connection_created.connect(register_sqlite_aggregate, dispatch_uid="jobdeck-stats")
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="jobdeck-periodic")
        # Each django-q2 worker process announces itself for the workers page.
        post_spawn.connect(on_worker_spawn, dispatch_uid="jobdeck-worker-presence")
        # Each app registers its job types in a `jobtypes` module; deployments (and
        # the test suites' qcluster processes) may name more in JOBDECK_JOBTYPE_MODULES.
        autodiscover_modules("jobtypes")
        for module in settings.JOBDECK_JOBTYPE_MODULES:
            import_module(module)
