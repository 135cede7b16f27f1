"""Create the demo admin account and a little demo data (idempotent)."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from jobs import services
from jobs.models import Job


class Command(BaseCommand):
    help = (
        "Create a superuser (JOBDECK_ADMIN_USER / JOBDECK_ADMIN_PASSWORD, default admin/admin) "
        "and, on an empty database, a few demo jobs."
    )

    def handle(self, *args, **options) -> None:
        username = os.environ.get("JOBDECK_ADMIN_USER", "admin")
        password = os.environ.get("JOBDECK_ADMIN_PASSWORD", "admin")
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username, f"{username}@example.com", password)
            self.stdout.write(f"created superuser {username!r} with password {password!r}")
        else:
            self.stdout.write(f"superuser {username!r} exists (password unchanged)")
        if Job.objects.exists():
            return
        with transaction.atomic():
            self.demo_data(user)
        self.stdout.write("loaded demo data")

    def demo_data(self, user) -> None:
        services.job_create(
            job_type="demo.steps", config={"steps": 5, "delay": 2}, user=user, via="cli"
        )
        services.job_create(
            job_type="demo.steps",
            config={"steps": 5, "delay": 1, "fail_at": 3},
            user=user,
            via="cli",
        )
        services.job_create(
            job_type="demo.steps", config={"steps": 3, "delay": 1}, user=user, draft=True
        )
