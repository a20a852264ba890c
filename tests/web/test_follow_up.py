"""The staff side of participants' follow-up: the follow-up page, a participant's survey
links (issued and shown once, revoked after asking) and their message history."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lumbar.operations.transports import FileTransport
from lumbar.web.app import SurveyTokenFilter, server_log_config
from tests.operations.world import World, answers_for, rdq_answers
from tests.web.conftest import hidden, set_password, sign_in
from tests.web.test_api import API, bearer, token

pytestmark = pytest.mark.integration


def _post(client: TestClient, url: str, **data: str) -> object:
    token = hidden(client.get("/").text, "csrf")
    return client.post(url, data={"csrf": token, **data})


def _complete(world: World, study_id: str, visit: str) -> None:
    trial = world.as_("coord" if study_id.startswith("SEA") else "coord_nyc")
    answers = {
        instrument: rdq_answers(4) if instrument == "rdq" else answers_for(instrument, 1)
        for instrument in world.protocol.visit(visit).instruments
    }
    trial.record_visit(study_id, visit, answers, completed_on=world.clock.today)
    trial.close()


def _as(client: TestClient, user: str) -> TestClient:
    """``client`` signed in as ``user`` now (a session ends when the test clock jumps)."""
    client.cookies.clear()
    set_password(client, user)
    assert sign_in(client, user).status_code == 303  # type: ignore[attr-defined]
    return client


def _main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def _arm_words(world: World) -> set[str]:
    """Arm ids, labels and the techniques only one arm uses (as tests/web/test_access.py)."""
    words: set[str] = set()
    for arm in world.protocol.arms:
        words |= {arm.id.lower(), arm.label.lower()}
        others = {t for a in world.protocol.arms if a.id != arm.id for t in a.techniques}
        words |= {t.lower() for t in set(arm.techniques) - others}
    return words


def test_the_follow_up_page_shows_completion_by_site_and_arms_only_to_the_unblinded(
    client: TestClient, world: World
) -> None:
    first, _second = world.randomized("SEA"), world.randomized("SEA")
    world.randomized("NYC", coordinator="coord_nyc")
    world.clock.advance(70)  # week 10's window opened on day 63
    _complete(world, first, "week_10")
    set_password(client, "coord")
    assert sign_in(client, "coord").status_code == 303  # type: ignore[attr-defined]
    main = _main(client.get("/follow-up").text)
    # Seattle: 1 complete of 2 due; New York is not the coordinator's site.
    assert '<td class="num"><span class="rate">50.0%</span> (1 of 2)</td>' in main
    assert ">SEA<" in main
    assert ">NYC<" not in main
    assert "you are blinded" in main
    revealed = {word for word in _arm_words(world) if word in main.lower()}
    assert not revealed
    assert 'href="/follow-up"' in client.get("/").text  # linked from the dashboard and nav
    client.cookies.clear()
    set_password(client, "coord_open")
    assert sign_in(client, "coord_open").status_code == 303  # type: ignore[attr-defined]
    main = _main(client.get("/follow-up").text)
    assert "By arm" in main
    assert all(arm.label in main for arm in world.protocol.arms)
    assert client.get("/follow-up?within=1000").status_code == 422


def test_a_new_link_is_shown_once_and_the_participant_page_lists_only_its_prefix(
    client: TestClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    study_id = world.randomized("SEA")
    world.clock.advance(64)
    coordinator = _as(client, "coord")
    page = coordinator.get(f"/participants/{study_id}").text
    assert "No survey link has been sent" in page
    assert f'action="/participants/{study_id}/invitations/week_10"' in page
    response = coordinator.post(f"/participants/{study_id}/invitations/week_10", data={})
    assert response.status_code == 403  # no CSRF token: nothing issued
    response = _post(coordinator, f"/participants/{study_id}/invitations/week_10")
    assert response.status_code == 200  # type: ignore[attr-defined]
    shown = response.text  # type: ignore[attr-defined]
    assert "Shown once" in shown
    found = re.search(r'value="(http://testserver/survey/(lms_[A-Za-z0-9_-]+))"', shown)
    assert found is not None
    url, token = found.groups()
    assert token not in str(response.url)  # type: ignore[attr-defined]
    page = coordinator.get(f"/participants/{study_id}").text
    assert token not in page
    assert token[:8] in page  # its prefix, as the list of links names it
    assert ">sent<" in page
    assert "replaces" in page  # issuing again replaces the live link
    assert coordinator.get(url.removeprefix("http://testserver")).status_code == 200
    page = coordinator.get(f"/participants/{study_id}").text
    assert ">opened<" in page
    # Issuing again revokes the first link: two rows, the first revoked.
    again = _post(coordinator, f"/participants/{study_id}/invitations/week_10")
    assert again.status_code == 200  # type: ignore[attr-defined]
    page = coordinator.get(f"/participants/{study_id}").text
    assert ">revoked<" in page
    assert token not in coordinator.get("/follow-up").text
    # Nowhere kept but in the page that showed it: not in the server's log (the test
    # client's own log of the link it opened is the participant's side), not in the audit.
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert caplog.records
    assert not [message for message in server_side if token in message]
    audit = world.as_("admin").audit_records(limit=500)
    assert "survey_token.issue" in repr(audit)
    assert token not in repr(audit)


def test_revoking_a_link_asks_first_and_refusals_show_at_the_form(
    client: TestClient, world: World
) -> None:
    study_id = world.randomized("SEA")
    waiting = world.enrolled("SEA")
    world.clock.advance(64)
    coordinator = _as(client, "coord")
    assert _post(coordinator, f"/participants/{study_id}/invitations/week_10").status_code == 200  # type: ignore[attr-defined]
    confirm = coordinator.get(f"/participants/{study_id}/invitations/week_10/revoke")
    assert confirm.status_code == 200
    assert "Revoke the link" in confirm.text
    done = _post(coordinator, f"/participants/{study_id}/invitations/week_10/revoke")
    assert done.status_code == 303  # type: ignore[attr-defined]
    assert done.headers["location"] == f"/participants/{study_id}?revoked=week_10"  # type: ignore[attr-defined]
    page = coordinator.get(done.headers["location"]).text  # type: ignore[attr-defined]
    assert "is revoked" in page
    assert ">revoked<" in page
    again = _post(coordinator, f"/participants/{study_id}/invitations/week_10/revoke")
    assert again.status_code == 422  # type: ignore[attr-defined]
    assert "the participant has no unused link to it" in again.text  # type: ignore[attr-defined]
    # Not randomized: shown at the participant page's form, nothing issued.
    refused = _post(coordinator, f"/participants/{waiting}/invitations/week_10")
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert "is not randomized yet" in refused.text  # type: ignore[attr-defined]
    # The window closed (day 92 > day 91).
    world.clock.advance(28)
    coordinator = _as(client, "coord")
    closed = _post(coordinator, f"/participants/{study_id}/invitations/week_10")
    assert closed.status_code == 422  # type: ignore[attr-defined]
    assert 'id="invite-week_10-visit-error"' in closed.text  # type: ignore[attr-defined]
    assert "its window closed on" in closed.text  # type: ignore[attr-defined]
    # Another site's participant is unknown.
    new_york = world.randomized("NYC", coordinator="coord_nyc")
    assert _post(coordinator, f"/participants/{new_york}/invitations/week_26").status_code == 404  # type: ignore[attr-defined]
    # A therapist may not issue links and is not offered them.
    coordinator = _as(client, "ther")
    page = coordinator.get(f"/participants/{study_id}").text
    assert "Survey links are not shown to your role" in page
    assert _post(coordinator, f"/participants/{study_id}/invitations/week_26").status_code == 403  # type: ignore[attr-defined]


def test_the_message_history_shows_each_message_without_its_address_or_link(
    client: TestClient, world: World, tmp_path: Path
) -> None:
    study_id = world.randomized("SEA")
    admin = world.as_("admin")
    admin.record_identity(study_id, contact="jane.doe@example.org")
    world.clock.advance(70)  # the invitation (day 63) and the first reminder (day 70) are due
    admin.send_messages(FileTransport(tmp_path / "out"), link_base="https://t.example/s/")
    admin.close()
    coordinator = _as(client, "coord")
    (sent,) = [json.loads(line) for line in (tmp_path / "out" / "messages.jsonl").open()]
    token = sent["text"].split("https://t.example/s/", 1)[1].split()[0]
    page = coordinator.get(f"/participants/{study_id}").text
    history = page.split('id="message-history"', 1)[1]
    assert "<td>invitation</td>" in history
    assert "<td>reminder 1</td>" in history
    assert "<td>last reminder</td>" in history
    assert "<td>e-mail</td>" in history
    assert "not sent: a later message is due" in history  # the invitation, overtaken
    assert "<td>sent</td>" in history
    assert "<td>waiting</td>" in history  # reminder 2 and the last
    assert "jane.doe" not in page
    assert "example.org" not in page
    assert token not in page


def test_the_api_gives_the_follow_up_numbers_and_arms_only_to_the_unblinded(
    client: TestClient, world: World
) -> None:
    first = world.randomized("SEA")
    world.randomized("SEA")
    world.randomized("NYC", coordinator="coord_nyc")
    world.clock.advance(70)
    _complete(world, first, "week_10")
    blinded = client.get(f"{API}/follow-up", headers=bearer(token(client, "coord")))
    assert blinded.status_code == 200, blinded.text
    body = blinded.json()
    assert body["by_arm"] is None
    assert body["completion"][0] == {
        "visit": "week_10",
        "group": "all",
        "label": "All sites",
        "due": 2,  # Seattle's two: the coordinator's site only
        "complete": 1,
        "rate": 0.5,
    }
    assert [row["group"] for row in body["by_site"]] == ["SEA"] * 3
    text = blinded.text.lower().replace(world.protocol.trial.title.lower(), "")
    assert not {word for word in _arm_words(world) if word in text}
    unblinded = client.get(f"{API}/follow-up?within=30", headers=bearer(token(client, "stat_open")))
    body = unblinded.json()
    assert body["closing_within"] == 30
    assert {row["group"] for row in body["by_arm"]} == {arm.id for arm in world.protocol.arms}
    assert sum(row["due"] for row in body["by_arm"] if row["visit"] == "week_10") == 3
    # 21 days left in week 10's window: within 30, everyone not complete is listed.
    assert len(body["to_call"]) == 2
    assert {row["days_left"] for row in body["to_call"]} == {21}


def test_the_server_s_access_log_names_a_survey_link_by_its_prefix_only() -> None:
    token = "lms_" + "AbCdEfGh" + "x" * 35
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/survey/{token}/rdq", "1.1", 200), None,
    )  # fmt: skip
    assert SurveyTokenFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /survey/lms_AbCdEfGh.../rdq HTTP/1.1" 200'
    config = server_log_config()
    assert config["filters"]["survey_tokens"]["()"] == "lumbar.web.app.SurveyTokenFilter"
    assert all("survey_tokens" in handler["filters"] for handler in config["handlers"].values())
