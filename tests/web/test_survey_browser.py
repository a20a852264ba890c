"""A participant's survey link on a phone, in a real browser (headless Chromium).

The participant's pages must be usable by anyone on a phone: a 390 x 844 viewport, taps
on large targets, no script, and axe-core reporting no violation at all (of any impact)
on every page they reach; a form can be filled in and sent with the keyboard alone.
With LUMBAR_SCREENSHOTS set, the phone's screenshot for the README is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from lumbar.instruments import INSTRUMENTS
from lumbar.messages import Catalogue
from tests.operations.world import answers_for, rdq_answers
from tests.web.browser import Served, by_keyboard, phone_check, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ENGLISH = Catalogue.load()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with Served(tmp_path_factory.mktemp("survey")) as application:
        yield application


def _link(served: Served) -> str:
    """A new participant's week-10 link, with the clock in its window."""
    world = served.world
    study_id = world.randomized()
    coord = world.as_("coord")
    window = next(s for s in coord.schedule(study_id) if s.visit == "week_10")
    if world.clock.today < window.opens:
        world.clock.advance((window.target - world.clock.today).days)
    return served.url + "/survey/" + coord.issue_survey_token(study_id, "week_10").token


def _answers(instrument: str) -> dict[str, Any]:
    return rdq_answers(4) if instrument == "rdq" else answers_for(instrument, 1)


def _tap_answers(tab: Page, instrument: str) -> None:
    """Answer a screen as a finger would: a tap on an option, digits in a number box."""
    definition = INSTRUMENTS.get(instrument)
    for item in definition.items:
        value = _answers(instrument).get(item.id)
        if value is None:
            continue
        radio = tab.locator(f'input[type="radio"][name="answer_{item.id}"][value="{value}"]')
        if radio.count():
            radio.locator("xpath=..").tap()  # the label: the whole option is the target
            expect(radio).to_be_checked()
        else:
            tab.locator(f"#answer_{item.id}").fill(str(value))


def test_a_participant_completes_a_follow_up_on_a_phone(served: Served, phone: Page) -> None:
    url = _link(served)
    phone.goto(url)
    expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("start.title"))
    expect(phone.locator(".synthetic")).to_have_text(ENGLISH.text("synthetic"))  # a demo trial
    phone_check(phone, "the survey's start page")
    phone.get_by_role("link", name=ENGLISH.text("start.begin")).tap()
    instruments = served.world.protocol.visit("week_10").instruments
    for number, instrument in enumerate(instruments, start=1):
        expect(phone.locator(".progress")).to_have_text(
            ENGLISH.text("progress", number=number, total=len(instruments))
        )
        phone_check(phone, f"the screen of {instrument}")
        if instrument == "bothersomeness":
            # A number out of range first: shown at the item, then corrected.
            phone.locator('input[value="3"]').locator("xpath=..").tap()
            screenshot(phone, "phone-survey")
        if instrument == "disability_days":
            phone.locator("#answer_restricted_days").fill("40")
            phone.locator("#answer_bed_days").fill("1")
            phone.get_by_role("button", name=ENGLISH.text("form.save")).tap()
            expect(phone.locator("#error-restricted_days")).to_have_text(
                ENGLISH.text("form.item_problem")
            )
            phone_check(phone, "a screen with an answer refused at its item")
        _tap_answers(phone, instrument)
        phone.get_by_role("button", name=ENGLISH.text("form.save")).tap()
    expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("review.title"))
    phone_check(phone, "the review page")
    phone.get_by_role("button", name=ENGLISH.text("review.send")).tap()
    expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("thanks.title"))
    phone_check(phone, "the thank-you page")
    phone.goto(url)
    expect(phone.locator(".notice")).to_have_text(ENGLISH.text("refused.used"))
    phone_check(phone, "a used link's page")
    phone.goto(served.url + "/survey/lms_" + "A" * 43)
    phone_check(phone, "a forged link's page")


def test_a_participant_answers_a_screen_with_the_keyboard_alone(
    served: Served, phone: Page
) -> None:
    url = _link(served)
    phone.goto(url + "/medication_use")
    wanted = {"answer_any_medication": "1", "answer_non_opioid_analgesic": "1"}
    wanted |= {f"answer_{item}": "0" for item in ("opioid", "muscle_relaxant", "other_medication")}
    definition = INSTRUMENTS.get("medication_use")
    assert {f"answer_{item.id}" for item in definition.items} == set(wanted)
    by_keyboard(phone, wanted, ENGLISH.text("form.save"))
    expect(phone).to_have_url(url + "/rdq")  # the first screen not answered yet
    phone.goto(url + "/review")
    expect(phone.get_by_text(ENGLISH.text("review.missing")).first).to_be_visible()
    assert phone.locator("dd").count() == len(definition.items)
