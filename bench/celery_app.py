"""Celery + Redis for the side-by-side drain figure.

Runs in its own virtualenv (`./jobdeck bench --with-celery` makes it under var/ and
exports JOBDECK_BENCH_CELERY_PYTHON), so Celery's pins never touch the project's: the
worker is `python -m celery -A celery_app worker` from this directory, and
`python celery_app.py enqueue KEY N` queues the tasks. Broker and queue come from the
environment (REDIS_URL, JOBDECK_BENCH_CELERY_QUEUE).
"""

from __future__ import annotations

import os
import sys
import time

import redis
from celery import Celery

BROKER = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("JOBDECK_BENCH_CELERY_QUEUE", "jobdeck-bench-celery")

app = Celery("jobdeck_bench", broker=BROKER)
# Celery's defaults otherwise (prefork pool, prefetch multiplier 4, early ack); results
# are not stored, as Jobdeck's wake-ups store none in django-q2.
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_client: redis.Redis | None = None


@app.task(name="bench.celery_noop")
def noop(key: str, total: int) -> None:
    """Does nothing but count itself; the first and the last record when they ran."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(BROKER)
    done = _client.incr(key)
    if done in (1, total):
        _client.set(f"{key}:{done}", time.time())


if __name__ == "__main__" and sys.argv[1:2] == ["enqueue"]:
    key, total = sys.argv[2], int(sys.argv[3])
    with app.producer_or_acquire() as producer:
        for _ in range(total):
            noop.apply_async((key, total), queue=QUEUE, producer=producer)
