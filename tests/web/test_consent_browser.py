"""Electronic consent in a real browser: the phone's consent link at 390 x 844 and the
site's consent page, with axe-core (no violation at all on the participant's pages)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from lumbar.messages import Catalogue
from lumbar.operations import Principal, Trial
from tests.operations.world import World, amended_world, eligible_answers
from tests.web.browser import Served, accessible, phone_check
from tests.web.conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ENGLISH = Catalogue.load()
NAME = "Zoë Exämple"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("consent")
    world = amended_world(f"sqlite:///{folder / 'trial.db'}", folder)
    with Served(folder, world) as application:
        admin = Trial(application.app.state.context, Principal.operator("admin"))
        admin.set_password(PASSWORD, "coord")
        yield application


def _screened(world: World) -> str:
    coord = world.as_("coord")
    number = coord.screen("SEA", eligible_answers(world.protocol)).screening_number
    coord.record_identity(number, name=NAME)
    coord.close()
    return number


def test_a_participant_consents_again_on_a_phone(served: Served, phone: Page) -> None:
    world = served.world
    number = _screened(world)
    coord = world.as_("coord")
    coord.consent(number, "1.0", world.clock.today)
    study_id = coord.enrol(number)
    if world.clock.today < world.protocol.consent.documents[-1].effective:  # type: ignore[union-attr]
        world.clock.advance(31)
    url = served.url + "/consent/" + coord.issue_consent_link(study_id).token
    coord.close()

    phone.goto(url)
    expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("consent.title"))
    phone_check(phone, "the consent page")
    phone.get_by_role("button", name=ENGLISH.text("consent.submit")).tap()
    expect(phone.locator("#error-understood")).to_have_text(ENGLISH.text("consent.problem.answer"))
    phone_check(phone, "the consent page with a question not answered")
    phone.locator('input[name="q_understood"][value="yes"]').locator("xpath=..").tap()
    phone.locator("#typed_name").fill("Somebody Else")
    phone.get_by_role("button", name=ENGLISH.text("consent.submit")).tap()
    expect(phone.locator("#error-typed_name")).to_have_text(ENGLISH.text("consent.problem.name"))
    phone_check(phone, "the consent page with a name that does not match")
    expect(phone.locator('input[name="q_understood"][value="yes"]')).to_be_checked()
    phone.locator("#typed_name").fill("zoe example")
    phone.get_by_role("button", name=ENGLISH.text("consent.submit")).tap()
    expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("consent.thanks.title"))
    phone_check(phone, "the consent thank-you page")
    phone.goto(url)
    expect(phone.locator(".notice")).to_have_text(ENGLISH.text("consent.refused.used"))
    phone_check(phone, "a used consent link's page")
    phone.goto(served.url + "/consent/lmc_" + "A" * 43)
    expect(phone.locator(".notice")).to_have_text(ENGLISH.text("consent.refused.forged"))
    phone_check(phone, "a forged consent link's page")
    verified = world.as_("coord").consents(study_id)
    assert [(c.version, c.method, c.verified) for c in verified][-1] == (
        world.protocol.consent.documents[-1].version,  # type: ignore[union-attr]
        "participant_link",
        True,
    )


def test_the_sites_consent_page_and_the_list_of_who_must_consent_again(
    served: Served, browser: Browser
) -> None:
    world = served.world
    number = _screened(world)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.goto(served.url + "/sign-in")
    tab.get_by_label("User name").fill("coord")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.goto(served.url + f"/participants/{number}/consent")
    accessible(tab, "the consent page with electronic consent")
    for question in world.protocol.consent.current(world.clock.today).questions:  # type: ignore[union-attr]
        tab.locator(f"#q_{question.id}-yes").check()
    tab.get_by_label("The person's full name, typed by them").fill("Nobody")
    tab.get_by_role("button", name="Record electronic consent").click()
    expect(tab.locator("#econsent-typed_name-error")).to_be_visible()
    accessible(tab, "the consent page with a refused name")
    tab.get_by_label("The person's full name, typed by them").fill(NAME)
    tab.get_by_role("button", name="Record electronic consent").click()
    expect(tab.get_by_role("heading", level=2, name="Consent")).to_be_visible()
    accessible(tab, "the participant page with the consent history")
    tab.goto(served.url + "/consent/due")
    accessible(tab, "who must consent again")
    tab.goto(served.url + "/")
    accessible(tab, "the dashboard with the consent count")
    context.close()
