"""The report opened in a real browser (headless Chromium): it renders, every section and
figure is there, and the synthetic banner is the first thing a reader sees.

Chromium comes from scripts/ensure-chromium.sh (`make test` runs it), or LUMBAR_CHROMIUM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from lumbar.demo import DemoResult

pytestmark = [pytest.mark.integration, pytest.mark.browser]

WIDTH, HEIGHT = 1400, 1800
BANNER_BACKGROUND = np.array([0xFD, 0xE8, 0xE6]) / 255  # --warn-bg in report.html.j2


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


def _run(*arguments: str, cwd: Path) -> str:
    browser = _chromium()
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={cwd / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_report_renders_in_chromium(demo: DemoResult, tmp_path: Path) -> None:
    page = demo.report.html.resolve().as_uri()
    dom = _run("--dump-dom", page, cwd=tmp_path)
    assert "<title>[SYNTHETIC]" in dom
    for section in ("consort", "baseline", "outcome-rdq_total", "responders-rdq_total"):
        assert f'<section id="{section}">' in dom
    assert dom.count("<svg") >= 10

    shot = tmp_path / "report.png"
    _run(f"--screenshot={shot}", page, cwd=tmp_path)
    pixels = image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    # Not a blank page: text, tables and figures give the screenshot contrast.
    assert pixels.std() > 0.05
    # The synthetic banner runs across the top of the page, in its warning colour.
    top = pixels[:30]
    banner = np.abs(top - BANNER_BACKGROUND).max(axis=-1) < 0.02
    assert banner.mean() > 0.5
    below = pixels[200:]
    assert (np.abs(below - BANNER_BACKGROUND).max(axis=-1) < 0.02).mean() < 0.05
