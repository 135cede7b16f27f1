"""Search jobs by config value, tag and log text: exactly the right jobs, constant queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.models import Job, JobTag
from tests.support.search_jobtypes import ACCOUNT, account_type

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def account():
    with account_type() as jt:
        yield jt


def make(user, tags=None, **config):
    return services.job_create(job_type=ACCOUNT, config=config, user=user, tags=tags)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_config_values_are_compared_as_json_numbers_and_strings_apart(api_client, user):
    number = make(user, account_id=42)
    text = make(user, account_id="42")
    make(user, account_id=7)
    make(user, region="us")

    assert ids(api_client.get("/api/jobs/?config.account_id=42")) == [number.pk]
    assert ids(api_client.get('/api/jobs/?config.account_id="42"')) == [text.pk]
    assert ids(api_client.get("/api/jobs/?config.region=us")) == [Job.objects.order_by("-id")[0].pk]


def test_config_search_walks_dotted_keys_and_combines_with_other_filters(api_client, user):
    inner = make(user, db={"host": "db1", "port": 5432}, region="eu")
    make(user, db={"host": "db2"}, region="eu")
    make(user, db={"host": "db1"}, region="us")

    assert ids(api_client.get("/api/jobs/?config.db.host=db1&config.region=eu")) == [inner.pk]
    assert ids(api_client.get("/api/jobs/?config.db.port=5432&job_type=test.account")) == [inner.pk]


def test_an_array_holding_the_value_is_not_a_match(api_client, user):
    exact = make(user, account_id=5)
    make(user, account_id=[5, 6])

    assert ids(api_client.get("/api/jobs/?config.account_id=5")) == [exact.pk]
    assert ids(api_client.get("/api/jobs/?config.account_id=[5,6]")) == [exact.pk + 1]


def test_a_key_that_reads_like_a_lookup_is_just_a_key(api_client, user):
    job = make(user, db={"a__contains": 1})
    make(user, db={"a": 1})

    assert ids(api_client.get("/api/jobs/?config.db.a__contains=1")) == [job.pk]


def test_null_and_booleans_are_json_too(api_client, user):
    none = make(user)  # account_id defaults to null
    true = make(user, account_id=True)

    assert ids(api_client.get("/api/jobs/?config.account_id=null")) == [none.pk]
    assert ids(api_client.get("/api/jobs/?config.account_id=true")) == [true.pk]


@pytest.mark.parametrize(
    "name", ["config.", "config.a%20b", "config.1", "config.a..b", "config.a.b.c.d.e.f"]
)
def test_an_invalid_config_key_is_a_400_naming_it(api_client, name):
    response = api_client.get(f"/api/jobs/?{name}=1")

    assert response.status_code == 400
    assert list(response.json()) == [name.replace("%20", " ")]


def test_a_nul_in_a_config_value_is_a_400(api_client):
    response = api_client.get("/api/jobs/?config.a=%00")

    assert response.status_code == 400
    assert "config.a" in response.json()


def test_unknown_parameters_are_still_refused_and_config_keys_are_listed(api_client):
    response = api_client.get("/api/jobs/?configx=1")

    assert response.status_code == 400
    assert "config.<key>" in response.json()["configx"][0]


def test_search_sees_only_the_callers_jobs(api_client, user, other_user):
    mine = make(user, account_id=1)
    make(other_user, account_id=1)

    assert ids(api_client.get("/api/jobs/?config.account_id=1")) == [mine.pk]


def test_tags_are_set_at_creation_and_found_by_tag(api_client, user):
    created = api_client.post(
        "/api/jobs/",
        {"job_type": ACCOUNT, "config": {}, "tags": ["nightly", "billing"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["tags"] == ["nightly", "billing"]
    other = make(user, tags=["nightly"])
    make(user)

    assert ids(api_client.get("/api/jobs/?tag=nightly")) == [other.pk, created.json()["id"]]
    assert ids(api_client.get("/api/jobs/?tag=billing")) == [created.json()["id"]]
    assert ids(api_client.get("/api/jobs/?tag=nope")) == []
    assert ids(api_client.get("/api/jobs/?tag=bad%20tag")) == []
    assert api_client.get("/api/jobs/?tag=billing").json()["results"][0]["tags"] == [
        "nightly",
        "billing",
    ]


def test_an_invalid_tag_at_creation_is_a_400_and_nothing_is_created(api_client):
    response = api_client.post(
        "/api/jobs/", {"job_type": ACCOUNT, "tags": ["ok", "not ok"]}, format="json"
    )

    assert response.status_code == 400
    assert "tags" in response.json()
    assert not Job.objects.exists()


def test_bulk_creation_tags_each_item(api_client):
    response = api_client.post(
        "/api/jobs/bulk/",
        {
            "jobs": [
                {"job_type": ACCOUNT, "tags": ["a"]},
                {"job_type": ACCOUNT},
                {"job_type": ACCOUNT, "tags": ["a", "b"]},
            ]
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    first, second, third = response.json()["ids"]

    assert ids(api_client.get("/api/jobs/?tag=a")) == [third, first]
    assert ids(api_client.get("/api/jobs/?tag=b")) == [third]
    assert Job.objects.get(pk=second).tags == []
    assert JobTag.objects.count() == 3


def test_log_text_search_is_case_insensitive_and_exact(api_client, user):
    disk = make(user)
    services.job_log(job_id=disk.pk, message="ERROR: Disk full on /var")
    other = make(user)
    services.job_log(job_id=other.pk, message="all good")
    services.job_log(job_id=other.pk, message="still fine")
    make(user)

    assert ids(api_client.get("/api/jobs/?log_contains=disk%20FULL")) == [disk.pk]
    assert ids(api_client.get("/api/jobs/?log_contains=fine")) == [other.pk]
    assert ids(api_client.get("/api/jobs/?log_contains=nowhere")) == []
    # Percent signs and underscores are text, not LIKE wildcards.
    assert ids(api_client.get("/api/jobs/?log_contains=a%25l")) == []


@pytest.mark.parametrize("text", ["ab", "x" * 201, "%00ab"])
def test_log_text_of_the_wrong_length_or_with_a_nul_is_a_400(api_client, text):
    response = api_client.get(f"/api/jobs/?log_contains={text}")

    assert response.status_code == 400
    assert "log_contains" in response.json()


def test_on_sqlite_log_search_looks_at_the_newest_lines_only(api_client, user, settings):
    if connection.vendor != "sqlite":
        pytest.skip("the bound is SQLite's")
    old = make(user)
    services.job_log(job_id=old.pk, message="needle")
    new = make(user)
    for _ in range(3):
        services.job_log(job_id=new.pk, message="hay")
    settings.JOBDECK_SEARCH_SQLITE_LOG_LINES = 3

    assert ids(api_client.get("/api/jobs/?log_contains=needle")) == []
    settings.JOBDECK_SEARCH_SQLITE_LOG_LINES = 4
    assert ids(api_client.get("/api/jobs/?log_contains=needle")) == [old.pk]


@pytest.mark.parametrize(
    "query", ["config.account_id=1", "tag=t", "log_contains=line", "config.region=eu&tag=t"]
)
def test_each_search_runs_the_same_queries_for_5_and_for_50_rows(api_client, user, query):
    def batch(n):
        for _ in range(n):
            job = make(user, tags=["t"], account_id=1)
            services.job_log(job_id=job.pk, message="a line")

    def count() -> int:
        api_client.get(f"/api/jobs/?{query}&page_size=50")
        with CaptureQueriesContext(connection) as ctx:
            response = api_client.get(f"/api/jobs/?{query}&page_size=50")
        assert response.status_code == 200
        return len(ctx.captured_queries), len(response.json()["results"])

    batch(5)
    five = count()
    batch(45)
    fifty = count()

    assert (five[1], fifty[1]) == (5, 50)
    assert five[0] == fifty[0] <= 2
