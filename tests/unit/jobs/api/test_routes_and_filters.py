"""The seed's API spelling: optional trailing slashes, filter aliases, unknown filters, the root."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from django.urls import resolve
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from scheduler import services as schedule_services
from tests.support.job_factories import make_job
from tests.support.release_factories import make_release

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def put(client: APIClient, url: str, body=None):
    return client.put(url, json.dumps(body or {}), content_type="application/json")


def post(client: APIClient, url: str, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


# --- optional trailing slash ---------------------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"], ids=["without-slash", "with-slash"])
def test_the_seed_s_read_paths_answer_with_and_without_the_trailing_slash(api_client, user, slash):
    release = make_release("web", user=user)
    job = make_job(JobStatus.FAILED, user=user, release=None)
    draft = api_client.post(
        "/api/wizard/jobs/",
        {"job_type": "demo.steps", "config": {"steps": 1, "delay": 0}},
        format="json",
    ).json()
    for url in (
        "/api/jobs",
        "/api/jobs?status=&job_type=&release_id=&user_id=",
        f"/api/jobs/{job.pk}",
        f"/api/jobs/{job.pk}/logs",
        f"/api/jobs/{job.pk}/status",
        f"/api/releases/{release.pk}/jobs",
        f"/api/wizard/jobs/{draft['id']}/status",
        f"/api/wizard/jobs/{draft['id']}/logs",
        f"/api/wizard/jobs/{draft['id']}/analysis",
        "/api/job-types",
        "/api/releases",
        "/api/schedules",
        "/api/health",
        "/api/schema",
    ):
        path, _, query = url.partition("?")
        full = path + slash + (f"?{query}" if query else "")
        response = api_client.get(full)
        # 200, or the health check's 503 (no cluster in this test): never a 404 or redirect.
        assert response.status_code in (200, 503), (full, response.status_code)


def test_put_and_post_without_the_trailing_slash_act_without_a_redirect(api_client, user):
    created = post(api_client, "/api/jobs", {"job_type": "demo.steps", "config": {"steps": 1}})
    assert created.status_code == 201
    job_id = created.json()["id"]

    cancelled = put(api_client, f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == JobStatus.CANCELLED

    retried = post(api_client, f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 200
    assert Job.objects.get(pk=job_id).status == JobStatus.PENDING


def schema_paths(client: APIClient) -> dict[str, dict]:
    return yaml.safe_load(client.get("/api/schema/").content)["paths"]


def test_every_route_of_the_schema_resolves_to_the_same_view_without_its_slash(anon_client):
    paths = schema_paths(anon_client)
    assert len(paths) > 20
    for path in paths:
        assert path.endswith("/"), path  # the documented, canonical form keeps the slash
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        with_slash, without = resolve(concrete), resolve(concrete.rstrip("/"))
        # The same view and arguments, whatever the method: nothing to redirect.
        assert with_slash.url_name and without.func is with_slash.func, path
        assert without.kwargs == with_slash.kwargs, path


# --- filters ---------------------------------------------------------------------------------


def ids(client: APIClient, query: str) -> set[int]:
    response = client.get(f"/api/jobs/?{query}")
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


def test_release_id_and_user_id_filter_like_release_and_created_by(manager_client, user, manager):
    release = make_release("web", user=user)
    in_release = make_job(user=user, release=release)
    by_manager = make_job(user=manager)
    other = make_job(user=user)

    assert ids(manager_client, f"release_id={release.pk}") == {in_release.pk}
    assert ids(manager_client, f"release_id={release.pk}") == ids(
        manager_client, f"release={release.pk}"
    )
    assert ids(manager_client, f"user_id={manager.pk}") == {by_manager.pk}
    assert ids(manager_client, f"user_id={user.pk}") == {in_release.pk, other.pk}
    assert ids(manager_client, f"user_id={user.pk}") == ids(manager_client, f"created_by={user.pk}")
    # The seed's spelling with every value empty filters nothing.
    assert ids(manager_client, "status=&job_type=&release_id=&user_id=") == {
        in_release.pk,
        by_manager.pk,
        other.pk,
    }


def test_the_schema_documents_the_release_id_and_user_id_aliases(anon_client):
    params = {p["name"]: p for p in schema_paths(anon_client)["/api/jobs/"]["get"]["parameters"]}
    assert "Alias of `release`" in params["release_id"]["description"]
    assert "Alias of `created_by`" in params["user_id"]["description"]


@pytest.mark.parametrize("query", ["release_id=abc", "user_id=-1", "user_id=x"])
def test_a_bad_alias_value_is_a_400_naming_it(api_client, query):
    response = api_client.get(f"/api/jobs/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def list_urls(user) -> list[str]:
    release = make_release("web", user=user)
    schedule = schedule_services.schedule_create(
        user=user,
        name="nightly",
        job_type="demo.steps",
        config={"steps": 1},
        kind="daily",
        time="02:30",
        timezone="UTC",
    )
    return [
        "/api/jobs/",
        "/api/wizard/jobs/",
        "/api/job-types/",
        "/api/releases/",
        f"/api/releases/{release.pk}/jobs/",
        f"/api/releases/{release.pk}/versions/",
        "/api/schedules/",
        f"/api/schedules/{schedule.pk}/history/",
    ]


def test_an_unknown_filter_is_a_400_naming_it_on_every_list_endpoint(api_client, user):
    for url in list_urls(user):
        response = api_client.get(
            f"{url}?relase=3&status=failed" if url == "/api/jobs/" else f"{url}?relase=3"
        )
        assert response.status_code == 400, url
        body = response.json()
        assert list(body) == ["relase"], (url, body)
        assert body["relase"][0].startswith("Unknown query parameter; this list accepts:"), body


def test_lists_keep_accepting_their_pagination_format_and_filter_parameters(api_client, user):
    for _ in range(3):
        make_job(user=user)
    for url in list_urls(user):
        assert api_client.get(f"{url}?format=json").status_code == 200, url
        if url == "/api/job-types/":
            continue  # not paginated
        first = api_client.get(f"{url}?page_size=1")
        assert first.status_code == 200, url
    first = api_client.get("/api/jobs/?page_size=1&ordering=created_at&status=pending").json()
    follow = api_client.get(first["next"])
    assert follow.status_code == 200 and len(follow.json()["results"]) == 1
    assert api_client.get("/api/schedules/?enabled=true&kind=daily").status_code == 200


def test_the_accepted_parameters_are_named_in_the_400(api_client):
    body = api_client.get("/api/jobs/?nope=1").json()
    for name in ("status", "job_type", "release_id", "user_id", "cursor", "page_size", "format"):
        assert name in body["nope"][0]


# --- the API root ----------------------------------------------------------------------------


def test_the_api_root_links_every_resource_and_each_link_answers(api_client, anon_client):
    response = anon_client.get("/api/")
    assert response.status_code == 200
    links = response.json()
    for name in (
        "jobs",
        "wizard/jobs",
        "job-types",
        "queues",
        "releases",
        "schedules",
        "health",
        "schema",
        "docs",
    ):
        assert links[name] == f"http://testserver/api/{name}/", name
    for url in links.values():
        # health: no cluster here; queues: a plain user may not see everyone's figures.
        expected = (403,) if url.endswith("/api/queues/") else (200, 503)
        assert api_client.get(url).status_code in expected, url
    assert anon_client.get("/api").status_code in (200, 301)


def test_the_api_root_is_browsable_with_a_login_link(anon_client):
    response = anon_client.get("/api/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="http://testserver/api/jobs/"' in html
    assert "/api/auth/login/" in html
