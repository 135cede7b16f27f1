"""Start-up checks refusing django-q2 settings that would break Jobdeck's guarantees."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_q_cluster(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    conf = getattr(settings, "Q_CLUSTER", {})
    errors: list[checks.CheckMessage] = []

    def error(msg: str, hint: str, n: int) -> None:
        errors.append(checks.Error(msg, hint=hint, id=f"jobdeck.E00{n}"))

    timeout, retry = conf.get("timeout"), conf.get("retry", 60)
    if timeout is None or timeout <= 0:
        error("Q_CLUSTER['timeout'] must be set.", "A worker without a timeout can hang.", 1)
    elif retry < timeout * 1.1 + 5:
        # retry is a visibility timeout: a message still running after `retry`
        # seconds is delivered again, so it must outlive the worker timeout.
        error(
            f"Q_CLUSTER['retry'] ({retry}s) must exceed 'timeout' ({timeout}s) with margin.",
            "Set retry to at least timeout * 1.1 + 5 seconds.",
            2,
        )
    if conf.get("max_attempts") != 1:
        error(
            "Q_CLUSTER['max_attempts'] must be 1.",
            "Retries are Jobdeck's, counted on the job row.",
            3,
        )
    if not conf.get("ack_failures"):
        error(
            "Q_CLUSTER['ack_failures'] must be True.",
            "A failed message is acknowledged; Jobdeck's sweep recovers the job.",
            4,
        )
    if not conf.get("recycle") and not conf.get("max_rss"):
        error(
            "Set Q_CLUSTER['recycle'] or 'max_rss'.",
            "Workers must be recycled against memory growth.",
            5,
        )
    queue_limit = conf.get("queue_limit")
    if queue_limit is not None and queue_limit > 4 * int(conf.get("workers") or 1) + 4:
        error(
            "Q_CLUSTER['queue_limit'] is too large.",
            "Messages held in memory are lost with the cluster; keep it small.",
            6,
        )
    return errors


def flow_attribute_errors(job_type) -> list[str]:
    """What is wrong with a job type's flow-control attributes (jobs.registry.JobType)."""
    problems = []

    def positive(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    def rate(value) -> bool:
        return isinstance(value, tuple) and len(value) == 2 and all(positive(v) for v in value)

    if job_type.concurrency_limit is not None and not positive(job_type.concurrency_limit):
        problems.append("concurrency_limit must be a positive int or None")
    if job_type.rate_limit is not None and not rate(job_type.rate_limit):
        problems.append("rate_limit must be (starts, seconds) of positive ints, or None")
    if job_type.concurrency_key is not None and not (
        isinstance(job_type.concurrency_key, str) and job_type.concurrency_key
    ):
        problems.append("concurrency_key must be a non-empty format string or None")
    if not positive(job_type.concurrency_key_limit):
        problems.append("concurrency_key_limit must be a positive int")
    if job_type.key_rate_limit is not None and not rate(job_type.key_rate_limit):
        problems.append("key_rate_limit must be (starts, seconds) of positive ints, or None")
    if job_type.key_rate_limit is not None and not job_type.concurrency_key:
        problems.append("key_rate_limit needs a concurrency_key")
    return problems


@checks.register(checks.Tags.compatibility)
def check_job_type_flow(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Each registered job type's flow-control attributes are well-formed."""
    from . import registry

    return [
        checks.Error(f"Job type {jt.name!r}: {problem}.", id="jobdeck.E010")
        for jt in registry.all_types()
        for problem in flow_attribute_errors(jt)
    ]
