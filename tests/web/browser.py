"""The staff web application served for real, and a headless Chromium to walk it.

:class:`Served` starts the application with uvicorn in a background thread, on a free port
of 127.0.0.1, over the world of tests/operations (a SQLite trial is enough for this tier:
the pages are the same on both backends, and tests/web/ covers PostgreSQL in-process).
:func:`chromium` finds the browser the way tests/report/test_browser.py does
(scripts/ensure-chromium.sh installs it); under CI=true a missing browser fails the run
instead of skipping it. :func:`accessible` runs axe-core on a page, and
:func:`screenshot` keeps a PNG when LUMBAR_SCREENSHOTS names a folder. :func:`phone_tab`
opens a phone-sized tab for a participant's pages (survey, session-rating and consent
links), and :func:`phone_check` holds such a page to axe-core at every impact and to the
phone's width.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, ViewportSize

from lumbar.web.app import create_app
from tests.operations.world import World, build_world
from tests.web.conftest import CHEAP

__all__ = [
    "PHONE",
    "SCREENSHOTS",
    "Served",
    "accessible",
    "by_keyboard",
    "chromium",
    "console_error",
    "phone_check",
    "phone_tab",
    "screenshot",
]

PHONE: ViewportSize = {"width": 390, "height": 844}
"""The viewport of a participant's phone."""

SCREENSHOTS = "LUMBAR_SCREENSHOTS"
"""The environment variable naming a folder for the pages' screenshots (none are kept
without it); ``docs/screenshots/`` holds the ones the README shows."""

BLOCKING = ("serious", "critical")
"""axe-core's impacts a page may not have. The pages have no moderate or minor ones either
(the last, "region", was fixed by making the synthetic banner an aside), but a new page's
moderate finding is left to review rather than failing the run."""


def chromium() -> str:
    """The path of a Chromium to drive: LUMBAR_CHROMIUM, else one on PATH."""
    for candidate in (
        os.environ.get("LUMBAR_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    message = "no Chromium (scripts/ensure-chromium.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; the browser tier may not be skipped in CI")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Served:
    """The application over a fresh test world, served by uvicorn until the block ends.

    ::

        with Served(tmp_path) as served:
            tab.goto(served.url + "/sign-in")
    """

    def __init__(self, folder: Path, world: World | None = None):
        # Synthetic, as the trial of the screenshots must say (and its banner is tested).
        self.world: World = world or build_world(
            f"sqlite:///{folder / 'trial.db'}", folder, synthetic=True
        )
        self.app = create_app(
            self.world.url,
            key_file=self.world.key_file,
            clock=self.world.clock,
            password_hasher=CHEAP,
            consent_documents=self.world.consent_documents,
        )
        self.randomized: list[str] = []
        """Study ids of the participants a test randomized, for the days to open."""
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> Served:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


def accessible(tab: Page, what: str, *, every_impact: bool = False) -> None:
    """Fail when axe-core finds a serious or critical violation on the page (any violation
    at all with ``every_impact``, as for a participant's pages), naming each rule and the
    elements it found."""
    results = Axe().run(tab)
    found = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + "; ".join(", ".join(node["target"]) for node in violation["nodes"])
        for violation in results.response["violations"]
        if every_impact or violation["impact"] in BLOCKING
    ]
    assert not found, f"{what} ({tab.url}) is not accessible:\n" + "\n".join(found)


def screenshot(tab: Page, name: str) -> Path | None:
    """Keep the page as ``name``.png in LUMBAR_SCREENSHOTS, when it names a folder."""
    folder = os.environ.get(SCREENSHOTS)
    if not folder:
        return None
    path = Path(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(path), full_page=True)
    return path


def by_keyboard(tab: Page, wanted: dict[str, str], submit: str, presses: int = 300) -> None:
    """Fill in a form and send it with the keyboard alone, as someone who uses no mouse.

    Tab moves the focus on from wherever it is; at each field named in ``wanted`` (by its
    ``name``) the keys a person would press are pressed: arrow keys through a radio group
    or a closed select until the wanted value is chosen, Space on a checkbox to tick,
    typing into a text box (a date typed as its digits, month first, in en-US). Enter on
    the button named ``submit`` sends the form, once every wanted field was reached: a
    field the Tab order skips fails the test. The DOM is only read, to know which key to
    press next.
    """
    done: set[str] = set()
    for press in range(presses):
        if press:  # the field focused already (autofocus) is the first stop
            tab.keyboard.press("Tab")
        field = tab.evaluate(_FOCUSED)
        if field["tag"] == "BUTTON" and field["text"].strip() == submit:
            assert done == set(wanted), f"not reached with Tab: {sorted(set(wanted) - done)}"
            tab.keyboard.press("Enter")
            return
        name = field["name"]
        if name not in wanted or name in done:
            continue
        want = wanted[name]
        if field["type"] == "radio" or field["tag"] == "SELECT":
            for _ in range(40):
                field = tab.evaluate(_FOCUSED)
                if field["value"] == want and (field["type"] != "radio" or field["checked"]):
                    break
                tab.keyboard.press("ArrowDown")
        elif field["type"] == "checkbox":
            if bool(want) != field["checked"]:
                tab.keyboard.press("Space")
        elif field["type"] == "date":
            if field["value"] != want:
                year, month, day = want.split("-")
                tab.keyboard.type(month + day + year)
        elif field["value"] != want:
            tab.keyboard.press("Control+A")
            tab.keyboard.type(want)
        field = tab.evaluate(_FOCUSED)
        if field["type"] == "checkbox":
            assert field["checked"] == bool(want), name
        else:
            assert field["value"] == want, f"{name}: {field['value']!r}, not {want!r}"
        done.add(name)
    raise AssertionError(f"no button {submit!r} reached in {presses} presses of Tab")


_FOCUSED = """() => {
  const field = document.activeElement;
  return {tag: field.tagName, type: field.type || "", name: field.name || "",
          text: field.textContent || "", value: field.value || "", checked: !!field.checked};
}"""


@contextmanager
def phone_tab(browser: Browser) -> Iterator[Page]:
    """A phone-sized tab (a participant's pages have no script: tests/web/test_survey.py
    checks it); fails the test on any failed request or console error (a CSP refusal among
    them) once the tab is closed."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.extend(console_error(message.type, message.text)))
    tab.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    yield tab
    context.close()
    assert errors == []


def console_error(kind: str, text: str) -> list[str]:
    """The console message as an error of the page, if it is one."""
    # A page's own status (a refused link's 410, a refused answer's 422) is logged as a
    # failed load: expected. A stylesheet that fails is a failed request instead.
    if kind != "error" or text.startswith("Failed to load resource"):
        return []
    return [text]


def phone_check(tab: Page, what: str) -> None:
    """A participant's page: no axe-core violation of any impact, nothing wider than the
    phone."""
    accessible(tab, what, every_impact=True)
    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], what
