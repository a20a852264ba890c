"""Enrolment pages: screening, consent, enrolment, identifiers, randomization, leaving.

The workflow is done through the pages and checked through the operations; each
refusal (role, site, blinding, bad input, missing CSRF) has a test that fails when it
is broken.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from lumbar.protocol import evaluate_eligibility
from lumbar.store.schema import AuditRecord
from tests.operations.world import World, eligible_answers
from tests.web.conftest import hidden, set_password, sign_in

pytestmark = pytest.mark.integration

PAYLOAD = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def signed_in_as(client: TestClient, username: str) -> TestClient:
    set_password(client, username)
    response = sign_in(client, username)
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    return client


def csrf(client: TestClient) -> str:
    return hidden(client.get("/").text, "csrf")


def form_of(answers: dict[str, Any]) -> dict[str, str]:
    """Screening answers as a browser posts them."""
    data = {}
    for question, value in answers.items():
        if isinstance(value, bool):
            data[f"q_{question}"] = "yes" if value else "no"
        elif value is not None:
            data[f"q_{question}"] = str(value)
    return data


def status_of(world: World, reference: str, username: str = "coord") -> str:
    trial = world.as_(username)
    try:
        found = [
            view.status
            for view in trial.participants()
            if reference in (view.study_id, view.screening_number)
        ]
    finally:
        trial.close()
    assert found, f"{reference} is not listed"
    return found[0]


def listed(world: World) -> list[str]:
    """The screening numbers the SEA coordinator's operations list."""
    trial = world.as_("coord")
    try:
        return [view.screening_number for view in trial.participants()]
    finally:
        trial.close()


def screened(world: World, **answers: Any) -> str:
    trial = world.as_("coord")
    number = trial.screen("SEA", eligible_answers(world.protocol, **answers)).screening_number
    trial.close()
    return number


def actions(client: TestClient) -> list[str]:
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.db.read() as session:
        return list(session.execute(select(AuditRecord.action).order_by(AuditRecord.seq)).scalars())


def arm_words(world: World) -> set[str]:
    return {word.lower() for arm in world.protocol.arms for word in (arm.id, arm.label)}


def shows_no_arm(world: World, text: str) -> bool:
    # The trial's title, on every page, names the arms; it says nothing of anyone's.
    text = text.replace(world.protocol.trial.title, "").lower()
    return not {word for word in arm_words(world) if word in text}


# ---------------------------------------------------------------------- the workflow


