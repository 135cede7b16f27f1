"""Permission classes shared by the API resources."""

from rest_framework.permissions import DjangoModelPermissions


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
