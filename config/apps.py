from django.contrib.admin.apps import AdminConfig


class JobdeckAdminConfig(AdminConfig):
    """django.contrib.admin, with Jobdeck's site as `admin.site`."""

    default_site = "config.admin.JobdeckAdminSite"