def test_a_coordinator_screens_consents_enrols_identifies_randomizes_and_withdraws(
    coordinator: TestClient, world: World
) -> None:
    page = coordinator.get("/screening/new")
    assert page.status_code == 200
    assert 'value="SEA"' in page.text
    assert 'value="NYC"' not in page.text  # only the coordinator's own sites
    age = next(q for q in world.protocol.eligibility.questions if q.id == "age")
    assert age.minimum is not None
    assert age.maximum is not None
    assert f'min="{age.minimum:g}" max="{age.maximum:g}"' in page.text
    assert 'type="radio" id="q_health_plan_member-yes"' in page.text
    token = hidden(page.text, "csrf")

    answers = form_of(eligible_answers(world.protocol))
    response = coordinator.post("/screening/new", data={"csrf": token, "site": "SEA", **answers})
    assert response.status_code == 303
    number = response.headers["location"].split("/")[2]
    assert response.headers["location"] == f"/participants/{number}/screening"
    outcome = coordinator.get(response.headers["location"]).text
    assert "<strong>eligible</strong>" in outcome
    assert f'href="/participants/{number}/consent"' in outcome
    assert status_of(world, number) == "eligible"

    consent = coordinator.get(f"/participants/{number}/consent")
    assert world.clock.today.isoformat() in consent.text  # today by default
    response = coordinator.post(
        f"/participants/{number}/consent",
        data={"csrf": token, "version": "1.0", "consent_date": world.clock.today.isoformat()},
    )
    assert response.status_code == 303
    assert status_of(world, number) == "consented"

    assert (
        f'action="/participants/{number}/enrol"' in coordinator.get(f"/participants/{number}").text
    )
    response = coordinator.post(f"/participants/{number}/enrol", data={"csrf": token})
    assert response.status_code == 303
    study_id = response.headers["location"].rsplit("/", 1)[1]
    assert status_of(world, number) == "enrolled"
    assert study_id in coordinator.get(response.headers["location"]).text
    assert status_of(world, study_id) == "enrolled"

    response = coordinator.post(
        f"/participants/{study_id}/identity",
        data={"csrf": token, "name": "Ada Example", "contact": "555-0199", "birth_date": ""},
    )
    assert response.status_code == 303
    trial = world.as_("coord")
    assert trial.identity(study_id).name == "Ada Example"
    trial.close()

    world.with_baseline(study_id)
    confirm = coordinator.get(f"/participants/{study_id}/randomize")
    assert confirm.status_code == 200
    assert "cannot be undone" in confirm.text
    assert status_of(world, study_id) == "enrolled"  # looking changes nothing
    response = coordinator.post(f"/participants/{study_id}/randomize", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == f"/participants/{study_id}"
    assert status_of(world, study_id) == "randomized"
    assignment = coordinator.get(f"/participants/{study_id}/assignment")
    assert "you are blinded" in assignment.text
    assert shows_no_arm(world, assignment.text)

    response = coordinator.post(
        f"/participants/{study_id}/withdraw",
        data={
            "csrf": token,
            "kind": "lost_to_follow_up",
            "reason": "moved away",
            "effective_date": world.clock.today.isoformat(),
        },
    )
    assert response.status_code == 303
    assert status_of(world, study_id) == "lost_to_follow_up"


def test_the_participant_page_offers_the_actions_that_fit_the_status(
    coordinator: TestClient, world: World
) -> None:
    eligible = screened(world)
    page = coordinator.get(f"/participants/{eligible}").text
    assert f"/participants/{eligible}/consent" in page
    assert f"/participants/{eligible}/randomize" not in page
    study_id = world.enrolled()
    page = coordinator.get(f"/participants/{study_id}").text
    assert f"/participants/{study_id}/randomize" in page
    assert f"/participants/{study_id}/withdraw" in page
    assert f"/participants/{study_id}/consent" not in page


def test_an_unblinded_coordinator_sees_the_arm_the_operation_shows(
    client: TestClient, world: World
) -> None:
    study_id = world.randomized()
    browser = signed_in_as(client, "coord_open")
    page = browser.get(f"/participants/{study_id}/assignment")
    arm = world.protocol.arm(world.arm(study_id))
    assert arm.label in page.text


# ---------------------------------------------------------------------- screening verdicts


def test_ineligible_answers_show_every_reason(coordinator: TestClient, world: World) -> None:
    answers = eligible_answers(
        world.protocol, health_plan_member=False, nonspecific_diagnosis=False, age=19
    )
    response = coordinator.post(
        "/screening/new", data={"csrf": csrf(coordinator), "site": "SEA", **form_of(answers)}
    )
    assert response.status_code == 303
    page = coordinator.get(response.headers["location"])
    expected = evaluate_eligibility(world.protocol, answers)
    assert len(expected.reasons) >= 2
    assert "ineligible" in page.text
    for outcome in expected.reasons:
        assert html.escape(outcome.reason) in page.text


def test_unanswered_questions_are_listed_and_can_be_completed_with_a_reason(
    coordinator: TestClient, world: World
) -> None:
    answers = eligible_answers(world.protocol)
    answers.pop("near_therapist")
    response = coordinator.post(
        "/screening/new", data={"csrf": csrf(coordinator), "site": "SEA", **form_of(answers)}
    )
    number = response.headers["location"].split("/")[2]
    page = coordinator.get(f"/participants/{number}/screening")
    label = next(q.label for q in world.protocol.eligibility.questions if q.id == "near_therapist")
    assert "incomplete" in page.text
    assert html.escape(label) in page.text
    assert status_of(world, number) == "incomplete"

    refused = coordinator.post(
        f"/participants/{number}/screening",
        data={"csrf": csrf(coordinator), "q_near_therapist": "yes", "reason": " "},
    )
    assert refused.status_code == 422
    assert 'id="reason-error"' in refused.text
    assert status_of(world, number) == "incomplete"

    response = coordinator.post(
        f"/participants/{number}/screening",
        data={"csrf": csrf(coordinator), "q_near_therapist": "yes", "reason": "asked by phone"},
    )
    assert response.status_code == 303
    assert status_of(world, number) == "eligible"
    trial = world.as_("coord")
    assert trial.screening(number).answers["age"] == answers["age"]  # the rest kept
    trial.close()


# ---------------------------------------------------------------------- bad input


def test_a_number_out_of_range_re_renders_the_form_at_the_field_and_stores_nothing(
    coordinator: TestClient, world: World
) -> None:
    answers = form_of(eligible_answers(world.protocol, age=200))
    answers["q_sex"] = "female"
    response = coordinator.post(
        "/screening/new", data={"csrf": csrf(coordinator), "site": "SEA", **answers}
    )
    assert response.status_code == 422
    assert 'id="q_age-error"' in response.text
    assert 'aria-describedby="q_age-error"' in response.text
    assert 'value="200"' in response.text  # the user's input is kept
    assert 'id="q_sex-female" name="q_sex" value="female" checked' in response.text
    assert listed(world) == []


def test_a_missing_site_or_a_word_for_a_number_is_shown_at_its_field(
    coordinator: TestClient, world: World
) -> None:
    answers = form_of(eligible_answers(world.protocol))
    response = coordinator.post("/screening/new", data={"csrf": csrf(coordinator), **answers})
    assert response.status_code == 422
    assert 'id="site-error"' in response.text
    answers["q_age"] = "forty"
    response = coordinator.post(
        "/screening/new", data={"csrf": csrf(coordinator), "site": "SEA", **answers}
    )
    assert response.status_code == 422
    assert 'id="q_age-error"' in response.text
    assert listed(world) == []


def test_consent_without_a_version_or_date_is_refused_at_the_field(
    coordinator: TestClient, world: World
) -> None:
    number = screened(world)
    token = csrf(coordinator)
    response = coordinator.post(
        f"/participants/{number}/consent",
        data={"csrf": token, "version": "", "consent_date": world.clock.today.isoformat()},
    )
    assert response.status_code == 422
    assert 'id="version-error"' in response.text
    response = coordinator.post(
        f"/participants/{number}/consent", data={"csrf": token, "version": "1.0"}
    )
    assert response.status_code == 422
    assert 'id="consent_date-error"' in response.text
    future = (world.clock.today + dt.timedelta(days=3)).isoformat()
    response = coordinator.post(
        f"/participants/{number}/consent",
        data={"csrf": token, "version": "1.0", "consent_date": future},
    )
    assert response.status_code == 422
    assert 'id="consent_date-error"' in response.text
    assert status_of(world, number) == "eligible"


def test_a_withdrawal_needs_a_reason(coordinator: TestClient, world: World) -> None:
    study_id = world.enrolled()
    response = coordinator.post(
        f"/participants/{study_id}/withdraw",
        data={
            "csrf": csrf(coordinator),
            "kind": "withdrew_consent",
            "reason": "",
            "effective_date": world.clock.today.isoformat(),
        },
    )
    assert response.status_code == 422
    assert 'id="reason-error"' in response.text
    assert status_of(world, study_id) == "enrolled"


def test_randomizing_without_a_baseline_is_refused_and_changes_nothing(
    coordinator: TestClient, world: World
) -> None:
    study_id = world.enrolled()
    response = coordinator.post(
        f"/participants/{study_id}/randomize", data={"csrf": csrf(coordinator)}
    )
    assert response.status_code == 422
    assert 'class="errors"' in response.text
    assert status_of(world, study_id) == "enrolled"


# ---------------------------------------------------------------------- identifiers


def test_identifiers_are_shown_only_when_opened_and_nowhere_else(
    coordinator: TestClient, world: World
) -> None:
    study_id = world.enrolled()
    name = "Zebedee Quillfeather"
    response = coordinator.post(
        f"/participants/{study_id}/identity",
        data={"csrf": csrf(coordinator), "name": name, "contact": "", "birth_date": ""},
    )
    assert response.status_code == 303
    for path in ("/", "/participants", f"/participants/{study_id}", response.headers["location"]):
        page = coordinator.get(path)
        assert page.status_code == 200
        assert name not in page.text, path
    assert actions(coordinator).count("identity.read") == 0
    opened = coordinator.post(
        f"/participants/{study_id}/identity/open", data={"csrf": csrf(coordinator)}
    )
    assert opened.status_code == 200
    assert name in opened.text
    assert actions(coordinator)[-1] == "identity.read"  # opening is audited


def test_an_implausible_birth_date_is_refused_at_the_field(
    coordinator: TestClient, world: World
) -> None:
    study_id = world.enrolled()
    response = coordinator.post(
        f"/participants/{study_id}/identity",
        data={"csrf": csrf(coordinator), "name": "", "contact": "", "birth_date": "1800-01-01"},
    )
    assert response.status_code == 422
    assert 'id="birth_date-error"' in response.text
    assert "identity.set" not in actions(coordinator)


# ---------------------------------------------------------------------- emergency unblinding


def test_emergency_unblinding_needs_the_tick_and_shows_the_arm_to_that_user(
    coordinator: TestClient, world: World
) -> None:
    study_id = world.randomized()
    assert coordinator.get(f"/participants/{study_id}/unblind").status_code == 200
    token = csrf(coordinator)
    response = coordinator.post(
        f"/participants/{study_id}/unblind",
        data={"csrf": token, "reason": "severe reaction", "confirm": study_id},
    )
    assert response.status_code == 422
    assert 'id="understood-error"' in response.text
    assert shows_no_arm(world, response.text)
    assert "participant.unblind" not in actions(coordinator)
    response = coordinator.post(
        f"/participants/{study_id}/unblind",
        data={"csrf": token, "reason": "severe reaction", "confirm": "wrong", "understood": "yes"},
    )
    assert response.status_code == 422
    assert 'id="confirm-error"' in response.text
    assert "participant.unblind" not in actions(coordinator)
    response = coordinator.post(
        f"/participants/{study_id}/unblind",
        data={"csrf": token, "reason": "severe reaction", "confirm": study_id, "understood": "yes"},
    )
    assert response.status_code == 200
    assert world.protocol.arm(world.arm(study_id)).label in response.text
    assert actions(coordinator)[-1] == "participant.unblind"
    # The arm stays hidden from this blinded coordinator everywhere else.
    assert shows_no_arm(world, coordinator.get(f"/participants/{study_id}/assignment").text)


def test_a_user_without_the_unblinding_grant_gets_the_403_page(
    client: TestClient, world: World
) -> None:
    study_id = world.randomized()
    browser = signed_in_as(client, "coord_open")  # sees arms, but may not unblind
    assert browser.get(f"/participants/{study_id}/unblind").status_code == 403
    response = browser.post(
        f"/participants/{study_id}/unblind",
        data={"csrf": csrf(browser), "reason": "curious", "confirm": study_id, "understood": "yes"},
    )
    assert response.status_code == 403
    assert "participant.unblind" not in actions(browser)


# ---------------------------------------------------------------------- roles, sites, blinding


def participant_pages(reference: str) -> list[str]:
    return [
        f"/participants/{reference}/{page}"
        for page in (
            "screening",
            "consent",
            "identity",
            "randomize",
            "assignment",
            "withdraw",
            "unblind",
        )
    ]


def participant_posts(reference: str, today: dt.date) -> dict[str, dict[str, str]]:
    day = today.isoformat()
    return {
        f"/participants/{reference}/screening": {"q_age": "40", "reason": "typo"},
        f"/participants/{reference}/consent": {"version": "1.0", "consent_date": day},
        f"/participants/{reference}/enrol": {},
        f"/participants/{reference}/identity": {"name": "Someone"},
        f"/participants/{reference}/identity/open": {},
        f"/participants/{reference}/randomize": {},
        f"/participants/{reference}/withdraw": {
            "kind": "withdrew_consent",
            "reason": "no time",
            "effective_date": day,
        },
        f"/participants/{reference}/unblind": {
            "reason": "emergency",
            "confirm": reference,
            "understood": "yes",
        },
    }


def test_another_site_s_participant_is_not_found_on_every_page_and_post(
    client: TestClient, world: World
) -> None:
    study_id = world.randomized()
    number = screened(world)
    browser = signed_in_as(client, "coord_nyc")
    token = csrf(browser)
    before = actions(browser)
    for reference in (study_id, number, "SEA-9999"):
        for path in participant_pages(reference):
            assert browser.get(path).status_code == 404, path
        for path, data in participant_posts(reference, world.clock.today).items():
            assert browser.post(path, data={"csrf": token, **data}).status_code == 404, path
    written = actions(browser)[len(before) :]
    assert not [action for action in written if not action.startswith("session.")]


def test_the_blinded_assessor_never_sees_an_arm_on_any_enrolment_page(
    client: TestClient, world: World
) -> None:
    study_id = world.randomized()
    browser = signed_in_as(client, "assessor")
    token = csrf(browser)
    for path in [f"/participants/{study_id}", *participant_pages(study_id), "/screening/new"]:
        response = browser.get(path)
        assert shows_no_arm(world, response.text), path
    for path, data in participant_posts(study_id, world.clock.today).items():
        response = browser.post(path, data={"csrf": token, **data})
        assert response.status_code in (403, 422), path
        assert shows_no_arm(world, response.text), path


def test_a_role_that_may_not_screen_gets_the_403_page_and_nothing_is_stored(
    client: TestClient, world: World
) -> None:
    browser = signed_in_as(client, "assessor")
    assert browser.get("/screening/new").status_code == 403
    answers = form_of(eligible_answers(world.protocol))
    response = browser.post(
        "/screening/new", data={"csrf": csrf(browser), "site": "SEA", **answers}
    )
    assert response.status_code == 403
    assert "Not allowed" in response.text
    assert listed(world) == []


def test_every_post_without_the_csrf_token_is_refused(
    coordinator: TestClient, world: World
) -> None:
    study_id = world.enrolled()
    world.with_baseline(study_id)
    posts = participant_posts(study_id, world.clock.today)
    posts["/screening/new"] = {"site": "SEA", **form_of(eligible_answers(world.protocol))}
    before = actions(coordinator)
    for path, data in posts.items():
        assert coordinator.post(path, data=data).status_code == 403, path
        assert coordinator.post(path, data={"csrf": "0" * 64, **data}).status_code == 403, path
    assert actions(coordinator) == before
    assert status_of(world, study_id) == "enrolled"


# ---------------------------------------------------------------------- free text


def test_script_in_free_text_is_shown_escaped(coordinator: TestClient, world: World) -> None:
    study_id = world.randomized()
    number = screened(world)
    token = csrf(coordinator)
    future = (world.clock.today + dt.timedelta(days=5)).isoformat()
    pages = [
        coordinator.post(  # refused for the date: the form comes back with the reason
            f"/participants/{study_id}/withdraw",
            data={
                "csrf": token,
                "kind": "withdrew_consent",
                "reason": PAYLOAD,
                "effective_date": future,
            },
        ),
        coordinator.post(
            f"/participants/{study_id}/unblind",
            data={"csrf": token, "reason": PAYLOAD, "confirm": "no"},
        ),
        coordinator.post(
            f"/participants/{number}/screening",
            data={"csrf": token, "q_age": "500", "reason": PAYLOAD},
        ),
        coordinator.post(
            f"/participants/{number}/consent",
            data={"csrf": token, "version": PAYLOAD, "consent_date": future},
        ),
        coordinator.post(
            f"/participants/{study_id}/identity",
            data={"csrf": token, "name": PAYLOAD, "contact": PAYLOAD, "birth_date": "1800-01-01"},
        ),
    ]
    response = coordinator.post(
        f"/participants/{study_id}/identity",
        data={"csrf": token, "name": PAYLOAD, "contact": PAYLOAD, "birth_date": ""},
    )
    assert response.status_code == 303
    pages.append(coordinator.post(f"/participants/{study_id}/identity/open", data={"csrf": token}))
    for page in pages:
        assert ESCAPED in page.text, page.url
        assert PAYLOAD not in page.text, page.url
