#!/usr/bin/env python
"""Django's command-line utility for Jobdeck."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (load the settings now)
    except ImproperlyConfigured as exc:
        # A missing or bad environment variable: one line, not a 40-line traceback.
        sys.exit(f"manage.py: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
