"""Permission classes shared by the API resources; the rules are jobs.permissions'."""

from rest_framework.permissions import BasePermission, DjangoModelPermissions

from jobs import permissions


class ReadAnyWriteByModelPerms(DjangoModelPermissions):
    """Any authenticated user reads; writes need Django's model permissions.

    So the groups an operator sets up in the admin govern the API too.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": [],
        "OPTIONS": [],
        "HEAD": [],
    }


class CanCleanUp(BasePermission):
    """Deleting every user's finished jobs needs jobs.cleanup_jobs (not merely staff)."""

    message = f"Cleanup needs the {permissions.CLEANUP_JOBS} permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and permissions.may_clean_up(user))
