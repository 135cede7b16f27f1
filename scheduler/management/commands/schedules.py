"""`manage.py schedules list|run|enable|disable`: a thin door onto scheduler.services."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.exceptions import JobError
from scheduler import selectors, services
from scheduler.models import Schedule


def _find(ref: str) -> Schedule:
    """A schedule by id or by exact name."""
    query = Schedule.objects.select_related("release", "created_by")
    schedule = query.filter(pk=int(ref)).first() if ref.isdigit() else None
    schedule = schedule or query.filter(name=ref).first()
    if schedule is None:
        raise CommandError(f"No schedule with id or name {ref!r}.")
    return schedule


class Command(BaseCommand):
    help = (
        "List schedules, run one now, or enable/disable one. "
        "Schedules are named by id or exact name."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="Schedules with next run and last status.")
        listing.add_argument("--enabled", action="store_true", help="Only enabled schedules.")
        for name, text in (
            ("run", "Create the schedule's job now (next run does not move)."),
            ("enable", "Enable; the next run is computed from now."),
            ("disable", "Disable; it stops firing at once."),
        ):
            p = sub.add_parser(name, help=text)
            p.add_argument("schedule", help="Schedule id or exact name.")

    def handle(self, *args, **options) -> None:
        action = options["action"]
        try:
            if action == "list":
                self._list(enabled_only=options["enabled"])
                return
            schedule = _find(options["schedule"])
            if action == "run":
                job = services.schedule_run_now(schedule=schedule, via="cli")
                self.stdout.write(f"Created job #{job.pk} ({job.status}) from {schedule.name!r}.")
            else:
                schedule = services.schedule_toggle(schedule=schedule, enabled=action == "enable")
                state = "enabled" if schedule.enabled else "disabled"
                nxt = schedule.next_run_at.isoformat() if schedule.enabled else "-"
                self.stdout.write(f"Schedule {schedule.name!r} {state}; next run {nxt}.")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        except (JobError, PermissionDenied) as exc:
            raise CommandError(str(exc)) from exc

    def _list(self, *, enabled_only: bool) -> None:
        schedules = selectors.schedule_list().order_by("name")
        if enabled_only:
            schedules = schedules.filter(enabled=True)
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
                    s.last_job.status if s.last_job else "-",
                    selectors.schedule_description(s),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())
