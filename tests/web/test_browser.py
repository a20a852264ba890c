"""The staff pages in a real browser: each role's day clicked through in headless Chromium.

The application runs for real (uvicorn on 127.0.0.1, tests/web/browser.py) and Playwright
drives the system's Chromium, so what is tested is what a member of staff gets: the
cookies, the redirects, the back button, the keyboard. Every page reached is checked
with axe-core (no serious or critical violation).

Each role's day is one function taking the tab and the served application: add the
pages of a new area to the day of the role that uses them. With LUMBAR_SCREENSHOTS set,
the days keep screenshots of the pages the README shows (docs/screenshots/).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect, sync_playwright

from lumbar.operations import Principal, Trial
from tests.web.browser import Served, accessible, chromium, screenshot
from tests.web.conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]

WRONG = "the user name, the password or the code is wrong, or the account is not active"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served trial for the module: two randomized participants and one enrolled at
    Seattle, one randomized in New York; passwords for the staff the days use."""
    with Served(tmp_path_factory.mktemp("served")) as application:
        world = application.world
        application.randomized += [world.randomized(), world.randomized()]
        world.enrolled()
        world.randomized("NYC", coordinator="coord_nyc")
        admin = Trial(application.app.state.context, Principal.operator("admin"))
        for username in ("coord", "assessor"):
            admin.set_password(PASSWORD, username)
        yield application


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) in a 1280 x 800 window; fails the test on any
    script error, console error or failed request (a CSP refusal among them)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.extend(_console_error(message)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.on("response", lambda response: errors.extend(_resource_refused(response)))
    yield page
    context.close()
    assert errors == []


def _console_error(message: ConsoleMessage) -> list[str]:
    # An error page's own status (404, 403) is logged as a failed load: expected. A
    # stylesheet or image that fails is caught by _resource_refused instead.
    if message.type != "error" or message.text.startswith("Failed to load resource"):
        return []
    return [message.text]


def _resource_refused(response: Response) -> list[str]:
    if response.request.resource_type == "document" or response.status < 400:
        return []
    return [f"{response.status}: {response.url}"]


# ---------------------------------------------------------------------- steps of a day


def sign_in(tab: Page, served: Served, username: str, code: str = "") -> None:
    """Type the credentials into the sign-in page and send them."""
    tab.goto(served.url + "/sign-in")
    tab.get_by_label("User name").fill(username)
    tab.get_by_label("Password").fill(PASSWORD)
    if code:
        tab.get_by_label("Code from your authenticator app").fill(code)
    tab.get_by_role("button", name="Sign in").click()


def sign_out(tab: Page) -> None:
    tab.get_by_role("button", name="Sign out").click()
    expect(tab.get_by_role("status")).to_have_text("You are signed out.")


def second_factor(served: Served, username: str) -> pyotp.TOTP:
    """Enrol and confirm ``username``'s authenticator app through the operations, as they
    would; the next code is then due (a code is accepted once)."""
    world = served.world
    trial = Trial(served.app.state.context, Principal.operator(username))
    totp = pyotp.TOTP(trial.enrol_totp().secret)
    trial.confirm_totp(totp.at(world.clock.now))
    world.clock.now += dt.timedelta(seconds=30)
    return totp


def open_participant(tab: Page, study_id: str) -> None:
    """Follow the participant list's link on the row of ``study_id``."""
    row = tab.get_by_role("row").filter(has=tab.get_by_role("cell", name=study_id, exact=True))
    row.get_by_role("link").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text(study_id)


def arms_shown(served: Served, html: str) -> list[str]:
    """The protocol's arm ids and labels found in a page, beyond the trial's title (which
    names every arm, and so reveals no one's)."""
    text = html.replace(served.world.protocol.trial.title, "").casefold()
    return [
        name
        for arm in served.world.protocol.arms
        for name in (arm.id, arm.label)
        if re.search(rf"\b{re.escape(name.casefold())}\b", text)
    ]


# ---------------------------------------------------------------------- the days


def coordinator_day(tab: Page, served: Served) -> None:
    """A coordinator with an authenticator app: sign in, the dashboard, the participants,
    one participant, the error pages, sign out."""
    totp = second_factor(served, "coord")
    sign_in(tab, served, "coord", totp.at(served.world.clock.now))
    expect(tab.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(tab.locator(".who")).to_contain_text("coord (coordinator)")
    expect(tab.get_by_role("complementary", name="Synthetic data")).to_contain_text(
        "SYNTHETIC DATA"
    )
    accessible(tab, "the dashboard")
    screenshot(tab, "dashboard")

    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Participants").click()
    expect(tab.get_by_role("heading", level=1)).to_have_text("Participants")
    accessible(tab, "the participant list")
    study_id = served.randomized[0]
    open_participant(tab, study_id)
    expect(tab.get_by_role("heading", level=1)).to_have_text(study_id)
    accessible(tab, "a participant's page")
    screenshot(tab, "participant")

    tab.goto(served.url + "/participants/NYC-0001")  # another site's: as if it did not exist
    expect(tab.get_by_role("heading", level=1)).to_have_text("Not found")
    accessible(tab, "the 404 page")
    tab.goto(served.url + "/")
    tab.locator("header input[name=csrf]").evaluate("field => field.value = 'forged'")
    tab.get_by_role("button", name="Sign out").click()  # a form that is not this session's
    expect(tab.get_by_role("heading", level=1)).to_have_text("Form expired")
    accessible(tab, "the 403 page")

    tab.goto(served.url + "/")
    sign_out(tab)
    tab.go_back()  # no-store: the browser asks again, and is sent to sign in
    expect(tab.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert "Dashboard" not in tab.content()


def assessor_day(tab: Page, served: Served) -> None:
    """A blinded outcome assessor: no arm on any page they reach."""
    sign_in(tab, served, "assessor")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Dashboard")
    assert arms_shown(served, tab.content()) == [], "the dashboard"
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Participants").click()
    assert arms_shown(served, tab.content()) == [], "the participant list"
    for study_id in served.randomized:
        open_participant(tab, study_id)
        expect(tab.get_by_role("heading", level=1)).to_have_text(study_id)
        assert arms_shown(served, tab.content()) == [], study_id
        accessible(tab, "a participant's page, blinded")
        tab.go_back()
    sign_out(tab)


# ---------------------------------------------------------------------- tests


def test_a_coordinator_signs_in_with_a_code_and_walks_the_pages(tab: Page, served: Served) -> None:
    coordinator_day(tab, served)


def test_a_blinded_assessor_sees_no_arm_anywhere(tab: Page, served: Served) -> None:
    assessor_day(tab, served)


def test_a_wrong_password_shows_the_message_and_stays_signed_out(tab: Page, served: Served) -> None:
    tab.goto(served.url + "/sign-in")
    accessible(tab, "the sign-in page")
    screenshot(tab, "sign-in")
    # The check can fail: the same page without its labels is refused, naming the rule.
    tab.locator("label").evaluate_all("labels => labels.forEach(label => label.remove())")
    with pytest.raises(AssertionError, match=r"label \(critical\)"):
        accessible(tab, "the sign-in page without labels")
    tab.reload()
    tab.get_by_label("User name").fill("assessor")
    tab.get_by_label("Password").fill("not the password at all")
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("alert")).to_contain_text(WRONG)
    accessible(tab, "the sign-in page with its message")
    tab.goto(served.url + "/")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_the_sign_in_form_works_with_the_keyboard_alone(tab: Page, served: Served) -> None:
    tab.goto(served.url + "/sign-in")
    assert tab.evaluate("document.activeElement.id") == "username"  # autofocus
    tab.keyboard.type("assessor")
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.id") == "password"
    tab.keyboard.type(PASSWORD)
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Dashboard")
    assert tab.url == served.url + "/"


def test_the_skip_link_is_the_first_stop_and_leads_to_the_content(
    tab: Page, served: Served
) -> None:
    sign_in(tab, served, "assessor")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Dashboard")
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.textContent") == "Skip to the content"
    tab.keyboard.press("Enter")
    assert tab.url.endswith("#main")
