"""Real qcluster processes: a release's jobs run one at a time in creation order, while
jobs on other releases run in parallel; release jobs do real work in a worker."""

from __future__ import annotations

from itertools import pairwise

import pytest
from django.db import connection, transaction

from jobs import services as job_services
from jobs.models import Job, JobStatus, Task
from releases import services
from releases.models import Artefact, ArtefactKind
from tests.support.cluster import wait_until
from tests.support.release_factories import make_release, make_version

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def queue(release, n: int, delay: float) -> list[Job]:
    return [
        job_services.job_create(
            job_type="demo.steps", config={"steps": 2, "delay": delay}, release=release
        )
        for _ in range(n)
    ]


def wait_finished(jobs: list[Job], clusters, timeout: float = 120) -> list[Job]:
    ids = [j.pk for j in jobs]

    def done() -> bool:
        return not Job.objects.filter(pk__in=ids).exclude(status=JobStatus.COMPLETED).exists()

    try:
        wait_until(done, timeout, 0.2, "every job to complete")
    except AssertionError:
        raise AssertionError("\n\n".join(c.output for c in clusters)) from None
    return list(Job.objects.filter(pk__in=ids).order_by("pk"))


def assert_one_at_a_time_in_creation_order(jobs: list[Job]) -> None:
    """Each job starts after the previous one (by creation) finished: times never overlap."""
    for earlier, later in pairwise(jobs):
        assert earlier.finished_at <= later.started_at, (earlier.pk, later.pk)
        last_task_end = max(Task.objects.filter(job=earlier).values_list("finished_at", flat=True))
        first_task_start = min(Task.objects.filter(job=later).values_list("started_at", flat=True))
        assert last_task_end <= first_task_start, (earlier.pk, later.pk)


def overlaps(a: Job, b: Job) -> bool:
    return a.started_at < b.finished_at and b.started_at < a.finished_at


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="two clusters sharing one database need PostgreSQL"
)
def test_two_clusters_run_a_releases_five_jobs_in_order_while_other_releases_run_in_parallel(
    make_cluster, media_root
):
    first, second = make_release("first"), make_release("second")
    with transaction.atomic():  # all ten jobs are there when the first wake-up arrives
        ones = queue(first, 5, 0.3)
        twos = queue(second, 5, 0.3)
    clusters = [make_cluster(MEDIA_ROOT=str(media_root)) for _ in range(2)]

    ones = wait_finished(ones, clusters)
    twos = wait_finished(twos, clusters)

    assert_one_at_a_time_in_creation_order(ones)
    assert_one_at_a_time_in_creation_order(twos)
    assert any(overlaps(a, b) for a in ones for b in twos), "releases did not run in parallel"


def test_one_cluster_runs_a_releases_jobs_in_creation_order_and_others_alongside(
    make_cluster, media_root
):
    first, second = make_release("first"), make_release("second")
    with transaction.atomic():
        ones = queue(first, 5, 0.2)
        twos = queue(second, 2, 0.6)
    cluster = make_cluster(MEDIA_ROOT=str(media_root))

    ones = wait_finished(ones, [cluster])
    twos = wait_finished(twos, [cluster])

    assert_one_at_a_time_in_creation_order(ones)
    assert_one_at_a_time_in_creation_order(twos)
    assert any(overlaps(a, b) for a in ones for b in twos), "releases did not run in parallel"


def test_a_worker_packages_verifies_applies_and_rolls_back_a_release(make_cluster, media_root):
    release = make_release("app")
    make_version(release, {"README": b"v1", "bin/tool": b"\x01" * 5000})
    make_version(release, {"README": b"v2", "bin/tool": b"\x02" * 5000})
    cluster = make_cluster(MEDIA_ROOT=str(media_root))
    with transaction.atomic():
        jobs = [
            services.release_package(release=release, number=2, format="zip"),
            services.release_verify(release=release, number=2, package=True),
            services.release_apply(release=release, number=1),
            services.release_apply(release=release, number=2),
        ]
    wait_finished(jobs, [cluster])
    rollback = services.release_rollback(release=release)
    wait_finished([rollback], [cluster])

    release.refresh_from_db()
    assert release.current_version.number == 1
    assert Artefact.objects.filter(kind=ArtefactKind.PACKAGE, path="app-v2.zip").exists()
    history = list(release.jobs.order_by("pk").values_list("job_type", "status"))
    assert history[-2:] == [("release.apply", "completed")] * 2
