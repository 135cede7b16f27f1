"""Fixtures of the releases tests: a private MEDIA_ROOT and small factories."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.support.release_factories import make_release


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test stores artefact files under its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Production defaults redirect plain HTTP; the test client speaks plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
    return tmp_path / "media"


@pytest.fixture
def release(db, user):
    return make_release("app", user=user)


@pytest.fixture
def release_manager(django_user_model):
    """A user holding every releases permission (add/change/delete/view)."""
    u = django_user_model.objects.create_user("rita", password="rita-pass-123", is_staff=True)
    u.user_permissions.add(*Permission.objects.filter(content_type__app_label="releases"))
    return u
