"""`manage.py schedules list|run|enable|disable|export|import`: a thin door onto
scheduler.services and jobs.exchange."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError

from jobs import exchange
from jobs.cli import ActionCommand, job_json
from jobs.models import Workflow
from scheduler import selectors, services
from scheduler.api.serializers import ScheduleSerializer
from scheduler.models import Schedule

VIA = "cli"


def _find(ref: str) -> Schedule:
    """A schedule by id or by exact name."""
    query = selectors.schedule_list().select_related("release", "created_by")
    schedule = query.filter(pk=int(ref)).first() if ref.isdigit() else None
    schedule = schedule or query.filter(name=ref).first()
    if schedule is None:
        raise CommandError(f"No schedule with id or name {ref!r}.")
    return schedule


class Command(ActionCommand):
    help = (
        "List schedules, run one now, enable/disable one, or export and import schedules "
        "and job templates (and any other kind an app registers). Schedules are named by "
        "id or exact name. --json (the API's shape) and --user NAME go before or after "
        "the action."
    )

    def add_actions(self, sub) -> None:
        listing = sub.add_parser("list", help="Schedules with next run and last status.")
        listing.add_argument("--enabled", action="store_true", help="Only enabled schedules.")
        for name, text in (
            ("run", "Create the schedule's job now (next run does not move)."),
            ("enable", "Enable; the next run is computed from now."),
            ("disable", "Disable; it stops firing at once."),
        ):
            p = sub.add_parser(name, help=text)
            p.add_argument("schedule", help="Schedule id or exact name.")
        export = sub.add_parser(
            "export",
            help="Write schedules and templates (by name) as JSON or YAML; secrets masked.",
        )
        export.add_argument("--format", choices=exchange.FORMATS, default="json")
        export.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
        export.add_argument(
            "--kind",
            action="append",
            metavar="KIND",
            help="only this kind (schedules, templates, …); repeatable",
        )
        export.add_argument(
            "--name", action="append", metavar="NAME", help="only objects of this name; repeatable"
        )
        export.add_argument(
            "--reveal-secrets",
            action="store_true",
            help="secret config fields in clear (needs --user naming a superuser)",
        )
        imp = sub.add_parser(
            "import",
            help="Create or update by name what FILE describes, all or nothing, printing "
            "what changes.",
        )
        imp.add_argument("file", metavar="FILE", help="a JSON or YAML export; - for stdin")
        imp.add_argument("--dry-run", action="store_true", help="show the changes, make none")
        imp.add_argument("--format", choices=exchange.FORMATS, help="default: guessed")

    @staticmethod
    def schedule_json(schedule: Schedule) -> dict:
        return ScheduleSerializer(selectors.schedule_list().get(pk=schedule.pk)).data

    def do_list(self, o: dict) -> None:
        schedules = selectors.schedule_list().order_by("name")
        if o["enabled"]:
            schedules = schedules.filter(enabled=True)
        if self.as_json:
            self.write_json(ScheduleSerializer(schedules, many=True).data)
            return
        rows = [("ID", "NAME", "ENABLED", "NEXT RUN (UTC)", "LAST", "SCHEDULE")]
        for s in schedules:
            rows.append(
                (
                    str(s.pk),
                    s.name,
                    "yes" if s.enabled else "no",
                    s.next_run_at.strftime("%Y-%m-%d %H:%M")
                    if s.next_run_at and s.enabled
                    else "-",
                    s.last_job.status
                    if s.last_job
                    else (
                        f"workflow {getattr(s, 'last_workflow_status', '')}"
                        if s.last_workflow_id
                        else "-"
                    ),
                    selectors.schedule_description(s),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())

    def do_run(self, o: dict) -> None:
        schedule = _find(o["schedule"])
        made = services.schedule_run_now(schedule=schedule, user=self.user, via=VIA)
        if isinstance(made, Workflow):
            ids = dict(made.jobs.order_by("pk").values_list("workflow_node", "pk"))
            self.emit(
                {"workflow": made.pk, "name": made.name, "jobs": ids},
                f"Created workflow #{made.pk} ({len(ids)} jobs) from {schedule.name!r}.",
            )
            return
        self.emit(job_json(made), f"Created job #{made.pk} ({made.status}) from {schedule.name!r}.")

    def do_enable(self, o: dict) -> None:
        self._toggle(o, enabled=True)

    def do_disable(self, o: dict) -> None:
        self._toggle(o, enabled=False)

    def _toggle(self, o: dict, *, enabled: bool) -> None:
        schedule = services.schedule_toggle(
            schedule=_find(o["schedule"]), enabled=enabled, user=self.user, via=VIA
        )
        state = "enabled" if schedule.enabled else "disabled"
        nxt = schedule.next_run_at.isoformat() if schedule.enabled and schedule.next_run_at else "-"
        self.emit(
            self.schedule_json(schedule), f"Schedule {schedule.name!r} {state}; next run {nxt}."
        )

    def do_export(self, o: dict) -> None:
        doc = exchange.export_document(
            user=self.user,
            kind_names=o["kind"],
            names=o["name"],
            reveal_secrets=o["reveal_secrets"],
        )
        if self.as_json and not o["output"]:
            self.write_json(doc)  # one line, like every --json output
            return
        text = exchange.dump(doc, o["format"])
        if o["output"]:
            Path(o["output"]).write_text(text)
            counts = ", ".join(f"{len(doc[k.name])} {k.name}" for k in exchange.kinds(o["kind"]))
            self.stderr.write(f"Exported {counts} to {o['output']}.")
        else:
            self.stdout.write(text, ending="")

    def do_import(self, o: dict) -> None:
        try:
            text = sys.stdin.read() if o["file"] == "-" else Path(o["file"]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {o['file']}: {exc}") from None
        try:
            result = exchange.import_document(
                exchange.parse(text, o["format"]), user=self.user, via=VIA, dry_run=o["dry_run"]
            )
        except exchange.ImportRefused as exc:
            raise CommandError(
                "import refused, nothing changed: " + "; ".join(exc.summary())
            ) from None
        self.emit(result.as_dict(), "\n".join(result.lines()))
