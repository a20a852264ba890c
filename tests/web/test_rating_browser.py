"""A participant's rating before a session on a phone, in a real browser (headless
Chromium): a 390 x 844 viewport, taps on large targets, no script, and axe-core reporting
no violation at all (of any impact) on every page of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from lumbar.messages import Catalogue
from lumbar.operations import Principal, Trial
from tests.operations.test_session_ratings import log, treated
from tests.web.browser import Served, accessible, by_keyboard, phone_check, screenshot
from tests.web.conftest import PASSWORD
from tests.web.test_browser import sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ENGLISH = Catalogue.load()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("rating")) as application:
        yield application


def _link(served: Served) -> tuple[str, str]:
    study_id = treated(served.world)
    token = served.world.as_("ther").issue_rating_link(study_id).token
    return study_id, f"{served.url}/rate/{token}"


def _tap(tab: Page, instrument: str, value: int) -> None:
    radio = tab.locator(f'input[type="radio"][name="rating_{instrument}"][value="{value}"]')
    radio.locator("xpath=..").tap()  # the label: the whole option is the target
    expect(radio).to_be_checked()


def test_a_participant_rates_before_a_session_on_a_phone(served: Served, phone: Page) -> None:
    world = served.world
    study_id, url = _link(served)
    phone.goto(url)
    expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("rating.title"))
    expect(phone.locator(".synthetic")).to_have_text(ENGLISH.text("synthetic"))
    phone_check(phone, "the rating page")
    for target in phone.locator(".option").all():  # large tap targets
        box = target.bounding_box()
        assert box is not None
        assert box["height"] >= 44
        assert box["width"] >= 44
    phone.get_by_role("button", name=ENGLISH.text("rating.send")).tap()
    expect(phone.locator("#problems")).to_be_visible()  # nothing chosen: refused
    phone_check(phone, "the rating page with a refusal")
    _tap(phone, "bothersomeness", 7)
    _tap(phone, "pain_intensity", 5)
    screenshot(phone, "phone-session-rating")
    phone.get_by_role("button", name=ENGLISH.text("rating.send")).tap()
    expect(phone.locator(".notice")).to_have_text(
        ENGLISH.text("rating.given", day=world.clock.today.isoformat())
    )
    phone_check(phone, "the rating page after rating")
    (given,) = world.as_("ther").given_ratings(study_id)
    assert dict(given.ratings) == {"bothersomeness": 7, "pain_intensity": 5}

    log(world, study_id, None)
    phone.goto(url)
    expect(phone.locator(".notice")).to_have_text(ENGLISH.text("rating.logged"))
    phone_check(phone, "the rating page once the session is logged")
    phone.goto(served.url + "/rate/lmr_" + "A" * 43)
    expect(phone.locator(".notice")).to_have_text(ENGLISH.text("rating.refused.forged"))
    phone_check(phone, "a forged rating link's page")


def test_a_participant_rates_with_the_keyboard_alone(served: Served, phone: Page) -> None:
    study_id, url = _link(served)
    phone.goto(url)
    wanted = {"rating_bothersomeness": "4", "rating_pain_intensity": "3"}
    by_keyboard(phone, wanted, ENGLISH.text("rating.send"))
    expect(phone.locator(".notice")).to_be_visible()
    (given,) = served.world.as_("ther").given_ratings(study_id)
    assert dict(given.ratings) == {"bothersomeness": 4, "pain_intensity": 3}


def test_a_therapist_issues_the_link_on_the_sessions_page_and_the_phone_opens_it(
    served: Served, browser: Browser, phone: Page
) -> None:
    world = served.world
    study_id = treated(world)
    Trial(served.app.state.context, Principal.operator("admin")).set_password(PASSWORD, "ther")
    context = browser.new_context()
    staff = context.new_page()
    try:
        sign_in(staff, served, "ther")
        staff.goto(f"{served.url}/participants/{study_id}/sessions")
        accessible(staff, "the sessions page with the ratings section")
        staff.get_by_role("button", name="Issue a session-rating link").click()
        expect(staff.get_by_role("heading", level=1)).to_have_text(
            f"Session-rating link: {study_id}"
        )
        accessible(staff, "the page showing a new session-rating link")
        address = staff.locator("code.secret").inner_text()
    finally:
        context.close()
    phone.goto(address)
    expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("rating.title"))
