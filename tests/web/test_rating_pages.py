"""A participant's rating before a session, on their phone's page, in-process: given,
changed the same day, shown as settled once the session is logged; a link that opens
nothing gets its own page; staff see the ratings on the participant's sessions page."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from markupsafe import escape

from lumbar.messages import MESSAGES, Catalogue
from lumbar.web.app import create_app
from lumbar.web.survey import FAILED_LOOKUP_LIMIT
from tests.operations.test_session_ratings import log, treated
from tests.operations.world import World
from tests.web.conftest import CHEAP, hidden, set_password, sign_in

pytestmark = pytest.mark.integration

ENGLISH = Catalogue.load()


def shown(key: str, **values: object) -> str:
    """An English text as the page's HTML has it."""
    return str(escape(ENGLISH.text(key, **values)))


@pytest.fixture
def phone(world: World) -> Iterator[TestClient]:
    """A client with no staff session: what a participant's phone is."""
    app = create_app(world.url, key_file=world.key_file, clock=world.clock, password_hasher=CHEAP)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def rating_link(world: World) -> tuple[str, str]:
    study_id = treated(world)
    return study_id, world.as_("ther").issue_rating_link(study_id).token


def test_a_participant_rates_changes_it_the_same_day_and_sees_it_settled_after_the_session(
    world: World, phone: TestClient
) -> None:
    study_id, token = rating_link(world)
    page = phone.get(f"/rate/{token}")
    assert page.status_code == 200
    text = page.text
    assert shown("rating.intro") in text
    assert "<script" not in text.lower()
    assert len(re.findall(r'name="rating_bothersomeness"', text)) == 11  # 0 to 10, to tap
    assert study_id not in text
    assert world.arm(study_id) not in text.lower()

    sent = phone.post(
        f"/rate/{token}", data={"rating_bothersomeness": "6", "rating_pain_intensity": "5"}
    )
    assert (sent.status_code, sent.headers["location"]) == (303, f"/rate/{token}")
    again = phone.get(f"/rate/{token}").text
    assert shown("rating.given", day=world.clock.today.isoformat()) in again
    assert 'value="6" checked' in again
    phone.post(f"/rate/{token}", data={"rating_bothersomeness": "3", "rating_pain_intensity": "2"})
    (given,) = world.as_("ther").given_ratings(study_id)
    assert dict(given.ratings) == {"bothersomeness": 3, "pain_intensity": 2}

    log(world, study_id, None)
    settled = phone.get(f"/rate/{token}").text
    assert shown("rating.logged") in settled
    assert "<form" not in settled
    late = phone.post(f"/rate/{token}", data={"rating_bothersomeness": "9"})
    assert late.status_code == 422
    (session,) = world.as_("ther").sessions(study_id)
    assert dict(session.ratings) == {"bothersomeness": 3, "pain_intensity": 2}


def test_a_refused_rating_is_marked_and_nothing_is_stored(world: World, phone: TestClient) -> None:
    study_id, token = rating_link(world)
    nothing = phone.post(f"/rate/{token}", data={})
    assert nothing.status_code == 422
    assert shown("rating.problems") in nothing.text
    bad = phone.post(f"/rate/{token}", data={"rating_bothersomeness": "12"})
    assert bad.status_code == 422
    assert 'id="error-bothersomeness"' in bad.text
    assert world.as_("ther").given_ratings(study_id) == []


def test_a_forged_revoked_or_expired_link_gets_a_page_saying_so(
    world: World, phone: TestClient
) -> None:
    study_id, token = rating_link(world)
    forged = phone.get("/rate/lmr_" + "A" * 43)
    assert forged.status_code == 404
    assert shown("rating.refused.forged") in forged.text
    assert phone.get(f"/survey/{token}").status_code == 404  # a rating link is no survey link

    world.as_("ther").issue_rating_link(study_id)  # the first is revoked
    revoked = phone.post(f"/rate/{token}", data={"rating_bothersomeness": "4"})
    assert revoked.status_code == 410
    assert shown("rating.refused.revoked") in revoked.text
    assert world.as_("ther").given_ratings(study_id) == []

    _, fresh = rating_link(world)
    world.clock.advance(200)
    expired = phone.get(f"/rate/{fresh}")
    assert expired.status_code == 410
    assert "Your treatment period ended on" in expired.text


