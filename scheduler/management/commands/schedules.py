"""`manage.py schedules list|run|enable|disable`: a thin door onto scheduler.services."""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.cli import ActionCommand, job_json
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
        "List schedules, run one now, or enable/disable one. Schedules are named by id or "
        "exact name. --json (the API's schedule shape) and --user NAME go before or after "
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
                    s.last_job.status if s.last_job else "-",
                    selectors.schedule_description(s),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())

    def do_run(self, o: dict) -> None:
        schedule = _find(o["schedule"])
        job = services.schedule_run_now(schedule=schedule, user=self.user, via=VIA)
        self.emit(job_json(job), f"Created job #{job.pk} ({job.status}) from {schedule.name!r}.")

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
