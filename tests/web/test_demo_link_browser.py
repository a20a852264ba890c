"""The demo's open follow-up, answered on a phone through the link `lumbar invite show` prints.

What a new user does after `make demo`: start the web pages on the demo trial (as `lumbar
serve` does: the real clock, the key file beside the database), run the `lumbar invite show`
command the demo printed, open the address it prints in a phone-sized browser, and answer
every questionnaire of the visit. The answers are then stored once, from the participant's
link.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from lumbar.cli import app
from lumbar.messages import Catalogue
from lumbar.operations import Trial
from lumbar.protocol import shipped_protocol
from lumbar.web.app import create_app
from tests.clitools import runner
from tests.web.browser import on_a_phone, tap_answers
from tests.web.conftest import served

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ENGLISH = Catalogue.load()


def test_the_demo_leaves_a_follow_up_to_answer_on_a_phone(tmp_path: Path, phone: Page) -> None:
    out = tmp_path / "demo"
    demo = runner.invoke(app, ["demo", "--participants", "30", "--seed", "5", "--out", str(out)])
    assert demo.exit_code == 0, demo.output
    ending = demo.output[demo.output.index("Answer a follow-up as a participant") :]
    command = re.search(r"invite show (\S+) (\S+) --db (\S+) --as (\S+)", ending)
    assert command is not None, ending
    study_id, visit, database, user = command.groups()
    assert Path(database) == out / "trial.db"
    with served(create_app(f"sqlite:///{database}")) as address:
        invite = ["invite", "show", study_id, visit, "--db", database, "--as", user]
        shown = runner.invoke(app, [*invite, "--base-url", address])
        assert shown.exit_code == 0, shown.output
        link = next(line for line in shown.output.splitlines() if line.startswith(address))
        phone.goto(link)
        expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("start.title"))
        expect(phone.locator(".synthetic")).to_have_text(ENGLISH.text("synthetic"))
        phone.get_by_role("link", name=ENGLISH.text("start.begin")).tap()
        instruments = shipped_protocol("massage-clbp").visit(visit).instruments
        for number, instrument in enumerate(instruments, start=1):
            expect(phone.locator(".progress")).to_have_text(
                ENGLISH.text("progress", number=number, total=len(instruments))
            )
            tap_answers(phone, instrument)
            phone.get_by_role("button", name=ENGLISH.text("form.save")).tap()
        expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("review.title"))
        phone.get_by_role("button", name=ENGLISH.text("review.send")).tap()
        expect(phone.get_by_role("heading", level=1)).to_have_text(ENGLISH.text("thanks.title"))
        on_a_phone(phone, "the thank-you page")
    trial = Trial.open(f"sqlite:///{database}", "admin")
    try:
        stored = [row for row in trial.questionnaires(study_id) if row.visit == visit]
        assert sorted(row.instrument for row in stored) == sorted(instruments)
        assert {row.source for row in stored} == {"participant_link"}
        assert trial.verify_audit().intact
    finally:
        trial.close()
