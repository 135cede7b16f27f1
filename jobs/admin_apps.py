"""django.contrib.admin with Jobdeck's site (jobs.admin_site) as the default one."""

from django.contrib.admin.apps import AdminConfig


class JobdeckAdminConfig(AdminConfig):
    default_site = "jobs.admin_site.JobdeckAdminSite"
