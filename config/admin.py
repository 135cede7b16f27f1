"""Jobdeck's admin site: Django's, named Jobdeck, whose "View site" leads to the landing page."""

from __future__ import annotations

from django.contrib.admin import AdminSite


class JobdeckAdminSite(AdminSite):
    """Installed as the default site by config.apps.JobdeckAdminConfig (so `admin.site`
    and `@admin.register` use it); jobs/admin.py adds the dashboard to its index."""

    site_header = "Jobdeck"
    site_title = "Jobdeck admin"
    index_title = "Jobdeck administration"
    site_url = "/"  # config.views.home: where the admin, the API and its docs are
