"""The follow-up pages in a real browser: the follow-up dashboard (blinded and not), a
participant's survey links and messages, a link issued and shown once, and one revoked
after asking. Every page is checked with axe-core; with LUMBAR_SCREENSHOTS set the
follow-up dashboard is kept as docs/screenshots/follow-up.png."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from lumbar.operations import Principal, Trial
from lumbar.operations.transports import FileTransport
from tests.operations.world import answers_for, rdq_answers
from tests.web.browser import Served, accessible, screenshot
from tests.web.conftest import PASSWORD
from tests.web.test_browser import blinded_text_shown, heading, sign_in, sign_out, tab

pytestmark = [pytest.mark.integration, pytest.mark.browser]

__all__ = ["tab"]  # the browser tab fixture of the staff pages' tests


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Six participants at Seattle and three in New York randomized on day 0; on day 70
    three of Seattle's and one of New York's answer week 10; on day 86 (five days before
    week 10's window closes) the worker sends what is due, to the two who gave an address."""
    folder = tmp_path_factory.mktemp("follow-up")
    with Served(folder) as application:
        world = application.world
        seattle = [world.randomized("SEA") for _ in range(6)]
        new_york = [world.randomized("NYC", coordinator="coord_nyc") for _ in range(3)]
        application.randomized += seattle + new_york
        world.clock.advance(70)
        for study_id in (*seattle[:3], new_york[0]):
            trial = world.as_("coord" if study_id in seattle else "coord_nyc")
            trial.record_visit(
                study_id,
                "week_10",
                {
                    instrument: rdq_answers(4) if instrument == "rdq" else answers_for(instrument)
                    for instrument in world.protocol.visit("week_10").instruments
                },
                completed_on=world.clock.today,
            )
            trial.close()
        admin = Trial(application.app.state.context, Principal.operator("admin"))
        admin.record_identity(seattle[3], contact="synthetic.person@example.org")
        admin.record_identity(new_york[1], contact="another.person@example.org")
        world.clock.advance(16)
        admin.send_messages(FileTransport(folder / "out"), link_base=application.url + "/survey/")
        for username in ("coord", "stat_open"):
            admin.set_password(PASSWORD, username)
        yield application


def test_the_follow_up_dashboard_and_a_participant_s_links_in_a_browser(
    tab: Page, served: Served
) -> None:
    sign_in(tab, served, "stat_open")
    tab.goto(served.url + "/follow-up")
    heading(tab, "Follow-up")
    expect(tab.get_by_role("table", name="By arm: rate (complete of due)")).to_be_visible()
    accessible(tab, "the follow-up dashboard, unblinded")
    screenshot(tab, "follow-up")
    sign_out(tab)

    sign_in(tab, served, "coord")
    heading(tab, "Dashboard")
    tab.get_by_role("navigation", name="Main").get_by_role("link", name="Follow-up").click()
    heading(tab, "Follow-up")
    assert blinded_text_shown(served, tab) == []
    expect(
        tab.get_by_role("table", name="Each follow-up visit: complete, of due so far")
    ).to_contain_text("50.0%")
    accessible(tab, "the follow-up dashboard, blinded")
    calls = tab.get_by_role("table", name="Participants to call, the soonest closing first")
    expect(calls).to_contain_text(served.randomized[3])
    assert "example.org" not in tab.content()

    calls.get_by_role("link", name=served.randomized[3]).click()
    heading(tab, served.randomized[3])
    history = tab.get_by_role("table", name=re.compile("^Invitations and reminders to"))
    expect(history).to_contain_text("last reminder")
    assert "example.org" not in tab.content()
    accessible(tab, "a participant's page with survey links and messages")
    tab.locator("#invitations").scroll_into_view_if_needed()
    screenshot(tab, "participant-follow-up")

    tab.get_by_role("button", name="Issue a new link for week 10", exact=False).click()
    heading(tab, f"New survey link: {served.randomized[3]}, week 10")
    link = tab.get_by_label("The participant's link").input_value()
    assert "/survey/lms_" in link
    accessible(tab, "a new survey link, shown once")
    tab.get_by_role("link", name=f"Back to {served.randomized[3]}").click()
    assert link.rsplit("/", 1)[1] not in tab.content()
    tab.get_by_role("link", name="Revoke the week 10 link").click()
    heading(tab, f"Revoke {served.randomized[3]}'s week 10 link")
    accessible(tab, "revoking a link")
    tab.get_by_role("button", name="Revoke the link").click()
    expect(tab.get_by_role("status")).to_contain_text("is revoked")
