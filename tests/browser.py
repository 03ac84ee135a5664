"""Headless Chromium for the page tests: Debian's package (``make test`` installs it), driven by
Playwright with ``executable_path``; Playwright's own browser download does not work here."""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from harness.server import ROOT

from .needs import unavailable

SCREENSHOTS = ROOT / "runs" / "screenshots"
# Headless as root, with the background services that call Google's hosts switched off.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers' /dev/shm is often 64 MB: too small for the renderer
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("chromium is not on PATH: `make browser` installs Debian's package (as root)")
    return path


@dataclass
class Tab:
    """A page, with every URL it requested and every error its console printed."""

    page: Page
    requested: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str, element: Locator | None = None) -> Path:
        """The whole page, or one element of it, as runs/screenshots/NAME.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if element is None:
            self.page.screenshot(path=str(path), full_page=True)
        else:
            element.screenshot(path=str(path))
        return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's sync API runs its own event loop."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = Tab(context.new_page())
    tab.page.on("request", lambda request: tab.requested.append(request.url))
    tab.page.on("console", lambda line: line.type == "error" and tab.console_errors.append(line.text))
    yield tab
    context.close()
