"""The admin's Queues page: figures, Pause/Resume and limits, and who may use it."""

from __future__ import annotations

import pytest

from jobs import flow
from jobs.models import AuditEvent, FlowSetting
from tests.support.admin_helpers import client_for, grant, texts
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db
URL = "/admin/jobs/queues/"


@pytest.fixture
def operator(staff_user):
    return grant(staff_user, "view_job", "manage_queues")


def test_the_page_shows_each_queue_and_type_with_its_figures(operator):
    make_job()
    make_job()
    response = client_for(operator).get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-queue="default"' in page and 'data-type="demo.steps"' in page
    assert '<td class="jd-pending-count">2</td>' in page
    fragment = client_for(operator).get(URL + "?fragment=1")
    assert fragment.status_code == 200 and b"<html" not in fragment.content


def test_the_dashboard_links_to_the_queues_page(operator):
    assert URL.encode() in client_for(operator).get("/admin/").content


def test_pause_and_resume_buttons_change_the_queue_and_are_audited(operator):
    client = client_for(operator)
    response = client.post(
        URL, {"scope": "queue", "name": "default", "action": "pause"}, follow=True
    )
    assert "The queue default is paused." in texts(response)
    assert flow.queue_rules("default").paused
    client.post(URL, {"scope": "queue", "name": "default", "action": "resume"})
    assert not flow.queue_rules("default").paused
    assert list(AuditEvent.objects.values_list("action", "via")) == [
        ("resumed", "admin"),
        ("paused", "admin"),
    ]


def test_limits_are_set_and_cleared_from_the_form(operator):
    client = client_for(operator)
    form = {"scope": "type", "name": "demo.steps", "action": "set"}
    client.post(URL, {**form, "concurrency_limit": "2", "rate_limit": "", "timeout_seconds": ""})
    assert flow.type_rules("demo.steps").concurrency_limit == 2
    client.post(URL, {**form, "concurrency_limit": ""})
    assert flow.type_rules("demo.steps").concurrency_limit is None


@pytest.mark.parametrize(
    "post",
    [
        {"scope": "type", "name": "demo.steps", "action": "set", "concurrency_limit": "zero"},
        {"scope": "type", "name": "demo.steps", "action": "set", "concurrency_limit": "0"},
        {"scope": "queue", "name": "nope", "action": "pause"},
        {"scope": "bogus", "name": "default", "action": "pause"},
        {"scope": "queue", "name": "default", "action": "explode"},
    ],
)
def test_bad_input_is_a_message_and_changes_nothing(operator, post):
    response = client_for(operator).post(URL, post, follow=True)
    assert response.status_code == 200
    assert any(t.startswith("Nothing changed for") for t in texts(response))
    assert not FlowSetting.objects.exclude(concurrency_limit=None).exists()
    assert not FlowSetting.objects.filter(paused=True).exists()


def test_a_viewer_of_all_jobs_sees_the_figures_but_has_no_buttons_and_cannot_post(
    django_user_model,
):
    watcher = django_user_model.objects.create_user("w", password="x", is_staff=True)
    watcher = grant(watcher, "view_job", "view_all_jobs")
    client = client_for(watcher)
    page = client.get(URL).content.decode()
    assert 'data-queue="default"' in page and 'value="pause"' not in page
    response = client.post(
        URL, {"scope": "queue", "name": "default", "action": "pause"}, follow=True
    )
    assert any("may not" in t for t in texts(response))
    assert not flow.queue_rules("default").paused


def test_staff_without_either_permission_gets_403(staff_user):
    assert client_for(grant(staff_user, "view_job")).get(URL).status_code == 403


def test_the_changelist_filters_by_queue(operator):
    make_job()
    assert client_for(operator).get("/admin/jobs/job/?queue=default").status_code == 200
