"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live_server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_IMG = ROOT / "docs" / "img"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("JOBDECK_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="package", autouse=True)
def fast_passwords_and_sync_orm_beside_playwright() -> Iterator[None]:
    """For this package only: fast password hashing, and ORM calls allowed while
    Playwright's sync API runs its event loop in this thread (the tests' ORM calls
    between browser steps are synchronous and safe). The live server speaks plain
    HTTP through config/testenv.py's defaults."""
    from django.test.utils import override_settings

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser() -> Iterator:
    """One Chromium for the package; Playwright (and its event loop) stop with it,
    so tests after this package can use async_to_sync again."""
    path = chromium_path()
    if not path:
        pytest.fail(
            "Chromium is not installed: apt-get install chromium (./jobdeck test does it), "
            "or set JOBDECK_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(target, name: str, **options) -> Path:
    """Screenshot a page or a locator into test-artifacts/screenshots/. With
    JOBDECK_UPDATE_SCREENSHOTS=1 also refresh docs/img/ (linked from docs/admin.md)
    when it is small enough to commit; a plain test run leaves docs/ untouched."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path), **options)
    if os.environ.get("JOBDECK_UPDATE_SCREENSHOTS") == "1" and path.stat().st_size < 200_000:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / path.name)
    return path
