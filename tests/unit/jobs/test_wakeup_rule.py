"""How many wake-ups: one per idle worker of every live cluster of the queue's name.

Clusters with one name (one per machine) share one broker list, and whichever pusher
looks first takes a burst of messages; so bulk creation, the tick, released jobs and
a draining worker's check count the idle workers of all of them (jobs.broker).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from jobs import broker, flow_changes, queues, services
from jobs.models import FlowScope, Job, JobStatus, WorkerProcess
from jobs.runner import tick
from tests.support.job_factories import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def heartbeats(settings):
    """Workers announce themselves (the test settings turn heartbeats off)."""
    settings.JOBDECK_HEARTBEAT_SECONDS = 5.0
    settings.JOBDECK_STALE_SECONDS = 60.0


@pytest.fixture
def woken(monkeypatch) -> list[tuple[Any, str]]:
    sent: list[tuple[Any, str]] = []
    monkeypatch.setattr(
        broker, "enqueue_wakeup", lambda job_id=None, queue="default": sent.append((job_id, queue))
    )
    return sent


def worker(
    name: str, *, host: str = "a", cluster: str | None = None, seen_ago: float = 1.0
) -> WorkerProcess:
    return WorkerProcess.objects.create(
        name=f"{host}:{name}",
        host=host,
        pid=int(name),
        cluster=cluster or queues.default_cluster(),
        cluster_pid=1,
        seen_at=timezone.now() - timedelta(seconds=seen_ago),
    )


def two_clusters_of_two() -> list[WorkerProcess]:
    """Two machines' clusters of the default name, two workers each, all idle."""
    return [worker("11"), worker("12"), worker("21", host="b"), worker("22", host="b")]


def run_on(row: WorkerProcess) -> Job:
    job = make_job(JobStatus.RUNNING)
    Job.objects.filter(pk=job.pk).update(worker=row.name)
    return job


def noop_specs(n: int) -> list[dict[str, Any]]:
    return [{"job_type": "demo.steps", "config": {"steps": 1, "delay": 0}}] * n


def test_idle_workers_counts_every_live_cluster_of_the_name_but_not_busy_stale_or_others():
    rows = two_clusters_of_two()
    run_on(rows[0])
    worker("31", host="c", seen_ago=16)  # three heartbeats missed: gone
    worker("41", host="d", cluster="elsewhere")  # another cluster name, another list
    assert broker.idle_workers(queues.default_cluster()) == 3
    assert broker.idle_workers("elsewhere") == 1
    assert broker.idle_workers("nobody") is None


def test_a_stopped_workers_row_on_this_machine_stops_counting_at_once():
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    here = socket.gethostname()
    worker(gone.stdout.strip(), host=here)  # its process has exited: heartbeat still recent
    worker(str(os.getpid()), host=here)  # alive
    worker("21", host="b")  # another machine: only its heartbeat can tell
    assert broker.idle_workers(queues.default_cluster()) == 2


def test_bulk_creation_wakes_one_worker_per_idle_worker_of_every_cluster(
    woken, django_capture_on_commit_callbacks
):
    two_clusters_of_two()
    with django_capture_on_commit_callbacks(execute=True):
        services.job_bulk_create(specs=noop_specs(30))
    assert woken == [(None, "default")] * 4


def test_bulk_creation_sends_no_more_wakeups_than_jobs(woken, django_capture_on_commit_callbacks):
    two_clusters_of_two()
    with django_capture_on_commit_callbacks(execute=True):
        services.job_bulk_create(specs=noop_specs(3))
    assert len(woken) == 3


def test_wakeups_still_waiting_in_the_list_count_as_sent(woken, django_capture_on_commit_callbacks):
    two_clusters_of_two()
    past = timezone.now() - timedelta(seconds=1)
    OrmQ.objects.bulk_create(
        [OrmQ(key=queues.default_cluster(), payload="x", lock=past) for _ in range(3)]
    )
    # Taken by a cluster (lock in the future): no longer waiting.
    OrmQ.objects.create(
        key=queues.default_cluster(), payload="x", lock=timezone.now() + timedelta(minutes=5)
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.job_bulk_create(specs=noop_specs(30))
    assert len(woken) == 1


def test_with_every_worker_busy_one_wakeup_still_goes_out(woken):
    for row in two_clusters_of_two():
        run_on(row)
    woken.clear()  # the factory's own wake-ups
    assert broker.wake_for_backlog("default", 30) == 1
    assert woken == [(None, "default")]


def test_with_no_worker_announced_every_cluster_worker_count_is_woken(woken, settings):
    assert broker.wake_for_backlog("default", 30) == settings.Q_CLUSTER["workers"]


def test_a_draining_workers_check_wakes_idle_peers_while_runnable_jobs_wait(woken):
    busy = two_clusters_of_two()[0]
    run_on(busy)
    for _ in range(5):
        make_job()
    woken.clear()  # the factory's own wake-ups
    fan_out = broker.DrainFanOut(["default"], interval=60)
    assert fan_out() == 3
    assert woken == [(None, "default")] * 3
    assert fan_out() == 0  # not again before the interval
    assert len(woken) == 3


def test_a_draining_workers_check_wakes_no_more_than_the_runnable_jobs(woken):
    two_clusters_of_two()
    make_job()
    make_job(run_after=timezone.now() + timedelta(hours=1))  # not runnable yet
    woken.clear()  # the factory's own wake-ups
    assert broker.DrainFanOut(["default"], interval=60)() == 1


def test_a_draining_workers_check_wakes_nobody_without_idle_workers_or_backlog(woken):
    rows = two_clusters_of_two()
    assert broker.DrainFanOut(["default"], interval=60)() == 0  # no runnable job
    for row in rows:
        run_on(row)
    make_job()
    woken.clear()  # the factory's own wake-ups
    assert broker.DrainFanOut(["default"], interval=60)() == 0  # everyone busy
    WorkerProcess.objects.all().delete()
    assert broker.DrainFanOut(["default"], interval=60)() == 0  # nobody announced
    assert woken == []


def test_a_check_not_due_at_once_waits_for_its_interval(woken):
    two_clusters_of_two()
    make_job()
    woken.clear()  # the factory's own wake-ups
    assert broker.DrainFanOut(["default"], interval=60, at_once=False)() == 0
    assert broker.DrainFanOut(["default"], interval=0, at_once=False)() == 1


def test_the_tick_wakes_the_idle_workers_of_every_cluster_for_a_waiting_backlog(woken):
    two_clusters_of_two()
    for _ in range(6):
        make_job()
    woken.clear()  # the factory's own wake-ups
    assert tick()["woken"] == 4
    assert woken == [(None, "default")] * 4


def test_resuming_a_queue_wakes_the_idle_workers_of_every_cluster(
    woken, django_capture_on_commit_callbacks
):
    two_clusters_of_two()
    flow_changes.pause(scope=FlowScope.QUEUE, name="default")
    for _ in range(6):
        make_job()
    woken.clear()  # the factory's own wake-ups
    with django_capture_on_commit_callbacks(execute=True):
        flow_changes.resume(scope=FlowScope.QUEUE, name="default")
    assert woken == [(None, "default")] * 4


def test_jobs_released_together_wake_the_idle_workers_of_every_cluster(woken):
    two_clusters_of_two()
    released = [(make_job().pk, "default") for _ in range(6)]
    woken.clear()  # the factory's own wake-ups
    broker.wake_released(released)
    assert woken == [(None, "default")] * 4
