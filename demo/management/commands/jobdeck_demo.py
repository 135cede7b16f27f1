"""Create the demo admin account and a little demo data (idempotent)."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import transaction

from jobs import services
from jobs.cli import quiet_info_logging
from jobs.models import Job
from releases import services as release_services
from scheduler import services as schedule_services


class Command(BaseCommand):
    help = (
        "Create a superuser (JOBDECK_ADMIN_USER / JOBDECK_ADMIN_PASSWORD, default admin/admin) "
        "and, on an empty database, a few demo jobs."
    )

    def handle(self, *args, **options) -> None:
        with quiet_info_logging(options["verbosity"]):
            self.create(options)

    def create(self, options: dict) -> None:
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
        release = release_services.release_create(
            slug="website", name="Website", description="The public site.", user=user
        )
        for number, body in enumerate((b"<h1>Hello</h1>\n", b"<h1>Hello again</h1>\n"), 1):
            release_services.version_create(
                release=release,
                files=[ContentFile(body, name="index.html"), ContentFile(b"Demo\n", name="README")],
                paths=["index.html", "README"],
                comment=f"demo version {number}",
                user=user,
            )
        release_services.release_apply(release=release, number=2, user=user, via="cli")
        schedule_services.schedule_create(
            user=user,
            name="Nightly demo",
            job_type="demo.steps",
            config={"steps": 3, "delay": 1},
            kind="daily",
            time="02:30",
            timezone="Europe/Paris",
        )
