"""`manage.py workflows run|show|cancel|retry`: graphs of jobs from the shell (jobs.workflows)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from django.core.management.base import CommandError

from jobs import workflows
from jobs.cli import ActionCommand, non_negative_int
from jobs.models import Workflow

VIA = "cli"


class Command(ActionCommand):
    help = (
        "Create a workflow from a JSON spec (docs/workflows.md), show its status, cancel or "
        "retry it. --json (machine-readable output) and --user NAME go before or after the "
        "action."
    )

    def add_actions(self, sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser(
            "run",
            help='create a workflow from FILE ("-": standard input): '
            '{"name": …, "jobs": {"<node>": {<job spec>, "after": ["<node>", …]}}}',
        )
        p.add_argument("file", metavar="FILE")
        for name, text in (
            ("show", "status, progress and each node's job and status"),
            ("cancel", "cancel every pending and running job of the workflow"),
            ("retry", "retry its failed and cancelled jobs (their children come back)"),
        ):
            sub.add_parser(name, help=text).add_argument("id", type=non_negative_int)

    # --- plumbing ------------------------------------------------------------

    def read_spec(self, name: str) -> Any:
        """The JSON document in file `name` ("-": standard input); one line if it is not."""
        try:
            if name == "-":
                text = sys.stdin.read()
            else:
                with open(name, encoding="utf-8") as handle:
                    text = handle.read()
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc.strerror}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"{name}: malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None

    def _workflow(self, pk: int) -> Workflow:
        """Workflow `pk`, if --user may see it (without --user: any)."""
        visible = workflows.visible_workflows(Workflow.objects.all(), self.user)
        workflow = visible.select_related("created_by").filter(pk=pk).first()
        if workflow is None:
            raise CommandError(f"no workflow with id {pk}")
        return workflow

    def show(self, workflow: Workflow) -> None:
        state = workflows.workflow_status(workflow)
        jobs, edges = workflows.graph(workflow)
        node_of = {job.pk: job.workflow_node for job in jobs}
        after: dict[int, list[str]] = {job.pk: [] for job in jobs}
        for parent, child in edges:
            after[child].append(node_of[parent])
        progress = round(100 * state.done / state.total) if state.total else 100
        data: dict[str, Any] = {
            "id": workflow.pk,
            "name": workflow.name,
            "status": state.status,
            "done": state.done,
            "total": state.total,
            "progress": progress,
            "created_by": workflow.created_by.username if workflow.created_by else None,
            "created_at": workflow.created_at,
            "schedule": workflow.schedule_id,
            "counts": state.counts,
            "jobs": {
                job.workflow_node: {
                    "id": job.pk,
                    "job_type": job.job_type,
                    "status": job.status,
                    "after": after[job.pk],
                }
                for job in jobs
            },
        }
        if self.as_json:
            self.write_json(data)
            return
        title = f" {workflow.name}" if workflow.name else ""
        self.stdout.write(
            f"workflow #{workflow.pk}{title}: {state.status}, {progress}% "
            f"({state.done}/{state.total} jobs completed)"
        )
        width = max((len(node) for node in data["jobs"]), default=4)
        for node, job in data["jobs"].items():
            parents = f"  after {', '.join(job['after'])}" if job["after"] else ""
            self.stdout.write(
                f"  {node:<{width}}  #{job['id']:<7} {job['job_type']:<24} "
                f"{job['status']:<10}{parents}".rstrip()
            )

    # --- actions ---------------------------------------------------------------

    def do_run(self, o: dict) -> None:
        spec = self.read_spec(o["file"])
        workflow, ids = workflows.workflow_create(spec=spec, user=self.user, via=VIA)
        title = f" {workflow.name}" if workflow.name else ""
        lines = [f"workflow #{workflow.pk}{title}: {len(ids)} jobs"]
        width = max(len(node) for node in ids)
        lines += [f"  {node:<{width}}  #{pk}" for node, pk in ids.items()]
        self.emit({"id": workflow.pk, "name": workflow.name, "jobs": ids}, "\n".join(lines))

    def do_show(self, o: dict) -> None:
        self.show(self._workflow(o["id"]))

    def do_cancel(self, o: dict) -> None:
        workflow = self._workflow(o["id"])
        acted = workflows.workflow_cancel(workflow=workflow, user=self.user, via=VIA)
        self.acted(workflow, "cancel", acted)

    def do_retry(self, o: dict) -> None:
        workflow = self._workflow(o["id"])
        retried = workflows.workflow_retry(workflow=workflow, user=self.user, via=VIA)
        self.acted(workflow, "retry", retried)

    def acted(self, workflow: Workflow, verb: str, ids: list[int]) -> None:
        """With --json the workflow as `show` prints it; else one line naming the jobs."""
        if self.as_json:
            self.show(workflow)
            return
        done = {"cancel": "cancelled", "retry": "retried"}[verb]
        self.stdout.write(
            f"workflow #{workflow.pk}: {done} {len(ids)} "
            f"{'job' if len(ids) == 1 else 'jobs'} ({', '.join(f'#{i}' for i in ids)})"
        )
