"""Issue 21: jobs that wait on I/O, one per worker process against ten threads per worker.

200 jobs that each sleep 100 ms (bench.sleep), one cluster with 2 worker processes,
first with JOBDECK_WORKER_THREADS=1 and then with 10, in the same run: the wall time
of each drain, the speed-up, and the worker processes' peak RSS during each drain.
"""

from __future__ import annotations

import threading

from jobs.models import Job

from .common import Ctx, drain_figures, insert_noop_jobs, wait_drained
from .harness import Cluster, rss_kb, start_clusters
from .jobtypes import SLEEP

JOBS = 200
SLEEP_SECONDS = 0.1
THREADS = (1, 10)


class PeakRss:
    """Samples the RSS of every process of a cluster while a drain runs (every 20 ms)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.peak: dict[int, int] = {}  # pid → KiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in self.cluster.worker_pids():
                self.peak[pid] = max(self.peak.get(pid, 0), rss_kb(pid))
            self._stop.wait(0.02)


def _workers(ids: list[int]) -> set[int]:
    names = Job.objects.filter(pk__in=ids).values_list("worker", flat=True).distinct()
    return {int(name.rsplit(":", 1)[1]) for name in names if name}


def _run(threads: int, n: int) -> tuple[float, float, dict[str, float]]:
    """(wall seconds, peak worker RSS in KiB, drain figures) with `threads` per worker."""
    config = {"seconds": SLEEP_SECONDS}
    [cluster] = start_clusters(1, JOBDECK_WORKER_THREADS=str(threads))
    try:
        # A warm-up: every worker has imported, connected and run a job of the type.
        warm = insert_noop_jobs(20, job_type=SLEEP, config=config)
        wait_drained(warm, 60)
        with PeakRss(cluster) as rss:
            ids = insert_noop_jobs(n, job_type=SLEEP, config=config)
            wall = wait_drained(ids, 120)
        figures = drain_figures(ids, wall)
        workers = _workers(ids) | _workers(warm)
        peak = max(kib for pid, kib in rss.peak.items() if pid in workers)
    finally:
        cluster.stop()
    return wall, peak, figures


def bench_threads(ctx: Ctx) -> dict[str, float]:
    n = 50 if ctx.quick else JOBS
    ctx.note(
        f"threads: {n} jobs that each sleep {SLEEP_SECONDS * 1000:.0f} ms, one cluster of 2 "
        f"worker processes, JOBDECK_WORKER_THREADS={THREADS[0]} then {THREADS[1]} in the same "
        "run; wall = bulk insert + 2 wake-ups → last job finished; RSS = the worker "
        "processes' peak during the drain (sampled every 20 ms), the larger of the two."
    )
    figures: dict[str, float] = {}
    walls, peaks = {}, {}
    for threads in THREADS:
        wall, peak, drained = _run(threads, n)
        walls[threads], peaks[threads] = wall, peak
        figures[f"threads={threads}: wall seconds"] = wall
        figures[f"threads={threads}: jobs/s (wall clock)"] = drained["drain jobs/s (wall clock)"]
        figures[f"threads={threads}: worker RSS peak (MiB)"] = peak / 1024
    one, many = THREADS
    figures[f"speed-up threads={many} vs {one} (times)"] = walls[one] / walls[many]
    figures[f"worker RSS growth threads={many} vs {one} (%)"] = (
        100 * (peaks[many] - peaks[one]) / peaks[one]
    )
    return figures
