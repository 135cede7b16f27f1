"""Helpers of the admin tests."""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.test import Client

from jobs.models import Job


def grant(user, *codenames: str):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # drop the permission cache


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def action(client: Client, name: str, jobs: list[Job], **extra: str):
    return client.post(
        "/admin/jobs/job/",
        {"action": name, "index": 0, "_selected_action": [j.pk for j in jobs], **extra},
        follow=True,
    )


def texts(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def status_of(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)
