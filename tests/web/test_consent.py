"""Electronic consent pages: at the site, on the phone, and who must consent again."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lumbar.messages import Catalogue
from lumbar.web.app import create_app
from tests.operations.world import World, amended_world, eligible_answers
from tests.web.conftest import CHEAP, hidden, set_password, sign_in

ENGLISH = Catalogue.load()
NAME = "Zoë Exämple"
YES = {
    "q_understood": "yes",
    "q_voluntary": "yes",
    "q_contact_follow_up": "yes",
    "q_future_studies": "no",
}


def screened(world: World) -> str:
    trial = world.as_("coord")
    number = trial.screen("SEA", eligible_answers(world.protocol)).screening_number
    trial.record_identity(number, name=NAME)
    trial.close()
    return number


def consent_count(world: World, reference: str) -> int:
    trial = world.as_("coord")
    count = len(trial.consents(reference))
    trial.close()
    return count


def test_the_consent_page_offers_the_document_and_records_an_electronic_consent(
    world: World, coordinator: TestClient
) -> None:
    number = screened(world)
    page = coordinator.get(f"/participants/{number}/consent")
    assert page.status_code == 200
    document = world.protocol.consent.documents[0]  # type: ignore[union-attr]
    assert document.sha256 in page.text
    assert "EXAMPLE CONSENT DOCUMENT" in page.text
    assert 'name="q_voluntary"' in page.text
    assert 'name="typed_name"' in page.text
    assert 'action="/participants/' + number + '/consent"' in page.text  # paper stays
    csrf = hidden(page.text, "csrf")
    url = f"/participants/{number}/consent/electronic"

    wrong = coordinator.post(
        url, data={"csrf": csrf, "version": "1.0", **YES, "typed_name": "Someone Else"}
    )
    assert wrong.status_code == 422
    assert 'id="econsent-typed_name-error"' in wrong.text
    assert "Someone Else" not in wrong.text  # the typed name is never put back
    refused = coordinator.post(
        url,
        data={"csrf": csrf, "version": "1.0", **YES, "q_voluntary": "no", "typed_name": NAME},
    )
    assert refused.status_code == 422
    assert 'id="econsent-q_voluntary-error"' in refused.text
    assert consent_count(world, number) == 0

    done = coordinator.post(
        url, data={"csrf": csrf, "version": "1.0", **YES, "typed_name": " zoe  EXAMPLE "}
    )
    assert done.status_code == 303, done.text
    history = coordinator.get(f"/participants/{number}").text
    assert "electronic, at the site" in history
    assert "verified" in history
    assert NAME not in history


def test_a_changed_document_is_not_shown_and_paper_still_works(
    world: World, tmp_path: Path, coordinator: TestClient
) -> None:
    folder = tmp_path / "changed"
    shutil.copytree(world.consent_documents or Path(), folder)
    (file,) = folder.glob("*.txt")
    file.write_text(file.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    coordinator.app.state.context.consent_documents = folder  # type: ignore[attr-defined]
    number = screened(world)
    page = coordinator.get(f"/participants/{number}/consent")
    assert "Electronic consent is not available" in page.text
    assert "does not match the protocol" in page.text
    assert 'name="typed_name"' not in page.text
    csrf = hidden(page.text, "csrf")
    refused = coordinator.post(
        f"/participants/{number}/consent/electronic",
        data={"csrf": csrf, "version": "1.0", **YES, "typed_name": NAME},
    )
    assert refused.status_code == 422
    assert consent_count(world, number) == 0
    paper = coordinator.post(
        f"/participants/{number}/consent",
        data={"csrf": csrf, "version": "1.0", "consent_date": world.clock.today.isoformat()},
    )
    assert paper.status_code == 303
    assert consent_count(world, number) == 1


# ---------------------------------------------------------------------- consenting again


@pytest.fixture
def amended(database_url: str, tmp_path: Path) -> World:
    return amended_world(database_url, tmp_path)


def _client(amended: World) -> TestClient:
    app = create_app(
        amended.url,
        key_file=amended.key_file,
        clock=amended.clock,
        password_hasher=CHEAP,
        consent_documents=amended.consent_documents,
    )
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def staff(amended: World) -> Iterator[TestClient]:
    with _client(amended) as client:
        set_password(client, "coord")
        assert sign_in(client, "coord").status_code == 303  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def phone(amended: World) -> Iterator[TestClient]:
    with _client(amended) as client:
        yield client


def enrolled(world: World) -> str:
    number = screened(world)
    trial = world.as_("coord")
    trial.consent(number, "1.0", world.clock.today)
    study_id = trial.enrol(number)
    trial.close()
    return study_id


def test_the_dashboard_lists_who_must_consent_again_and_a_link_consents_on_the_phone(
    amended: World, staff: TestClient, phone: TestClient
) -> None:
    study_id = enrolled(amended)
    assert "version in effect: <strong>0</strong>" in staff.get("/").text
    amended.clock.advance(31)  # version 2.0 takes effect
    assert sign_in(staff, "coord").status_code == 303  # type: ignore[attr-defined]
    dashboard = staff.get("/").text
    assert re.search(r"not consented to the version in effect: <strong>1</strong>", dashboard)
    assert f'href="/participants/{study_id}/consent">Consent again to version 2.0' in (
        staff.get(f"/participants/{study_id}").text
    )
    due = staff.get("/consent/due")
    assert study_id in due.text
    assert "2.0" in due.text
    issued = staff.post(
        f"/participants/{study_id}/consent/link", data={"csrf": hidden(due.text, "csrf")}
    )
    assert issued.status_code == 200
    found = re.search(r"/consent/(lmc_[A-Za-z0-9_-]+)", issued.text)
    assert found is not None
    token = found.group(1)
    assert "opened" not in staff.get("/consent/due").text

    page = phone.get(f"/consent/{token}")
    assert page.status_code == 200
    assert "version 2.0" in page.text
    assert ENGLISH.text("consent.submit") in page.text
    assert "csrf" not in page.text  # the link is the credential
    wrong = phone.post(f"/consent/{token}", data={"q_understood": "yes", "typed_name": "Nobody"})
    assert wrong.status_code == 422
    assert ENGLISH.text("consent.problem.name") in wrong.text
    unanswered = phone.post(f"/consent/{token}", data={"typed_name": NAME})
    assert unanswered.status_code == 422
    assert ENGLISH.text("consent.problem.answer") in unanswered.text
    assert consent_count(amended, study_id) == 1

    sent = phone.post(f"/consent/{token}", data={"q_understood": "yes", "typed_name": NAME})
    assert sent.status_code == 303
    assert sent.headers["location"] == "/consent/thanks"
    assert phone.get("/consent/thanks").status_code == 200
    again = phone.get(f"/consent/{token}")
    assert again.status_code == 410
    assert ENGLISH.text("consent.refused.used") in again.text
    resent = phone.post(f"/consent/{token}", data={"q_understood": "yes", "typed_name": NAME})
    assert resent.status_code == 410
    assert consent_count(amended, study_id) == 2
    assert "No one needs to consent again" in staff.get("/consent/due").text
    assert "Consent again to version" not in staff.get(f"/participants/{study_id}").text
    history = staff.get(f"/participants/{study_id}").text
    assert "electronic, by link" in history
    assert "verified" in history


def test_forged_expired_and_revoked_consent_links_get_a_page_and_change_nothing(
    amended: World, staff: TestClient, phone: TestClient
) -> None:
    study_id = enrolled(amended)
    amended.clock.advance(31)
    coord = amended.as_("coord")
    first = coord.issue_consent_link(study_id).token
    second = coord.issue_consent_link(study_id).token
    coord.close()
    forged = phone.get("/consent/lmc_" + "x" * 43)
    assert forged.status_code == 404
    assert ENGLISH.text("consent.refused.forged") in forged.text
    revoked = phone.post(f"/consent/{first}", data={"q_understood": "yes", "typed_name": NAME})
    assert revoked.status_code == 410
    assert ENGLISH.text("consent.refused.revoked") in revoked.text
    amended.clock.advance(15)
    expired = phone.get(f"/consent/{second}")
    assert expired.status_code == 410
    assert "ask the study team for a new one" in expired.text
    assert consent_count(amended, study_id) == 1


def test_a_changed_document_is_not_shown_on_the_phone_and_nothing_is_recorded(
    amended: World, phone: TestClient
) -> None:
    study_id = enrolled(amended)
    amended.clock.advance(31)
    coord = amended.as_("coord")
    token = coord.issue_consent_link(study_id).token
    coord.close()
    assert amended.consent_documents is not None
    changed = amended.consent_documents / "consent-2.0.txt"
    changed.write_bytes(changed.read_bytes() + b"A line added later.\n")
    page = phone.get(f"/consent/{token}")
    assert page.status_code == 503
    assert ENGLISH.text("consent.unavailable") in page.text
    assert "A line added later" not in page.text
    sent = phone.post(f"/consent/{token}", data={"q_understood": "yes", "typed_name": NAME})
    assert sent.status_code == 503
    assert consent_count(amended, study_id) == 1


def test_a_therapist_sees_the_history_but_may_not_issue_links(
    amended: World, staff: TestClient
) -> None:
    study_id = enrolled(amended)
    amended.clock.advance(31)
    set_password(staff, "ther")
    assert sign_in(staff, "ther").status_code == 303  # type: ignore[attr-defined]
    assert "on paper" in staff.get(f"/participants/{study_id}").text
    assert staff.get("/consent/due").status_code == 403
    assert "/consent/due" not in staff.get("/").text
