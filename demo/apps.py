from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for a first start (`manage.py jobdeck_demo`): jobs, a release and a
    schedule. Above jobs, releases and scheduler, which know nothing of it."""

    name = "demo"