def test_the_rating_page_speaks_the_servers_catalogue(world: World, tmp_path: Path) -> None:
    english = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    other = {key: f"[xx] {text}" for key, text in english.items()} | {"language": "xx"}
    catalogue = tmp_path / "xx.yaml"
    catalogue.write_text(yaml.safe_dump(other, allow_unicode=True), encoding="utf-8")
    _, token = rating_link(world)
    app = create_app(
        world.url, key_file=world.key_file, clock=world.clock, password_hasher=CHEAP,
        messages=catalogue,
    )  # fmt: skip
    with TestClient(app) as client:
        text = client.get(f"/rate/{token}").text
    assert '<html lang="xx">' in text
    assert str(escape("[xx] " + english["rating.intro"])) in text


def test_staff_who_see_sessions_see_the_phones_ratings_pending_and_attached(
    world: World, client: TestClient
) -> None:
    study_id, token = rating_link(world)
    client.post(f"/rate/{token}", data={"rating_bothersomeness": "6"})
    world.clock.advance(1)
    client.post(f"/rate/{token}", data={"rating_bothersomeness": "4"})
    log(world, study_id, None)
    set_password(client, "ther")
    assert sign_in(client, "ther").status_code == 303  # type: ignore[attr-defined]
    page = client.get(f"/participants/{study_id}/sessions")
    assert page.status_code == 200
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(\d{4}-\d\d-\d\d)</th>(.*?)</tr>", page.text, re.S)
    statuses = {day: ("pending" in row, "attached" in row) for day, row in rows}
    yesterday = (world.clock.today - dt.timedelta(days=1)).isoformat()
    assert statuses == {yesterday: (True, False), world.clock.today.isoformat(): (False, True)}
    assert "Session-rating link lmr_" in page.text
    summary = client.get(f"/participants/{study_id}").text
    assert "phone: 2, of them 1 pending" in summary

    client.cookies.clear()
    set_password(client, "coord")
    assert sign_in(client, "coord").status_code == 303  # type: ignore[attr-defined]
    blinded = client.get(f"/participants/{study_id}/sessions")
    assert blinded.status_code == 403
    assert "pending" not in blinded.text


def test_a_therapist_issues_and_revokes_the_link_on_the_sessions_page(
    world: World, client: TestClient
) -> None:
    study_id = treated(world)
    set_password(client, "ther")
    assert sign_in(client, "ther").status_code == 303  # type: ignore[attr-defined]
    sessions = client.get(f"/participants/{study_id}/sessions").text
    assert "Issue a session-rating link" in sessions
    csrf = hidden(sessions, "csrf")
    path = f"/participants/{study_id}/sessions/rating-link"
    assert client.post(path, data={"action": "issue"}).status_code == 403  # no CSRF token
    issued = client.post(path, data={"csrf": csrf, "action": "issue"})
    assert issued.status_code == 200
    (address,) = re.findall(r"http://testserver/rate/(lmr_[\w-]+)", issued.text)
    assert client.get(f"/rate/{address}").status_code == 200  # the participant's page opens
    listed = client.get(f"/participants/{study_id}/sessions").text
    assert address not in listed  # shown once, never again
    assert address[:12] in listed
    revoked = client.post(path, data={"csrf": csrf, "action": "revoke"})
    assert revoked.status_code == 303
    assert client.get(f"/rate/{address}").status_code == 410
    assert [link.status for link in world.as_("ther").rating_links(study_id)] == ["revoked"]


def test_forged_rating_links_count_toward_the_same_limit_as_survey_links(
    world: World, phone: TestClient
) -> None:
    _, token = rating_link(world)
    for number in range(FAILED_LOOKUP_LIMIT):
        forged = "/rate/lmr_" + f"{number:043d}" if number % 2 else "/survey/lms_" + "B" * 43
        assert phone.get(forged).status_code == 404
    limited = phone.get(f"/rate/{token}")  # even a genuine link, from this address, for now
    assert limited.status_code == 429
    assert limited.headers["Retry-After"]
