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
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect

from lumbar.instruments import INSTRUMENTS
from lumbar.operations import Principal, Trial
from tests.operations.world import START, answers_for, eligible_answers, rdq_answers
from tests.web.browser import Served, accessible, by_keyboard, screenshot
from tests.web.conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]

WRONG = "the user name, the password or the code is wrong, or the account is not active"


MASSAGE = ("structural", "relaxation")
"""The protocol's massage arms: a therapist logs sessions for their participants."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served trial for the module: randomized participants at Seattle (two at least,
    one of them in a massage arm) and one enrolled, one randomized in New York; passwords
    for the staff the days use."""
    with Served(tmp_path_factory.mktemp("served")) as application:
        world = application.world
        application.randomized += [world.randomized(), world.randomized()]
        while not any(world.arm(study_id) in MASSAGE for study_id in application.randomized):
            application.randomized.append(world.randomized())
        world.enrolled()
        world.randomized("NYC", coordinator="coord_nyc")
        admin = Trial(application.app.state.context, Principal.operator("admin"))
        for username in ("coord", "assessor", "ther", "monitor", "stat"):
            admin.set_password(PASSWORD, username)
        yield application


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) in a 1280 x 800 window, in US English (a date
    is typed month first); fails the test on any script error, console error or failed
    request (a CSP refusal among them). A download's request counts as failed in
    Chromium (it is aborted as a navigation once the file is saved): not an error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    downloaded: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.extend(_console_error(message)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.on("response", lambda response: errors.extend(_resource_refused(response)))
    page.on("download", lambda download: downloaded.append(f"failed: {download.url}"))
    yield page
    context.close()
    assert [error for error in errors if error not in downloaded] == []


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


def blinded_text_shown(served: Served, tab: Page) -> list[str]:
    """What a blinded user may not see, found in the page's ``<main>``: an arm's id or
    label, or the name of a technique (which says the arm as surely)."""
    text = tab.locator("main").inner_text()
    found = arms_shown(served, text)
    vocabulary = served.world.protocol.vocabulary
    for term in vocabulary.techniques:
        for name in (term.id, term.label):
            if re.search(rf"\b{re.escape(name.casefold())}\b", text.casefold()):
                found.append(name)
    return found


def go(tab: Page, link: str) -> None:
    """Follow the main navigation's link named ``link``."""
    tab.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()


def heading(tab: Page, text: str | re.Pattern[str]) -> None:
    expect(tab.get_by_role("heading", level=1)).to_have_text(text)


def week_10_due(served: Served) -> None:
    """Move the world's clock to day 70 of the trial, when week 10 of those randomized on
    its first day is due (once: a later day finds it there). Sessions do not last that
    long: sign in after it."""
    clock = served.world.clock
    clock.now = max(clock.now, START + dt.timedelta(days=70))


def answer_questionnaire(tab: Page, instrument: str, answers: dict[str, object]) -> None:
    """Type or choose each answer in the field labelled with its item's label."""
    definition = INSTRUMENTS.get(instrument)
    for item in definition.items:
        if item.id not in answers:
            continue
        field = tab.get_by_label(definition.text_of(item.id), exact=True)
        if item.response.kind == "choice":
            field.select_option(str(answers[item.id]))
        else:
            field.fill(str(answers[item.id]))


def open_visit(tab: Page, visit: str) -> None:
    """From a participant's page, the visit's page (its row of the questionnaires)."""
    tab.get_by_role("rowheader", name=visit.replace("_", " ")).get_by_role("link").click()


def screen_by_keyboard(tab: Page, served: Served) -> str:
    """The screening form filled in with the keyboard alone; its verdict; the number."""
    go(tab, "Screen someone")
    heading(tab, "Screen someone")
    accessible(tab, "the screening form")
    protocol = served.world.protocol
    wanted: dict[str, str] = {}
    for question, value in eligible_answers(protocol).items():
        if isinstance(value, bool):
            wanted[f"q_{question}"] = "yes" if value else "no"
        else:
            wanted[f"q_{question}"] = str(value)
    by_keyboard(tab, wanted, "Record the screening")
    heading(tab, re.compile(r"^Screening of "))
    expect(tab.locator(".verdict")).to_have_text("Verdict: eligible")
    accessible(tab, "a screening's verdict")
    title = tab.get_by_role("heading", level=1).inner_text()
    return title.removeprefix("Screening of ")


def consent_and_enrol(tab: Page, served: Served, screening_number: str) -> str:
    """Consent recorded through its form, the participant enrolled; their study id."""
    tab.get_by_role("link", name="Record consent").click()
    heading(tab, "Record consent")
    accessible(tab, "the consent form")
    tab.get_by_label("Consent form version").fill("1.0")
    tab.get_by_label("Date consent was given").fill(served.world.clock.today.isoformat())
    tab.get_by_role("button", name="Record consent").click()
    heading(tab, screening_number)
    accessible(tab, "a consented participant's page")
    tab.get_by_role("button", name=f"Enrol {screening_number}").click()
    study_id = tab.get_by_role("heading", level=1).inner_text()
    assert study_id != screening_number
    expect(tab.locator(".facts")).to_contain_text("enrolled")
    accessible(tab, "an enrolled participant's page")
    return study_id


def record_identifiers(tab: Page, study_id: str) -> None:
    tab.get_by_role("link", name="Identifiers").click()
    heading(tab, f"Identifiers of {study_id}")
    accessible(tab, "the identifiers form")
    tab.get_by_label("Name").fill("Ada <b>Lovelace</b>")
    tab.get_by_label("Contact").fill("ada@example.org")
    tab.get_by_label("Date of birth").fill("1981-12-10")
    tab.get_by_role("button", name="Record", exact=True).click()
    expect(tab.get_by_role("status")).to_have_text("The identifiers were recorded.")
    accessible(tab, "the identifiers, recorded")
    tab.get_by_role("button", name="Open the identifiers (recorded)").click()
    expect(tab.locator("main .facts").last).to_contain_text("Ada <b>Lovelace</b>")
    accessible(tab, "the identifiers, opened")


def enter_baseline(tab: Page, served: Served, study_id: str) -> None:
    """Each baseline questionnaire through its form, from the visit's page."""
    open_participant_by_nav(tab, study_id)
    open_visit(tab, "baseline")
    heading(tab, f"{study_id}: baseline")
    accessible(tab, "a visit's page")
    for instrument in served.world.protocol.baseline.instruments:
        title = INSTRUMENTS.get(instrument).title
        tab.get_by_role("rowheader", name=title).get_by_role("link").click()
        heading(tab, f"Enter: {title}")
        accessible(tab, f"the form of {instrument}")
        answers = rdq_answers(8) if instrument == "rdq" else answers_for(instrument, 1)
        answer_questionnaire(tab, instrument, answers)
        tab.get_by_role("button", name="Save", exact=True).click()
        heading(tab, title)
        accessible(tab, f"{instrument} recorded")
        tab.get_by_role("link", name=f"{study_id}, baseline").click()
    expect(tab.get_by_role("cell", name="not yet")).to_have_count(0)
    accessible(tab, "a visit's page, complete")


def open_participant_by_nav(tab: Page, study_id: str) -> None:
    go(tab, "Participants")
    open_participant(tab, study_id)


def randomize(tab: Page, study_id: str) -> None:
    """The randomization's confirmation step, then the assignment (blinded: no arm)."""
    open_participant_by_nav(tab, study_id)
    tab.get_by_role("link", name="Randomize").click()
    heading(tab, f"Randomize {study_id}")
    accessible(tab, "the randomization's confirmation")
    tab.get_by_role("button", name=f"Randomize {study_id} now").click()
    heading(tab, study_id)
    expect(tab.locator(".facts")).to_contain_text("randomized")
    accessible(tab, "a randomized participant's page, blinded")
    tab.get_by_role("link", name="Randomization").click()
    expect(tab.locator(".facts")).to_contain_text("not shown: you are blinded")
    accessible(tab, "an assignment, blinded")
    tab.get_by_role("link", name=f"Back to {study_id}").click()


def record_adverse_event(tab: Page, served: Served, study_id: str) -> None:
    """An adverse event: first sent empty (the form again, with its messages), then whole."""
    tab.get_by_role("link", name="Record an adverse event").click()
    heading(tab, f"Record an adverse event: {study_id}")
    accessible(tab, "the adverse event form")
    tab.get_by_role("button", name="Record the event").click()
    expect(tab.get_by_role("alert")).to_be_visible()
    expect(tab.locator("[aria-invalid=true]").first).to_be_visible()
    accessible(tab, "the adverse event form with its messages")
    tab.get_by_label("Description").fill("<script>alert(1)</script> bruising")
    tab.get_by_label("Onset date").fill(served.world.clock.today.isoformat())
    tab.get_by_label("Severity").select_option("mild")
    tab.get_by_label("Relatedness to the treatment").select_option(index=1)
    tab.get_by_role("button", name="Record the event").click()
    # A blinded coordinator records events but is not shown them (a description could
    # reveal the arm). Had the markup in it run, the tab would fail on the CSP's refusal.
    expect(tab.get_by_role("status")).to_have_text(re.compile(r"Adverse event \d+ is recorded"))
    accessible(tab, "a participant's adverse events")


def week_10_with_a_correction(tab: Page, served: Served, study_id: str) -> None:
    """The week-10 disability questionnaire entered, one answer corrected with a reason
    (first without one: refused at the field), and the correction in its history."""
    open_participant_by_nav(tab, study_id)
    open_visit(tab, "week_10")
    accessible(tab, "a follow-up visit's page")
    title = INSTRUMENTS.get("rdq").title
    tab.get_by_role("rowheader", name=title).get_by_role("link").click()
    accessible(tab, "a follow-up questionnaire's form")
    answer_questionnaire(tab, "rdq", rdq_answers(12))
    tab.get_by_role("button", name="Save", exact=True).click()
    heading(tab, title)
    accessible(tab, "a recorded questionnaire")
    tab.get_by_role("link", name="Correct an answer or the date").click()
    heading(tab, f"Correct: {title}")
    accessible(tab, "a correction's form")
    answer_questionnaire(tab, "rdq", {"rdq_01": 0})
    tab.get_by_role("button", name="Save the correction").click()
    expect(tab.get_by_label("Reason for the correction")).to_have_attribute("aria-invalid", "true")
    accessible(tab, "a correction refused for want of a reason")
    tab.get_by_label("Reason for the correction").fill("misread <i>the</i> paper form")
    tab.get_by_role("button", name="Save the correction").click()
    heading(tab, title)
    history = tab.get_by_role("table", name=re.compile("Every correction"))
    expect(history).to_contain_text("misread <i>the</i> paper form")
    expect(history).to_contain_text("coord")
    expect(history).to_contain_text(": 1 → 0")  # the answer, as the form gave it
    accessible(tab, "a questionnaire with its corrections")
    screenshot(tab, "questionnaire-history")


# ---------------------------------------------------------------------- the days


def coordinator_day(tab: Page, served: Served) -> None:
    """A coordinator with an authenticator app: sign in, the dashboard, the participants,
    one participant; someone screened (with the keyboard alone), consented, enrolled,
    identified, their baseline entered and randomized; an adverse event; ten weeks later
    their week-10 questionnaire and a correction; the error pages, sign out."""
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

    screening_number = screen_by_keyboard(tab, served)
    study_id = consent_and_enrol(tab, served, screening_number)
    record_identifiers(tab, study_id)
    enter_baseline(tab, served, study_id)
    randomize(tab, study_id)
    record_adverse_event(tab, served, study_id)
    sign_out(tab)

    served.world.clock.advance(70)  # their week 10 is due: a new day, a new code
    sign_in(tab, served, "coord", totp.at(served.world.clock.now))
    heading(tab, "Dashboard")
    accessible(tab, "the dashboard, ten weeks on")
    week_10_with_a_correction(tab, served, study_id)

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
    """A blinded outcome assessor: enters a week-10 questionnaire with the keyboard alone,
    and meets no arm and no technique on any page they reach."""
    week_10_due(served)
    sign_in(tab, served, "assessor")
    heading(tab, "Dashboard")
    assert blinded_text_shown(served, tab) == [], "the dashboard"
    accessible(tab, "the dashboard, blinded")
    go(tab, "Participants")
    assert blinded_text_shown(served, tab) == [], "the participant list"
    accessible(tab, "the participant list, blinded")
    for study_id in served.randomized:
        open_participant(tab, study_id)
        assert blinded_text_shown(served, tab) == [], study_id
        accessible(tab, "a participant's page, blinded")
        tab.go_back()

    study_id = served.randomized[0]
    open_participant(tab, study_id)
    open_visit(tab, "week_10")
    assert blinded_text_shown(served, tab) == [], "a visit's page"
    accessible(tab, "a visit's page, blinded")
    satisfaction = INSTRUMENTS.get("satisfaction")
    tab.get_by_role("rowheader", name=satisfaction.title).get_by_role("link").click()
    assert blinded_text_shown(served, tab) == [], "a questionnaire's form"
    accessible(tab, "a questionnaire's form, blinded")
    wanted = {f"answer_{item}": str(code) for item, code in answers_for("satisfaction", 2).items()}
    by_keyboard(tab, wanted, "Save")
    heading(tab, satisfaction.title)
    expect(tab.get_by_role("table", name="Answers as recorded now")).not_to_contain_text(
        "not answered"
    )
    assert blinded_text_shown(served, tab) == [], "a recorded questionnaire"
    accessible(tab, "a recorded questionnaire, blinded")
    tab.get_by_role("link", name=f"{study_id}, week 10").click()
    assert blinded_text_shown(served, tab) == [], "a visit's page, completed"
    tab.get_by_role("link", name=study_id, exact=True).click()
    assert blinded_text_shown(served, tab) == [], "a participant's page, after"
    sign_out(tab)


def therapist_day(tab: Page, served: Served) -> None:
    """A therapist logs a session of their participant in a massage arm with the keyboard
    alone (after sending it empty once) and sees the adherence."""
    world = served.world
    study_id = next(one for one in served.randomized if world.arm(one) in MASSAGE)
    arm = world.protocol.arm(world.arm(study_id))
    sign_in(tab, served, "ther")
    heading(tab, "Dashboard")
    accessible(tab, "a therapist's dashboard")
    go(tab, "Participants")
    accessible(tab, "the participant list, for a therapist")
    open_participant(tab, study_id)
    accessible(tab, "a participant's page, for their therapist")
    tab.get_by_role("link", name="The sessions").click()
    heading(tab, f"Treatment sessions: {study_id}")
    expect(tab.locator(".facts")).to_contain_text(arm.label)
    assert arm.label in blinded_text_shown(served, tab)  # what the assessor's check finds
    accessible(tab, "the sessions, none yet")
    tab.get_by_role("link", name="Log a session").click()
    heading(tab, f"Log a session: {study_id}")
    accessible(tab, "the session form")
    screenshot(tab, "session-form")
    tab.get_by_role("button", name="Log the session").click()
    expect(tab.get_by_role("alert")).to_be_visible()
    accessible(tab, "the session form with its messages")
    technique = tab.get_by_role("group", name="Techniques").get_by_role("checkbox").first
    region = tab.get_by_role("group", name="Body regions").get_by_role("checkbox").first
    wanted = {
        "session_date": world.clock.today.isoformat(),
        "minutes": "90",
        str(technique.get_attribute("name")): "1",
        str(region.get_attribute("name")): "1",
        "rating_bothersomeness": "6",
        "notes": "<script>alert(1)</script> eased",
    }
    by_keyboard(tab, wanted, "Log the session")
    heading(tab, f"Treatment sessions: {study_id}")
    planned = arm.sessions.planned
    expect(tab.locator(".facts")).to_contain_text(
        f"1 of {planned} planned sessions ({100 / planned:.0f}%)"
    )
    expect(tab.get_by_role("cell", name="<script>alert(1)</script> eased")).to_be_visible()
    accessible(tab, "the sessions, one logged")
    screenshot(tab, "sessions")
    sign_out(tab)


def monitor_day(tab: Page, served: Served) -> None:
    """A monitor reads the audit trail by participant and by action, and verifies it; then
    acknowledges the notice of a serious adverse event."""
    study_id = served.randomized[0]
    sign_in(tab, served, "monitor")
    heading(tab, "Dashboard")
    accessible(tab, "a monitor's dashboard")
    go(tab, "Audit trail")
    heading(tab, "Audit trail")
    accessible(tab, "the audit trail")
    tab.get_by_label("Participant").fill(study_id)
    tab.get_by_role("button", name="Show").click()
    records = tab.get_by_role("table", name=re.compile("newest first"))
    expect(records).to_contain_text("questionnaire.record")
    expect(records).not_to_contain_text(served.randomized[1])  # another's records
    accessible(tab, "the audit trail of a participant")
    tab.get_by_label("Participant").fill("")
    tab.get_by_label("What").fill("questionnaire.record")
    tab.get_by_role("button", name="Show").click()
    actions = records.locator("tbody td:nth-child(5)").all_inner_texts()
    assert actions, "no questionnaire recorded?"
    assert set(actions) == {"questionnaire.record"}, actions
    accessible(tab, "the audit trail of an action")
    tab.get_by_role("button", name="Verify now").click()
    expect(tab.get_by_role("status")).to_contain_text("Intact.")
    accessible(tab, "the audit trail, verified")

    # A serious adverse event is recorded: the monitor finds its notice and acknowledges it.
    coordinator = Trial(served.app.state.context, Principal.operator("coord"))
    coordinator.report_adverse_event(
        study_id, "taken to hospital", served.world.clock.today, severity="severe",
        serious=True, relatedness="unlikely",
    )  # fmt: skip
    go(tab, "Dashboard")
    expect(tab.locator("#main")).to_contain_text("waiting for a monitor's acknowledgement")
    go(tab, "Notifications")
    heading(tab, "Notifications")
    notices = tab.get_by_role("table", name=re.compile("Notifications"))
    expect(notices).to_contain_text("Serious adverse event")
    expect(notices).not_to_contain_text("hospital")  # free text stays out of the notice
    accessible(tab, "the notifications")
    screenshot(tab, "notifications")
    tab.get_by_role("button", name=re.compile("Acknowledge notification")).first.click()
    expect(tab.get_by_role("status")).to_contain_text("is acknowledged")
    expect(notices).to_contain_text("acknowledged by monitor")
    accessible(tab, "the notifications, acknowledged")
    sign_out(tab)


def statistician_day(tab: Page, served: Served) -> None:
    """A blinded statistician downloads the de-identified dataset (the randomized
    participants are in it, their arms are not), then makes the trial report and reads it
    (the arms pooled)."""
    sign_in(tab, served, "stat")
    heading(tab, "Dashboard")
    accessible(tab, "a statistician's dashboard")
    go(tab, "Exports")
    heading(tab, "Exports")
    accessible(tab, "the exports")
    with tab.expect_download() as started:
        tab.get_by_role("button", name="Download the dataset (CSV)").click()
    download = started.value
    assert download.suggested_filename.endswith(".csv")
    content = Path(download.path()).read_text(encoding="utf-8")
    assert served.randomized[0] in content
    assert arms_shown(served, content) == []

    # The trial report, made and read in the browser (its styles pass its own policy).
    go(tab, "Report")
    heading(tab, "Trial report")
    accessible(tab, "the report page")
    tab.get_by_label(re.compile("Imputations")).fill("2")
    tab.get_by_role("button", name="Make the report").click()
    expect(tab.get_by_role("status")).to_contain_text("The report is made", timeout=120_000)
    accessible(tab, "the report page, with a report")
    tab.get_by_role("link", name="Read the report").click()
    expect(tab.locator("#blinded-banner")).to_be_visible()
    assert arms_shown(served, tab.locator("#consort").inner_text()) == []
    screenshot(tab, "report")
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


def test_a_therapist_logs_a_session_with_the_keyboard_and_sees_adherence(
    tab: Page, served: Served
) -> None:
    therapist_day(tab, served)


def test_a_monitor_filters_the_audit_trail_and_verifies_it(tab: Page, served: Served) -> None:
    monitor_day(tab, served)


def test_a_statistician_downloads_the_dataset(tab: Page, served: Served) -> None:
    statistician_day(tab, served)


def test_a_field_the_tab_order_skips_fails_the_keyboard_check(tab: Page, served: Served) -> None:
    tab.goto(served.url + "/sign-in")
    tab.get_by_label("Password").evaluate("field => field.tabIndex = -1")
    with pytest.raises(AssertionError, match="not reached with Tab: \\['password'\\]"):
        by_keyboard(tab, {"username": "assessor", "password": PASSWORD}, "Sign in")
