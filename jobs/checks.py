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
        checks.Error(f"Job type {jt.name!r}: {problem}.", id="jobdeck.E011")
        for jt in registry.all_types()
        for problem in flow_attribute_errors(jt)
    ]


@checks.register(checks.Tags.compatibility)
def check_job_type_timeouts(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A job type's timeout_seconds is None or a positive int, and below django-q2's own
    timeout (which kills the whole worker, so the job would never fail "timed out")."""
    from . import registry

    messages: list[checks.CheckMessage] = []
    q_timeout = getattr(settings, "Q_CLUSTER", {}).get("timeout")
    for jt in registry.all_types():
        timeout = jt.timeout_seconds
        if timeout is None:
            continue
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
            messages.append(
                checks.Error(
                    f"Job type {jt.name!r} has timeout_seconds = {timeout!r}.",
                    hint="Set a whole number of seconds, 1 or more, or None for no timeout.",
                    obj=type(jt),
                    id="jobdeck.E010",
                )
            )
        elif isinstance(q_timeout, int | float) and q_timeout > 0 and timeout >= q_timeout:
            messages.append(
                checks.Warning(
                    f"Job type {jt.name!r} has timeout_seconds = {timeout}, not below "
                    f"Q_CLUSTER['timeout'] ({q_timeout} s).",
                    hint=(
                        "django-q2's timeout covers a whole wake-up and kills the worker: "
                        "keep it above the longest job timeout plus JOBDECK_DRAIN_SECONDS."
                    ),
                    obj=type(jt),
                    id="jobdeck.W010",
                )
            )
    return messages


@checks.register(checks.Tags.compatibility)
def check_worker_threads(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """JOBDECK_WORKER_THREADS, each JOBDECK_QUEUE_THREADS value and JOBDECK_CLAIM_BATCH
    are whole numbers of 1 or more, and each queue named there is a Jobdeck queue."""
    from . import queues

    messages: list[checks.CheckMessage] = []
    hint = "Set a whole number of 1 or more (1: one job at a time per worker process)."
    default = getattr(settings, "JOBDECK_WORKER_THREADS", 1)
    if queues.parse_threads(default) is None:
        messages.append(
            checks.Error(
                f"JOBDECK_WORKER_THREADS = {default!r} is not a thread count.",
                hint=hint,
                id="jobdeck.E020",
            )
        )
    batch = getattr(settings, "JOBDECK_CLAIM_BATCH", 32)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        messages.append(
            checks.Error(
                f"JOBDECK_CLAIM_BATCH = {batch!r} is not a batch size.",
                hint="Set a whole number of 1 or more (1: a threaded worker claims one job "
                "per statement).",
                id="jobdeck.E022",
            )
        )
    per_queue = getattr(settings, "JOBDECK_QUEUE_THREADS", {})
    known = queues.known_queues()
    for queue, value in sorted(per_queue.items()):
        if queues.parse_threads(value) is None:
            messages.append(
                checks.Error(
                    f"JOBDECK_QUEUE_THREADS gives queue {queue!r} {value!r} threads.",
                    hint=hint,
                    id="jobdeck.E021",
                )
            )
        elif queue not in known:
            messages.append(
                checks.Warning(
                    f"JOBDECK_QUEUE_THREADS names queue {queue!r}, which no cluster serves.",
                    hint=(
                        "Queues are 'default' and those of JOBDECK_QUEUE_CLUSTERS; "
                        f"known here: {', '.join(sorted(known))}."
                    ),
                    id="jobdeck.W020",
                )
            )
    return messages
