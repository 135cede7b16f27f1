"""`manage.py jobs list|status|logs|cancel|retry|run|cleanup|sweep` — the shell's front door."""

from __future__ import annotations

import time
from datetime import timedelta

from django.core.management.base import CommandError

from jobs import search, selectors, services
from jobs.cli import (
    ActionCommand,
    job_id_list,
    job_json,
    json_object,
    non_negative_int,
    positive_int,
)
from jobs.inputs import parse_id
from jobs.models import Job, JobDependency, JobLog, JobStatus

VIA = "cli"


class Command(ActionCommand):
    help = (
        "Inspect and act on jobs: list, status, logs, cancel, retry, run, cleanup, sweep. "
        "--json (machine-readable output) and --user NAME go before or after the action."
    )

    def add_actions(self, sub) -> None:
        p = sub.add_parser("list", help="list jobs, newest first")
        p.add_argument("--status", help="comma-separated statuses")
        p.add_argument("--type", dest="job_type")
        p.add_argument("--release", help="release slug")
        p.add_argument("--owner", help="username of the creator")
        p.add_argument("--tag", help="only jobs with this tag")
        p.add_argument(
            "--limit", type=non_negative_int, default=50, help="at most this many (default 50)"
        )

        p = sub.add_parser("status", help="status, progress, duration and tasks of a job")
        p.add_argument("id", type=non_negative_int)
        p.add_argument("--logs", action="store_true", help="also print the last log lines")
        p.add_argument("--tail", type=non_negative_int, default=20)

        p = sub.add_parser("logs", help="print a job's log")
        p.add_argument("id", type=non_negative_int)
        p.add_argument("--tail", type=non_negative_int, default=100)
        p.add_argument("--follow", action="store_true", help="keep printing until it finishes")

        for name, text in (("cancel", "cancel a job"), ("retry", "retry a failed/cancelled job")):
            p = sub.add_parser(name, help=text)
            p.add_argument("id", type=non_negative_int)
            if name == "retry":
                p.add_argument("--config", type=json_object, help="corrected config (JSON)")

        p = sub.add_parser("run", help="create a job of TYPE")
        p.add_argument("job_type", metavar="TYPE")
        p.add_argument("--config", type=json_object, default={}, help="config as a JSON object")
        p.add_argument("--release", help="the release it acts on (slug or id), for release.*")
        p.add_argument("--priority", type=int, default=0)
        p.add_argument("--max-attempts", type=int, default=None)
        p.add_argument(
            "--job-timeout",
            type=positive_int,
            default=None,
            metavar="N",
            help="seconds each attempt may run before it is interrupted and fails "
            "(default: the job type's)",
        )
        p.add_argument("--draft", action="store_true", help="create a draft to analyse first")
        p.add_argument("--queue", default="default", help="the queue it runs in")
        p.add_argument(
            "--unique-key",
            default=None,
            metavar="KEY",
            help="while a job with KEY is pending or running, return it instead",
        )
        p.add_argument(
            "--tag", action="append", default=[], metavar="TAG", help="tag the job (repeatable)"
        )
        p.add_argument(
            "--after",
            type=job_id_list,
            default=[],
            metavar="IDS",
            help="comma-separated ids of jobs it waits for (it runs once they completed)",
        )
        p.add_argument(
            "--on-parent-failure",
            choices=["cancel", "run"],
            default=None,
            help="with --after, when a parent fails or is cancelled: cancel this job "
            "(the default) or run it once every parent ended",
        )
        p.add_argument(
            "--wait",
            action="store_true",
            help="stream logs, then the finished job; exit 0 only if it completes",
        )
        p.add_argument("--timeout", type=non_negative_int, default=0, help="seconds (0 = none)")

        p = sub.add_parser("cleanup", help="delete finished jobs older than N days")
        p.add_argument("--older-than", type=non_negative_int, required=True, metavar="DAYS")
        p.add_argument("--dry-run", action="store_true")

        sub.add_parser("sweep", help="recover running jobs whose worker stopped heartbeating")

    # --- plumbing ------------------------------------------------------------

    @staticmethod
    def with_parents(job: Job, data: dict) -> dict:
        """`data` (the job's JSON) with the ids of the jobs it waits for and its rule."""
        parents = JobDependency.objects.filter(child_id=job.pk).order_by("parent_id")
        return {
            **data,
            "depends_on": list(parents.values_list("parent_id", flat=True)),
            "on_parent_failure": job.on_parent_failure,
        }

    def _job(self, pk: int) -> Job:
        try:
            return Job.objects.select_related("created_by", "release").get(pk=pk)
        except Job.DoesNotExist:
            raise CommandError(f"no job with id {pk}") from None

    def print_logs(self, lines: list[JobLog]) -> None:
        """One line per log line: JSON Lines with --json, so following can stream."""
        for line in lines:
            if self.as_json:
                self.write_json(
                    {
                        "id": line.pk,
                        "created_at": line.created_at,
                        "level": line.get_level_display(),
                        "task": line.task_id,
                        "message": line.message,
                    }
                )
            else:
                stamp = line.created_at.strftime("%H:%M:%S")
                self.stdout.write(f"{stamp} {line.get_level_display():<7} {line.message}")

    @staticmethod
    def attempts_text(job: Job) -> str:
        """`attempt 1/3`; past the automatic attempts (a manual retry), say so."""
        if job.attempts <= job.max_attempts:
            return f"attempt {job.attempts}/{job.max_attempts}"
        extra = job.attempts - job.max_attempts
        return (
            f"attempt {job.attempts} ({job.max_attempts} automatic, "
            f"then {extra} manual {'retry' if extra == 1 else 'retries'})"
        )

    # --- actions ---------------------------------------------------------------

    def do_list(self, o: dict) -> None:
        qs = Job.objects.select_related("created_by").order_by("-pk")
        if o["status"]:
            statuses = [s.strip() for s in o["status"].split(",") if s.strip()]
            unknown = set(statuses) - set(JobStatus.values)
            if unknown:
                raise CommandError(
                    f"unknown status {', '.join(sorted(unknown))}; "
                    f"use {', '.join(JobStatus.values)}"
                )
            qs = qs.filter(status__in=statuses)
        if o["job_type"]:
            qs = qs.filter(job_type=o["job_type"])
        if o["release"]:
            qs = qs.filter(release__slug=o["release"])
        if o["owner"]:
            qs = qs.filter(created_by__username=o["owner"])
        if o["tag"]:
            qs = search.filter_tag(qs, o["tag"])
        # One row more than asked for tells whether the list was cut short.
        jobs = list(qs[: o["limit"] + 1])
        more = len(jobs) > o["limit"]
        jobs = jobs[: o["limit"]]
        if more:
            # On stderr, so that --json's stdout stays one JSON document.
            self.stderr.write(
                f"showing the newest {len(jobs)} matching jobs; more match (--limit N shows more)"
            )
        if self.as_json:
            self.write_json([job_json(j) for j in jobs])
            return
        self.stdout.write(f"{'ID':>7}  {'TYPE':<24} {'STATUS':<10} {'PROG':>5}  CREATED")
        for j in jobs:
            self.stdout.write(
                f"{j.pk:>7}  {j.job_type:<24} {j.status:<10} {j.progress:>4}%  "
                f"{j.created_at:%Y-%m-%d %H:%M:%S}"
            )

    def do_status(self, o: dict) -> None:
        job = self._job(o["id"])
        tasks = list(job.tasks.order_by("position"))
        data = self.with_parents(job, job_json(job))
        data["waiting_reason"] = selectors.waiting_reason(job)
        data["tasks"] = [
            {
                "position": t.position,
                "name": t.name,
                "status": t.status,
                "duration_seconds": t.duration_seconds,
            }
            for t in tasks
        ]
        if self.as_json:
            if o["logs"]:
                data["logs"] = [
                    {"id": x.pk, "level": x.get_level_display(), "message": x.message}
                    for x in selectors.log_tail(job.pk, o["tail"])
                ]
            self.write_json(data)
            return
        duration = f"{job.duration_seconds:.1f}s" if job.duration_seconds is not None else "-"
        self.stdout.write(
            f"job #{job.pk} {job.job_type}: {job.status}, {job.progress}% "
            f"({job.progress_done}/{job.progress_total} tasks), duration {duration}, "
            f"{self.attempts_text(job)}"
            + (f", timeout {job.timeout_seconds} s" if job.timeout_seconds else "")
        )
        if data["error"]:
            self.stdout.write(f"error: {data['error']}")
        if data["waiting_reason"]:
            self.stdout.write(f"waiting: {data['waiting_reason']}")
        for t in data["tasks"]:
            d = f"{t['duration_seconds']:.1f}s" if t["duration_seconds"] is not None else "-"
            self.stdout.write(f"  {t['position']:>3}. {t['name']:<30} {t['status']:<10} {d}")
        if o["logs"]:
            self.print_logs(selectors.log_tail(job.pk, o["tail"]))

    def do_logs(self, o: dict) -> None:
        job = self._job(o["id"])
        lines = selectors.log_tail(job.pk, o["tail"])
        self.print_logs(lines)
        if o["follow"]:
            cursor = lines[-1].pk if lines else 0
            self.follow(job.pk, cursor)

    def follow(self, job_id: int, cursor: int, timeout: float = 0) -> str:
        """Print new lines until the job is finished; return its final status."""
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            status = Job.objects.values_list("status", flat=True).get(pk=job_id)
            lines = selectors.log_after(job_id, cursor)
            self.print_logs(lines)
            if lines:
                cursor = lines[-1].pk
            if status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED) and not lines:
                return status
            if deadline and time.monotonic() > deadline:
                raise CommandError(f"job #{job_id} still {status} after {timeout}s")
            if not lines:
                time.sleep(0.2)

    def do_cancel(self, o: dict) -> None:
        job = services.job_cancel(job=self._job(o["id"]), user=self.user, via=VIA)
        verb = "cancel requested" if job.status == JobStatus.RUNNING else job.status
        self.emit(job_json(job), f"job #{job.pk}: {verb}")

    def do_retry(self, o: dict) -> None:
        job = services.job_retry(
            job=self._job(o["id"]), user=self.user, via=VIA, config=o.get("config")
        )
        self.emit(job_json(job), f"job #{job.pk}: {job.status} (retry)")

    def _release(self, ref: str | None):
        if not ref:
            return None
        # The release model through Job's field: jobs imports nothing of the app.
        releases = Job._meta.get_field("release").related_model._default_manager
        query = releases.filter(slug=ref)
        if parse_id(ref) is not None:
            query = query | releases.filter(pk=parse_id(ref))
        release = query.first()
        if release is None:
            raise CommandError(f"no release with slug or id {ref!r}")
        return release

    def do_run(self, o: dict) -> None:
        job = services.job_create(
            job_type=o["job_type"],
            config=o["config"],
            release=self._release(o.get("release")),
            user=self.user,
            priority=o["priority"],
            max_attempts=o["max_attempts"],
            timeout_seconds=o["job_timeout"],
            draft=o["draft"],
            queue=o["queue"],
            unique_key=o["unique_key"],
            tags=o["tag"],
            depends_on=o["after"],
            on_parent_failure=o["on_parent_failure"],
            via=VIA,
        )
        existing = f" (existing, unique key {job.unique_key!r})" if job.existing else ""
        data = self.with_parents(job, job_json(job))
        after = ", after " + ", ".join(f"#{p}" for p in data["depends_on"])
        if not o["wait"]:
            self.emit(
                {**data, "existing": job.existing},
                f"job #{job.pk} {job.job_type}: {job.status}{existing}"
                + (after if data["depends_on"] else ""),
            )
            return
        if not self.as_json:
            self.stdout.write(f"job #{job.pk} {job.job_type}: {job.status}; following its log")
        # With --json: JSON Lines, each log line as it comes, then the finished job.
        status = self.follow(job.pk, 0, timeout=o["timeout"])
        job.refresh_from_db()
        self.emit(job_json(job), f"job #{job.pk}: {status}")
        if status != JobStatus.COMPLETED:
            raise CommandError(
                f"job #{job.pk} ended {status}"
                + (f": {job_json(job)['error']}" if job.error else "")
            )

    def do_cleanup(self, o: dict) -> None:
        summary = services.job_cleanup(
            older_than=timedelta(days=o["older_than"]),
            dry_run=o["dry_run"],
            user=self.user,
            via=VIA,
        )
        verb = "would delete" if summary["dry_run"] else "deleted"
        self.emit(
            summary,
            f"{verb} {summary['jobs']} jobs, {summary['tasks']} tasks, "
            f"{summary['logs']} log lines (finished before {summary['cutoff']})",
        )

    def do_sweep(self, o: dict) -> None:
        counts = services.sweep_stale_jobs()
        self.emit(counts, f"re-queued {counts['requeued']}, failed {counts['failed']}")
