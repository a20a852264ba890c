"""What is recorded about a participant, through the pages: questionnaires and their
corrections, treatment sessions, adverse events; each checked again through the operations."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from lumbar.instruments import INSTRUMENTS
from tests.operations.world import World, answers_for, rdq_answers
from tests.web.conftest import hidden, set_password, sign_in

pytestmark = pytest.mark.integration

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def signed_in_as(client: TestClient, username: str) -> TestClient:
    set_password(client, username)
    response = sign_in(client, username)
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    return client


def post(client: TestClient, url: str, data: dict[str, Any]) -> Any:
    """Post a form the way a browser does: with the CSRF token of the page it came from."""
    token = hidden(client.get("/").text, "csrf")
    return client.post(url, data={"csrf": token, **data})


def as_form(answers: dict[str, Any]) -> dict[str, str]:
    return {
        f"answer_{item}": "" if value is None else str(value) for item, value in answers.items()
    }


def baseline_answers(instrument: str) -> dict[str, Any]:
    if instrument == "rdq":
        return rdq_answers(8)
    if instrument == "bothersomeness":
        return {"bothersomeness": 6}
    return answers_for(instrument, 1)


def treated(world: World) -> str:
    """A participant randomized to an arm with sessions (the allocation list decides)."""
    for _ in range(10):
        study_id = world.randomized()
        if world.protocol.arm(world.arm(study_id)).sessions.planned:
            return study_id
    raise AssertionError("ten participants in a row without sessions")


def arm_words(world: World) -> list[str]:
    words = []
    for arm in world.protocol.arms:
        words += [arm.id, arm.label]
    return words


def technique_words(world: World) -> list[str]:
    return [term.label for term in world.protocol.vocabulary.techniques]


def message_beside(html: str, field: str) -> str:
    found = re.search(rf'<ul class="field-errors" id="{field}-error">(.*?)</ul>', html, re.S)
    assert found is not None, f"no message beside {field}"
    assert f'aria-describedby="{field}-error' in html
    return found.group(1)


# ---------------------------------------------------------------------- questionnaires


def test_the_coordinator_enters_the_baseline_through_the_pages_and_sees_the_scores(
    world: World, coordinator: TestClient
) -> None:
    study_id = world.enrolled()
    visit_page = coordinator.get(f"/participants/{study_id}/visits/baseline")
    assert visit_page.status_code == 200
    assert visit_page.text.count("not yet") == len(world.protocol.baseline.instruments)
    for instrument in world.protocol.baseline.instruments:
        url = f"/participants/{study_id}/visits/baseline/{instrument}"
        form = coordinator.get(url)
        assert form.status_code == 200
        for item in INSTRUMENTS.get(instrument).items:
            assert f'<label for="answer_{item.id}">' in form.text
        assert world.clock.today.isoformat() in form.text  # completion date defaults to today
        response = post(
            coordinator,
            url,
            {
                "completed_on": world.clock.today.isoformat(),
                **as_form(baseline_answers(instrument)),
            },
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == url
    rdq = coordinator.get(f"/participants/{study_id}/visits/baseline/rdq")
    assert "Scores" in rdq.text
    assert re.search(r"<td class=\"num\">8</td>", rdq.text)
    coord = world.as_("coord")
    recorded = coord.questionnaire(study_id, "baseline", "rdq")
    assert recorded is not None
    assert recorded.view.scores["total"] == 8
    assert len(coord.questionnaires(study_id, "baseline")) == len(
        world.protocol.baseline.instruments
    )
    coord.close()
    visit_page = coordinator.get(f"/participants/{study_id}/visits/baseline")
    assert "not yet" not in visit_page.text
    participant = coordinator.get(f"/participants/{study_id}")
    assert f'href="/participants/{study_id}/visits/baseline/rdq"' in participant.text


def test_a_correction_needs_a_reason_and_shows_in_the_history(
    world: World, coordinator: TestClient
) -> None:
    study_id = world.enrolled()
    world.with_baseline(study_id, rdq_yes=8)
    url = f"/participants/{study_id}/visits/baseline/rdq/edit"
    form = coordinator.get(url)
    assert form.status_code == 200
    assert re.search(r'name="answer_rdq_01".*?<option value="1" selected>', form.text, re.S)
    changed = as_form({**rdq_answers(8), "rdq_20": 1})
    completed_on = world.clock.today.isoformat()
    refused = post(coordinator, url, {"completed_on": completed_on, "reason": "  ", **changed})
    assert refused.status_code == 422
    assert "must not be empty" in message_beside(refused.text, "reason")
    coord = world.as_("coord")
    assert coord.questionnaire(study_id, "baseline", "rdq").answers["rdq_20"] == 0  # type: ignore[union-attr]
    accepted = post(coordinator, url, {"completed_on": completed_on, "reason": SCRIPT, **changed})
    assert accepted.status_code == 303
    page = coordinator.get(f"/participants/{study_id}/visits/baseline/rdq")
    history = page.text.split('id="history"')[1]
    assert "coord" in history
    assert ESCAPED in history
    assert SCRIPT not in page.text
    assert "0 → 1" in history
    assert "8 → 9" in history  # the total score
    recorded = coord.questionnaire(study_id, "baseline", "rdq")
    assert recorded is not None
    assert recorded.answers["rdq_20"] == 1
    assert [edit.reason for edit in recorded.edits] == [SCRIPT]
    coord.close()


def test_a_correction_of_an_answer_entered_in_the_form_shows_whole_numbers(
    world: World, coordinator: TestClient
) -> None:
    # Typed into the form an answer is kept as 1.0; corrected, as 0: the history says
    # 1 → 0, as the answers table does, not 1.0 → 0.
    study_id = world.enrolled()
    url = f"/participants/{study_id}/visits/baseline/rdq"
    completed_on = world.clock.today.isoformat()
    entered = post(coordinator, url, {"completed_on": completed_on, **as_form(rdq_answers(8))})
    assert entered.status_code == 303
    changed = as_form({**rdq_answers(8), "rdq_01": 0})
    corrected = post(
        coordinator, url + "/edit", {"completed_on": completed_on, "reason": "misread", **changed}
    )
    assert corrected.status_code == 303
    history = coordinator.get(url).text.split('id="history"')[1].split("</section>")[0]
    assert ": 1 → 0</li>" in history
    assert "1.0" not in history
    recorded = world.as_("coord").questionnaire(study_id, "baseline", "rdq")
    assert recorded is not None
    assert recorded.answers["rdq_01"] == 0


@pytest.mark.parametrize(
    ("instrument", "answers", "field", "words"),
    [
        (
            "bothersomeness",
            {"bothersomeness": "11"},
            "bothersomeness",
            "a whole number from 0 to 10",
        ),
        ("bothersomeness", {"bothersomeness": "a lot"}, "bothersomeness", "must be a number"),
        (
            "medication_use",
            {"any_medication": "0", "opioid": "1"},
            "opioid",
            "is asked only when item any_medication is 1",
        ),
        ("rdq", rdq_answers(3), "completed_on", "must be a date"),
    ],
)
def test_bad_input_comes_back_with_the_message_beside_its_field_and_nothing_stored(
    world: World,
    coordinator: TestClient,
    instrument: str,
    answers: dict[str, Any],
    field: str,
    words: str,
) -> None:
    study_id = world.enrolled()
    completed_on = "" if field == "completed_on" else world.clock.today.isoformat()
    response = post(
        coordinator,
        f"/participants/{study_id}/visits/baseline/{instrument}",
        {"completed_on": completed_on, **as_form(answers)},
    )
    assert response.status_code == 422
    assert words in message_beside(response.text, field)
    for item, value in answers.items():  # what was typed is kept
        if item == field and instrument == "bothersomeness":
            assert f'value="{value}"' in response.text
    coord = world.as_("coord")
    assert coord.questionnaire(study_id, "baseline", instrument) is None
    coord.close()


def test_a_follow_up_outside_its_window_is_stored_and_flagged_on_its_page(
    world: World, client: TestClient
) -> None:
    study_id = world.randomized()
    world.clock.advance(100)  # week 10's window closes on day 91
    coordinator = signed_in_as(client, "coord")
    url = f"/participants/{study_id}/visits/week_10/rdq"
    response = post(
        coordinator, url, {"completed_on": world.clock.today.isoformat(), **as_form(rdq_answers(4))}
    )
    assert response.status_code == 303, response.text
    page = coordinator.get(url)
    assert "Outside its window" in page.text
    assert "9 days after its window closed" in page.text
    visit = coordinator.get(f"/participants/{study_id}/visits/week_10")
    assert "outside its window" in visit.text


def test_a_visit_or_instrument_the_protocol_does_not_have_is_not_found(
    world: World, coordinator: TestClient
) -> None:
    study_id = world.enrolled()
    base = f"/participants/{study_id}/visits"
    for url in (f"{base}/week_99", f"{base}/week_99/rdq", f"{base}/baseline/global_improvement"):
        assert coordinator.get(url).status_code == 404, url


# ---------------------------------------------------------------------- sessions


def test_the_therapist_logs_a_session_and_sees_adherence(world: World, client: TestClient) -> None:
    study_id = treated(world)
    therapist = signed_in_as(client, "ther")
    ther = world.as_("ther")
    plan = ther.treatment_plan(study_id)
    form = therapist.get(f"/participants/{study_id}/sessions/new")
    assert form.status_code == 200
    for technique in plan.techniques:
        assert f'name="technique_{technique}"' in form.text
    refused = post(
        therapist,
        f"/participants/{study_id}/sessions/new",
        {"session_date": world.clock.today.isoformat(), "minutes": "0", "region_low_back": "1"},
    )
    assert refused.status_code == 422
    assert "must be from 1 to" in message_beside(refused.text, "minutes")
    assert "at least one technique" in message_beside(refused.text, "techniques")
    assert ther.sessions(study_id) == []
    response = post(
        therapist,
        f"/participants/{study_id}/sessions/new",
        {
            "session_date": world.clock.today.isoformat(),
            "minutes": "50",
            f"technique_{plan.techniques[0]}": "1",
            "region_low_back": "1",
            "notes": SCRIPT,
        },
    )
    assert response.status_code == 303, response.text
    sessions = therapist.get(response.headers["location"])
    assert f"1 of {plan.planned} planned sessions" in sessions.text
    assert ESCAPED in sessions.text
    assert SCRIPT not in sessions.text
    (logged,) = ther.sessions(study_id)
    assert (logged.minutes, logged.techniques, logged.notes) == (50, plan.techniques[:1], SCRIPT)
    ther.close()
    participant = therapist.get(f"/participants/{study_id}")
    assert f"attended 1 of {plan.planned} planned sessions" in participant.text


# ---------------------------------------------------------------------- adverse events


def test_a_serious_adverse_event_is_recorded_followed_up_and_shows_on_the_dashboard(
    world: World, client: TestClient
) -> None:
    study_id = world.enrolled()
    browser = signed_in_as(client, "coord_open")
    url = f"/participants/{study_id}/adverse-events/new"
    fields = {
        "onset_date": world.clock.today.isoformat(),
        "severity": "severe",
        "relatedness": "possible",
        "outcome": "not_recovered",
        "serious": "yes",
    }
    refused = post(browser, url, {**fields, "description": ""})
    assert refused.status_code == 422
    assert "must not be empty" in message_beside(refused.text, "description")
    response = post(browser, url, {**fields, "description": SCRIPT})
    assert response.status_code == 303, response.text
    listing = browser.get(response.headers["location"])
    assert ESCAPED in listing.text
    assert SCRIPT not in listing.text
    dashboard = browser.get("/")
    serious = dashboard.text.split('id="safety"')[1]
    assert "<strong>Serious</strong>" in serious
    assert study_id in serious
    assert ESCAPED in serious
    assert SCRIPT not in dashboard.text
    opened = world.as_("coord_open")
    (event,) = opened.adverse_events(study_id)
    assert event.serious
    assert event.severity == "severe"
    edit = f"/participants/{study_id}/adverse-events/{event.id}/edit"
    assert browser.get(edit).status_code == 200
    no_reason = post(browser, edit, {"outcome": "recovered", "reason": ""})
    assert no_reason.status_code == 422
    assert "must not be empty" in message_beside(no_reason.text, "reason")
    assert post(browser, edit, {"outcome": "recovered", "reason": SCRIPT}).status_code == 303
    (event,) = opened.adverse_events(study_id)
    assert event.outcome == "recovered"
    opened.close()
    assert browser.get("/notifications").status_code == 403  # a coordinator's role: not theirs

    # The monitor (blinded) finds the notice on the dashboard and acknowledges it.
    client.cookies.clear()
    monitor = signed_in_as(client, "monitor")
    dashboard = monitor.get("/")
    assert "<strong>Serious</strong>" not in dashboard.text  # the list itself needs arms
    assert "acknowledgement: <strong>1</strong>" in dashboard.text
    notices = monitor.get("/notifications")
    assert notices.status_code == 200
    assert f'<a href="/participants/{study_id}">' in notices.text
    assert "Serious adverse event" in notices.text
    assert "alert(" not in notices.text  # the description is not in the notice
    (notice,) = world.as_("monitor").notifications()
    acknowledge = f"/notifications/{notice.id}/acknowledge"
    assert monitor.post(acknowledge, data={}).status_code == 403  # no CSRF token
    done = post(monitor, acknowledge, {})
    assert done.status_code == 303
    assert "acknowledged by monitor" in monitor.get(done.headers["location"]).text
    assert "acknowledgement: <strong>0</strong>" in monitor.get("/").text
    again = post(monitor, acknowledge, {})
    assert again.status_code == 422
    assert "is already acknowledged" in again.text


def test_a_blinded_coordinator_records_an_event_but_sees_no_list(
    world: World, coordinator: TestClient
) -> None:
    study_id = world.enrolled()
    response = post(
        coordinator,
        f"/participants/{study_id}/adverse-events/new",
        {
            "description": "headache",
            "onset_date": world.clock.today.isoformat(),
            "severity": "mild",
            "relatedness": "unlikely",
            "outcome": "unknown",
        },
    )
    assert response.status_code == 303
    page = coordinator.get(response.headers["location"])
    assert "is recorded" in page.text
    assert "not listed for your role" in page.text
    assert "headache" not in page.text


# ---------------------------------------------------------------------- the participant page


def test_the_participant_page_links_each_visits_questionnaires_and_says_what_it_leaves_out(
    world: World, coordinator: TestClient
) -> None:
    study_id = world.randomized()
    page = coordinator.get(f"/participants/{study_id}")
    assert page.status_code == 200
    for visit in world.protocol.visits:
        for instrument in visit.instruments:
            assert f'href="/participants/{study_id}/visits/{visit.id}/{instrument}"' in page.text
    sessions = page.text.split('id="sessions"')[1].split("</section>")[0]
    assert "not shown to your role (they reveal the arm)" in sessions
    events = page.text.split('id="adverse-events"')[1].split("</section>")[0]
    assert "not listed for your role" in events
    assert f'href="/participants/{study_id}/adverse-events/new"' in events


def test_an_unblinded_coordinator_sees_the_participants_events_on_their_page(
    world: World, client: TestClient
) -> None:
    study_id, other = world.enrolled(), world.enrolled()
    coord = world.as_("coord")
    for reference, description in ((study_id, "bruised calf"), (other, "dizzy spell")):
        coord.report_adverse_event(
            reference,
            description,
            world.clock.today,
            severity="mild",
            serious=False,
            relatedness="unlikely",
        )
    coord.close()
    browser = signed_in_as(client, "coord_open")
    page = browser.get(f"/participants/{study_id}")
    events = page.text.split('id="adverse-events"')[1].split("</section>")[0]
    assert "bruised calf" in events
    assert "dizzy spell" not in events  # another participant's


# ---------------------------------------------------------------------- who may see what


def test_another_sites_coordinator_gets_404_for_every_page_and_form(
    world: World, client: TestClient
) -> None:
    study_id = world.randomized()
    browser = signed_in_as(client, "coord_nyc")
    base = f"/participants/{study_id}"
    pages = [
        f"{base}/visits/baseline",
        f"{base}/visits/baseline/rdq",
        f"{base}/visits/baseline/rdq/edit",
        f"{base}/sessions",
        f"{base}/sessions/new",
        f"{base}/adverse-events",
        f"{base}/adverse-events/new",
        f"{base}/adverse-events/1/edit",
    ]
    blinded = ("/sessions", "/sessions/new", "/adverse-events/1/edit")
    for url in pages:
        # Sessions and the event list need an unblinded user: that refusal (403) comes first,
        # whoever the participant is; everything else about another site's participant is 404.
        expected = 403 if url.endswith(blinded) else 404
        assert browser.get(url).status_code == expected, url
        assert browser.get(url.replace(study_id, "SEA-9999")).status_code == expected, url
    forms = {
        f"{base}/visits/week_10/rdq": {"completed_on": "", **as_form(rdq_answers(2))},
        f"{base}/visits/baseline/rdq/edit": {"reason": "x", "completed_on": "2026-01-05"},
        f"{base}/adverse-events/new": {"description": "", "onset_date": "2026-01-05"},
        f"{base}/visits/baseline/nothing": {"completed_on": "2026-01-05"},
    }
    for url, data in forms.items():
        assert post(browser, url, data).status_code == 404, url


def test_the_session_form_takes_the_ratings_and_shows_an_out_of_range_one_at_its_field(
    world: World, client: TestClient
) -> None:
    study_id = treated(world)
    therapist = signed_in_as(client, "ther")
    ther = world.as_("ther")
    plan = ther.treatment_plan(study_id)
    url = f"/participants/{study_id}/sessions/new"
    form = therapist.get(url)
    for name in ("rating_bothersomeness", "rating_pain_intensity"):
        assert f'name="{name}"' in form.text
    fields = {
        "session_date": world.clock.today.isoformat(),
        "minutes": "50",
        f"technique_{plan.techniques[0]}": "1",
        "region_low_back": "1",
    }
    refused = post(
        therapist, url, fields | {"rating_bothersomeness": "11", "rating_pain_intensity": "4"}
    )
    assert refused.status_code == 422
    assert "must be a whole number from 0 to 10" in message_beside(
        refused.text, "rating_bothersomeness"
    )
    assert 'id="rating_pain_intensity-error"' not in refused.text
    assert 'value="11"' in refused.text  # what was typed is kept, to correct it
    typed = post(therapist, url, fields | {"rating_pain_intensity": "four"})
    assert typed.status_code == 422
    assert "whole number" in message_beside(typed.text, "rating_pain_intensity")
    assert ther.sessions(study_id) == []
    logged = post(
        therapist, url, fields | {"rating_bothersomeness": "7", "rating_pain_intensity": ""}
    )
    assert logged.status_code == 303, logged.text
    (session,) = ther.sessions(study_id)
    assert session.ratings == {"bothersomeness": 7}
    ther.close()
    listed = therapist.get(logged.headers["location"])
    assert "Back pain bothersomeness (0-10), before the session" in listed.text
    assert "Pain intensity before" in listed.text
    row = re.search(r'<th scope="row">1</th>(.*?)</tr>', listed.text, re.S)
    assert row is not None
    assert '<td class="num">7</td>' in row.group(1)


def test_the_blinded_assessor_sees_no_arm_and_no_technique(
    world: World, client: TestClient
) -> None:
    study_id = treated(world)
    ther = world.as_("ther")
    plan = ther.treatment_plan(study_id)
    ther.log_session(study_id, world.clock.today, 40, plan.techniques[:2], ["low_back"])
    ther.close()
    browser = signed_in_as(client, "assessor")
    base = f"/participants/{study_id}"
    shown = {
        url: browser.get(url)
        for url in (
            base,
            f"{base}/visits/baseline",
            f"{base}/visits/baseline/rdq",
            f"{base}/visits/week_10/rdq",
            f"{base}/sessions",
            f"{base}/sessions/new",
            f"{base}/adverse-events",
            "/",
        )
    }
    assert shown[base].status_code == 200
    assert "not shown to your role" in shown[base].text
    assert shown[f"{base}/sessions"].status_code == 403
    assert shown[f"{base}/sessions/new"].status_code == 403
    title = world.protocol.trial.title  # names every arm, on every page: not a participant's
    for url, response in shown.items():
        text = response.text.replace(title, "")
        for word in arm_words(world) + technique_words(world):
            assert word not in text, (url, word)


def test_every_form_post_without_its_csrf_token_is_refused(
    world: World, coordinator: TestClient
) -> None:
    study_id = world.enrolled()
    world.with_baseline(study_id)
    base = f"/participants/{study_id}"
    for url in (
        f"{base}/visits/baseline/rdq",
        f"{base}/visits/baseline/rdq/edit",
        f"{base}/sessions/new",
        f"{base}/adverse-events/new",
        f"{base}/adverse-events/1/edit",
    ):
        response = coordinator.post(url, data={"reason": "x", "description": "x"})
        assert response.status_code == 403, url
        assert "Form expired" in response.text
