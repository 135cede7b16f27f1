"""A release's jobs run one at a time, in creation order: each carries the lock key
`release:<id>`, which jobs' engine enforces without knowing what it protects."""

from __future__ import annotations

from typing import Any

PREFIX = "release:"


def lock_key(job: Any) -> str | None:
    """The lock key of a new job: its release's, if it has one."""
    return f"{PREFIX}{job.release_id}" if job.release_id is not None else None


def label(job: Any) -> str:
    """What a job waiting behind `job` waits for: "release Shop"."""
    release = job.release
    return f"release {release.name or release.slug}"
