"""The report opened in a real browser (Playwright driving the system's headless Chromium):
it renders without errors, every contents link lands on its section, every figure is drawn,
and the synthetic banner stays on screen wherever the reader scrolls.

Chromium comes from scripts/ensure-chromium.sh (`make test` runs it), or LUMBAR_CHROMIUM.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from lumbar.demo import DemoResult

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _chromium() -> str:
    for candidate in (
        os.environ.get("LUMBAR_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("no Chromium (scripts/ensure-chromium.sh installs it)")


@pytest.fixture
def page(demo: DemoResult) -> Iterator[tuple[Page, list[str]]]:
    """The demo's report in a 1400 x 900 window, and the errors the page raised."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            tab.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
            tab.goto(demo.report.html.resolve().as_uri())
            yield tab, errors
        finally:
            browser.close()


def test_the_report_renders_and_navigates(page: tuple[Page, list[str]], tmp_path: Path) -> None:
    tab, errors = page
    assert tab.title().startswith("[SYNTHETIC]")
    banner = tab.locator("#synthetic-banner")
    assert banner.is_visible()
    links = tab.locator("nav a")
    assert links.count() >= 12
    for index in range(links.count()):
        link = links.nth(index)
        target = str(link.get_attribute("href"))
        assert target.startswith("#"), target
        link.click()
        section = tab.locator(target)
        assert section.is_visible(), target
        top = section.bounding_box()
        # The banner is sticky: whatever the reader scrolls to, the page says synthetic,
        # and the section's heading lands just below it, not hidden under it.
        box = banner.bounding_box()
        assert top is not None
        assert box is not None
        assert box["y"] == 0
        assert box["height"] - 1 <= top["y"] < 900, f"{target} is not in view below the banner"
    figures = tab.locator("figure svg")
    assert figures.count() >= 10
    for index in range(figures.count()):
        box = figures.nth(index).bounding_box()
        assert box is not None
        assert box["width"] > 200
        assert box["height"] > 100
    tab.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert (tmp_path / "report.png").stat().st_size > 20_000
    assert errors == []
