"""The releases REST API: /api/releases/…"""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from jobs import services as job_services
from jobs.models import Job, JobStatus
from releases.models import Release, ReleaseVersion
from tests.support.release_factories import make_release, make_version, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(release_manager) -> APIClient:
    client = APIClient()
    client.force_authenticate(release_manager)
    return client


def upload_version(client, release, files: dict[str, bytes], **fields):
    data = {
        "files": [SimpleUploadedFile(p.rsplit("/", 1)[-1], c) for p, c in files.items()],
        "paths": list(files),
        **fields,
    }
    return client.post(f"/api/releases/{release.pk}/versions/", data, format="multipart")


# --- releases ------------------------------------------------------------------------


def test_any_authenticated_user_lists_and_reads_releases(api_client, release):
    listing = api_client.get("/api/releases/")
    assert listing.status_code == 200
    assert set(listing.json()) == {"next", "previous", "results"}
    [row] = listing.json()["results"]
    assert row == {
        "id": release.pk,
        "slug": "app",
        "name": "App",
        "description": "",
        "current_version": None,
        "created_by": "alice",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    assert row["created_at"].endswith("Z") or "+00:00" in row["created_at"]
    assert api_client.get(f"/api/releases/{release.pk}/").json()["slug"] == "app"


def test_anonymous_requests_are_refused(release):
    assert APIClient().get("/api/releases/").status_code in (401, 403)


def test_writing_releases_needs_the_model_permissions(api_client, release):
    assert api_client.post("/api/releases/", {"slug": "x", "name": "X"}).status_code == 403
    assert api_client.patch(f"/api/releases/{release.pk}/", {"name": "n"}).status_code == 403
    assert api_client.delete(f"/api/releases/{release.pk}/").status_code == 403
    assert Release.objects.get(pk=release.pk).name == "App"


def test_a_manager_creates_updates_and_deletes_a_release(manager_client):
    created = manager_client.post(
        "/api/releases/", {"slug": "web", "name": "Web", "description": "d"}, format="json"
    )
    assert created.status_code == 201, created.json()
    rid = created.json()["id"]
    assert created.json()["created_by"] == "rita"
    patched = manager_client.patch(f"/api/releases/{rid}/", {"name": "Web 2"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Web 2"
    ignored = manager_client.patch(f"/api/releases/{rid}/", {"current_version": 3}, format="json")
    assert ignored.status_code == 200 and ignored.json()["current_version"] is None
    assert manager_client.put(f"/api/releases/{rid}/", {"name": "x"}).status_code == 405
    assert manager_client.delete(f"/api/releases/{rid}/").status_code == 204
    assert manager_client.get(f"/api/releases/{rid}/").status_code == 404


def test_invalid_release_input_is_a_400_naming_the_field(manager_client, release):
    dup = manager_client.post("/api/releases/", {"slug": "app", "name": "A"}, format="json")
    assert dup.status_code == 400 and "slug" in dup.json()
    bad = manager_client.post("/api/releases/", {"slug": "a b", "name": "A"}, format="json")
    assert bad.status_code == 400 and "slug" in bad.json()
    missing = manager_client.post("/api/releases/", {"slug": "ok"}, format="json")
    assert missing.status_code == 400 and "name" in missing.json()


def test_deleting_a_release_with_a_running_job_is_a_409(manager_client, release):
    job = job_services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release
    )
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, lock_slot=0)
    response = manager_client.delete(f"/api/releases/{release.pk}/")
    assert response.status_code == 409
    assert f"job #{job.pk} is running" in response.json()["detail"]


def test_an_unknown_release_is_a_404_everywhere(manager_client):
    for url in (
        "/api/releases/999/",
        "/api/releases/999/jobs/",
        "/api/releases/999/versions/",
        "/api/releases/999/versions/1/",
    ):
        assert manager_client.get(url).status_code == 404, url
    assert manager_client.post("/api/releases/999/rollback/").status_code == 404
    assert manager_client.post("/api/releases/999/versions/1/apply/").status_code == 404


# --- versions ------------------------------------------------------------------------


def test_a_version_is_created_by_multipart_upload_with_sizes_and_checksums(manager_client, release):
    files = {"README": b"readme", "bin/tool": b"\x00\x01\x02"}
    response = upload_version(
        manager_client, release, files, comment="first", manifest=json.dumps({"team": "x"})
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1 and body["parent"] is None and body["comment"] == "first"
    assert body["manifest"] == {"team": "x"} and body["created_by"] == "rita"
    assert sorted(body["files"], key=lambda f: f["name"]) == [
        {"name": "README", "size": 6, "sha256": hashlib.sha256(b"readme").hexdigest()},
        {"name": "bin/tool", "size": 3, "sha256": hashlib.sha256(b"\x00\x01\x02").hexdigest()},
    ]
    second = upload_version(manager_client, release, {"README": b"v2"})
    assert second.json()["number"] == 2 and second.json()["parent"] == 1
    detail = manager_client.get(f"/api/releases/{release.pk}/versions/2/")
    assert detail.status_code == 200 and detail.json()["files"][0]["name"] == "README"


def test_creating_a_version_needs_the_add_permission(api_client, release):
    assert upload_version(api_client, release, {"a": b"1"}).status_code == 403


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/abs/path", "a\\b", "C:/x", "a/../b"])
def test_path_traversal_in_an_uploaded_name_is_a_400_and_nothing_is_created(
    manager_client, release, bad
):
    response = upload_version(manager_client, release, {bad: b"1"})
    assert response.status_code == 400
    assert "paths" in response.json()
    assert not ReleaseVersion.objects.exists()


def test_path_traversal_in_a_manifest_is_a_400(manager_client, release):
    manifest = json.dumps({"files": ["../../a"]})
    response = upload_version(manager_client, release, {"a": b"1"}, manifest=manifest)
    assert response.status_code == 400 and "manifest" in response.json()
    as_json = manager_client.post(
        f"/api/releases/{release.pk}/versions/",
        {"manifest": {"files": [{"path": "/etc/shadow"}]}},
        format="json",
    )
    assert as_json.status_code == 400 and "manifest" in as_json.json()
    not_object = manager_client.post(
        f"/api/releases/{release.pk}/versions/", {"manifest": [1]}, format="json"
    )
    assert not_object.status_code == 400
    assert not ReleaseVersion.objects.exists()


def test_a_malformed_manifest_or_parent_is_a_400_never_a_500(manager_client, release):
    url = f"/api/releases/{release.pk}/versions/"
    bad_json = manager_client.post(url, {"manifest": "not json{"}, format="multipart")
    assert bad_json.status_code == 400 and bad_json.json() == {"manifest": ["Not valid JSON."]}
    nul = manager_client.post(url, {"manifest": {"k": "a\u0000b"}}, format="json")
    assert nul.status_code == 400 and "manifest" in nul.json()
    parent = manager_client.post(url, {"parent": 10**20}, format="json")
    assert parent.status_code == 400 and "parent" in parent.json()
    assert not ReleaseVersion.objects.exists()


def test_versions_cannot_be_changed_or_deleted_through_the_api(manager_client, release):
    make_version(release, {"a": b"1"}, comment="original")
    url = f"/api/releases/{release.pk}/versions/1/"
    assert manager_client.put(url, {"comment": "x"}, format="json").status_code == 405
    assert manager_client.patch(url, {"comment": "x"}, format="json").status_code == 405
    assert manager_client.delete(url).status_code == 405
    assert ReleaseVersion.objects.get().comment == "original"


# --- apply, rollback, history ------------------------------------------------------------


def test_apply_and_rollback_answer_202_with_the_job_and_history_lists_both(manager_client, release):
    make_version(release, {"a": b"1"})
    make_version(release, {"a": b"2"})
    first = manager_client.post(f"/api/releases/{release.pk}/versions/1/apply/")
    assert first.status_code == 202, first.json()
    assert first.json()["job_type"] == "release.apply" and first.json()["status"] == "pending"
    run(Job.objects.get(pk=first.json()["id"]))
    second = manager_client.post(f"/api/releases/{release.pk}/versions/2/apply/")
    run(Job.objects.get(pk=second.json()["id"]))
    assert manager_client.get(f"/api/releases/{release.pk}/").json()["current_version"] == 2

    rollback = manager_client.post(f"/api/releases/{release.pk}/rollback/")
    assert rollback.status_code == 202, rollback.json()
    assert rollback.json()["config"]["rollback_of"] == second.json()["id"]
    run(Job.objects.get(pk=rollback.json()["id"]))
    assert manager_client.get(f"/api/releases/{release.pk}/").json()["current_version"] == 1

    history = manager_client.get(f"/api/releases/{release.pk}/jobs/").json()["results"]
    assert [j["id"] for j in history] == [
        rollback.json()["id"],
        second.json()["id"],
        first.json()["id"],
    ]
    detail = manager_client.get(f"/api/jobs/{history[0]['id']}/").json()
    assert detail["result"]["previous_version"] == 2


def test_apply_of_an_unknown_version_is_a_404_and_rollback_without_history_a_400(
    manager_client, release
):
    assert manager_client.post(f"/api/releases/{release.pk}/versions/5/apply/").status_code == 404
    make_version(release, {"a": b"1"})
    response = manager_client.post(f"/api/releases/{release.pk}/rollback/")
    assert response.status_code == 400 and "release" in response.json()


def test_rollback_while_an_apply_is_queued_is_a_409(manager_client, release):
    make_version(release, {"a": b"1"})
    manager_client.post(f"/api/releases/{release.pk}/versions/1/apply/")
    assert manager_client.post(f"/api/releases/{release.pk}/rollback/").status_code == 409


def test_apply_and_rollback_need_the_change_permission(api_client, release):
    make_version(release, {"a": b"1"})
    assert api_client.post(f"/api/releases/{release.pk}/versions/1/apply/").status_code == 403
    assert api_client.post(f"/api/releases/{release.pk}/rollback/").status_code == 403
    assert not Job.objects.exists()


def test_release_history_shows_only_jobs_the_caller_may_see_and_why_they_wait(
    api_client, user, other_user, release
):
    mine = [
        job_services.job_create(
            job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release, user=user
        )
        for _ in range(2)
    ]
    theirs = job_services.job_create(
        job_type="demo.steps", config={"steps": 1, "delay": 0}, release=release, user=other_user
    )
    rows = api_client.get(f"/api/releases/{release.pk}/jobs/").json()["results"]
    assert [r["id"] for r in rows] == [mine[1].pk, mine[0].pk]
    assert theirs.pk not in [r["id"] for r in rows]
    assert rows[0]["waiting_reason"] == f"waiting, 1st behind job #{mine[0].pk} on release App"
    assert rows[1]["waiting_reason"] is None


# --- constant query counts -------------------------------------------------------------


def _count_queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm the user's permission cache, which is per user, not per row
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url + "?page_size=200")
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("what", ["releases", "versions", "jobs"])
def test_list_endpoints_run_the_same_number_of_queries_for_5_and_50_rows(
    manager_client, release_manager, what
):
    counts = []
    for n in (5, 50):
        Job.objects.all().delete()
        target = make_release(f"r{n}", user=release_manager)
        for i in range(n):
            if what == "releases":
                make_release(f"r{n}-{i}")
            elif what == "versions":
                make_version(target, {"a": b"1", "b/c": b"2"}, comment=str(i))
            else:
                job_services.job_create(
                    job_type="demo.steps",
                    config={"steps": 1, "delay": 0},
                    release=target,
                    user=release_manager,
                )
        url = {
            "releases": "/api/releases/",
            "versions": f"/api/releases/{target.pk}/versions/",
            "jobs": f"/api/releases/{target.pk}/jobs/",
        }[what]
        counts.append(_count_queries(manager_client, url))
    assert counts[0] == counts[1], counts
