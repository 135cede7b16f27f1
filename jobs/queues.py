"""Queues: named lanes of jobs, each served by one django-q2 cluster.

`JOBDECK_QUEUE_CLUSTERS="reports=jobdeck-reports"` puts queue `reports` on the
cluster started with `Q_CLUSTER_NAME=jobdeck-reports`. The default cluster (the one
named by `Q_CLUSTER["name"]`) serves the `default` queue and any queue mapped to
it. A cluster's workers claim only the jobs of the queues it serves, and a job's
wake-up message goes to its queue's cluster.
"""

from __future__ import annotations

import os

from django.conf import settings

DEFAULT_QUEUE = "default"


def default_cluster() -> str:
    return settings.Q_CLUSTER["name"]


def cluster_for(queue: str) -> str:
    """The django-q2 cluster (broker list) that serves `queue`."""
    return settings.JOBDECK_QUEUE_CLUSTERS.get(queue, default_cluster())


def known_queues() -> set[str]:
    return {DEFAULT_QUEUE, *settings.JOBDECK_QUEUE_CLUSTERS}


def this_cluster() -> str:
    """The cluster this process belongs to (django-q2 reads the same variable)."""
    return os.environ.get("Q_CLUSTER_NAME") or default_cluster()


def served_queues(cluster: str | None = None) -> list[str]:
    """The queues whose jobs the workers of `cluster` (default: this one) may claim."""
    cluster = cluster or this_cluster()
    return sorted(q for q in known_queues() if cluster_for(q) == cluster)


def threads_for(queue: str) -> int:
    """How many jobs of `queue` one worker process runs at once (JOBDECK_QUEUE_THREADS,
    else JOBDECK_WORKER_THREADS); a malformed value counts as 1 (jobs.checks reports it)."""
    value = settings.JOBDECK_QUEUE_THREADS.get(queue, settings.JOBDECK_WORKER_THREADS)
    threads = parse_threads(value)
    return 1 if threads is None else threads


def parse_threads(value: object) -> int | None:
    """A thread count as settings give it (an int, or digits from the environment); None
    if it is not a whole number of 1 or more."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and value >= 1 else None


def worker_threads(cluster: str | None = None) -> dict[str, int]:
    """Each queue the workers of `cluster` serve → how many of its jobs a worker process
    runs at once."""
    return {queue: threads_for(queue) for queue in served_queues(cluster)}
