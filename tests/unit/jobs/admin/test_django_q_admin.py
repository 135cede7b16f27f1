"""django-q2's own admin cannot create schedules of arbitrary callables or resubmit tasks."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django_q.models import Failure, OrmQ, Schedule, Success

from tests.support.admin_helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [Schedule, Success, Failure, OrmQ])
def test_django_q_models_are_read_only_without_actions(model, rf, superuser):
    model_admin = admin.site._registry[model]
    request = rf.get("/")
    request.user = superuser

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert not model_admin.get_actions(request)


def test_adding_a_django_q_schedule_is_forbidden(superuser):
    client = client_for(superuser)

    assert client.get("/admin/django_q/schedule/add/").status_code == 403
    assert client.get("/admin/django_q/schedule/").status_code == 200


def test_the_jobdeck_tick_schedule_can_be_viewed_but_not_changed(superuser):
    schedule = Schedule.objects.get(name="jobdeck.tick")
    client = client_for(superuser)

    view = client.get(f"/admin/django_q/schedule/{schedule.pk}/change/")
    post = client.post(
        f"/admin/django_q/schedule/{schedule.pk}/change/", {"func": "os.system", "_save": "1"}
    )

    assert view.status_code == 200
    assert post.status_code == 403
    schedule.refresh_from_db()
    assert schedule.func == "jobs.runner.tick"
