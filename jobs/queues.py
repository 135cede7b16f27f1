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
