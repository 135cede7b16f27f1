"""Jobdeck's periodic work, registered as django-q2 schedules after every migrate.

Created by code, not by hand: `post_migrate` runs after `migrate` (and after a
test flush), so a fresh install and every upgrade get exactly these rows.
"""

from __future__ import annotations

from django.utils import timezone

PERIODIC = {
    # Recover jobs whose worker died; wake workers for delayed jobs now due.
    "jobdeck.tick": "jobs.runner.tick",
    # Fire every due Jobdeck schedule exactly once.
    "jobdeck.fire_schedules": "scheduler.services.fire_due_schedules",
    # Stalled queues, and deliveries a finishing process could not record.
    "jobdeck.notifications": "notifications.services.periodic_check",
}


def ensure_schedules(**kwargs) -> None:
    from django_q.models import Schedule

    for name, func in PERIODIC.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            },
            create_defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
                "next_run": timezone.now(),
            },
        )
