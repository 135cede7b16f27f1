"""With production settings, `manage.py check --deploy` reports nothing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.support.cluster import ROOT


def test_check_deploy_with_production_settings_reports_no_issues():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_", "SESSION_", "CSRF_", "JOBDECK_"))
    }
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="jobdeck.example.com",
        CSRF_TRUSTED_ORIGINS="https://jobdeck.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
