"""The django-q2 entry points, at the dotted paths broker messages and schedules name
(`jobs.runner.run_job`, `…analyze_job`, `…tick`): messages already queued keep
working whatever moves inside. The worker runtime itself is jobs.worker."""

from .worker.drain import analyze_job, claim, run_job, tick
from .worker.execution import CLAIM_LOST, Finished, execute
from .worker.heartbeat import worker_name

__all__ = [
    "CLAIM_LOST",
    "Finished",
    "analyze_job",
    "claim",
    "execute",
    "run_job",
    "tick",
    "worker_name",
]
