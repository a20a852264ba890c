"""A participant's survey pages, in-process: each screen saves, the review submits once,
and a link that opens nothing gets its own page and changes nothing."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from lumbar.errors import LumbarError
from lumbar.instruments import INSTRUMENTS
from lumbar.messages import MESSAGES, Catalogue
from lumbar.web.app import create_app
from lumbar.web.survey import FAILED_LOOKUP_LIMIT
from tests.operations.world import World, answers_for, rdq_answers
from tests.web.conftest import CHEAP

ENGLISH = Catalogue.load()


@pytest.fixture
def participant(world: World) -> Iterator[TestClient]:
    """A client with no staff session: what a participant's phone is."""
    app = create_app(world.url, key_file=world.key_file, clock=world.clock, password_hasher=CHEAP)
    with TestClient(app, follow_redirects=False) as phone:
        yield phone


def link(world: World, visit: str = "week_10", study_id: str | None = None) -> tuple[str, str]:
    """(study id, token) of a new link; for week 10, the clock is moved into its window."""
    study_id = study_id or world.randomized()
    coord = world.as_("coord")
    window = next(s for s in coord.schedule(study_id) if s.visit == visit)
    if visit == "week_10" and world.clock.today < window.opens:
        world.clock.advance((window.target - world.clock.today).days)
    return study_id, coord.issue_survey_token(study_id, visit).token


def _days(count: int) -> dt.timedelta:
    return dt.timedelta(days=count)


def form_of(instrument: str, answers: dict[str, Any]) -> dict[str, str]:
    return {
        f"answer_{item}": "" if value is None else str(value) for item, value in answers.items()
    }


def visit_answers(world: World, visit: str = "week_10") -> dict[str, dict[str, Any]]:
    return {
        instrument: rdq_answers(4) if instrument == "rdq" else answers_for(instrument, 1)
        for instrument in world.protocol.visit(visit).instruments
    }


def answer_all(phone: TestClient, world: World, token: str) -> list[str]:
    """Every screen answered in turn; the pages' HTML seen on the way."""
    pages = [phone.get(f"/survey/{token}").text]
    for instrument, answers in visit_answers(world).items():
        pages.append(phone.get(f"/survey/{token}/{instrument}").text)
        saved = phone.post(f"/survey/{token}/{instrument}", data=form_of(instrument, answers))
        assert saved.status_code == 303, saved.text
    review = phone.get(f"/survey/{token}/review")
    assert review.status_code == 200
    pages.append(review.text)
    return pages


def statuses(world: World, study_id: str, visit: str = "week_10") -> str:
    return next(s.status for s in world.as_("coord").schedule(study_id) if s.visit == visit)


def test_a_participant_answers_screen_by_screen_reviews_and_submits_once(
    world: World, participant: TestClient
) -> None:
    study_id, token = link(world)
    start = participant.get(f"/survey/{token}")
    assert start.status_code == 200
    assert ENGLISH.text("start.begin") in start.text
    assert ENGLISH.text("synthetic") not in start.text  # a real trial's pages say nothing
    for instrument in world.protocol.visit("week_10").instruments:
        assert INSTRUMENTS.get(instrument).title in start.text
    first = participant.get(f"/survey/{token}/rdq")
    assert ENGLISH.text("progress", number=1, total=7) in first.text
    saved = participant.post(f"/survey/{token}/rdq", data=form_of("rdq", rdq_answers(4)))
    assert saved.headers["location"] == f"/survey/{token}/bothersomeness"
    answer_all(participant, world, token)
    review = participant.get(f"/survey/{token}/review")
    assert ENGLISH.text("review.send") in review.text
    assert statuses(world, study_id) != "complete"

    sent = participant.post(f"/survey/{token}/submit")
    assert (sent.status_code, sent.headers["location"]) == (303, "/survey/thanks")
    assert ENGLISH.text("thanks.body") in participant.get("/survey/thanks").text
    assert statuses(world, study_id) == "complete"
    again = participant.post(f"/survey/{token}/submit")
    assert again.status_code == 410
    assert ENGLISH.text("refused.used") in again.text
    recorded = world.as_("coord").questionnaires(study_id)
    assert len([q for q in recorded if q.visit == "week_10"]) == 7  # stored once


def test_answers_saved_so_far_come_back_with_the_same_link(
    world: World, participant: TestClient
) -> None:
    _, token = link(world)
    participant.post(f"/survey/{token}/rdq", data=form_of("rdq", rdq_answers(3)))
    participant.post(f"/survey/{token}/bothersomeness", data={"answer_bothersomeness": "6"})
    start = participant.get(f"/survey/{token}")
    assert ENGLISH.text("start.continue") in start.text
    assert f'href="/survey/{token}/satisfaction"' in start.text
    back = participant.get(f"/survey/{token}/bothersomeness").text
    assert re.search(r'value="6" checked', back)
    rdq = participant.get(f"/survey/{token}/rdq").text
    assert len(re.findall(r'value="1" checked', rdq)) == 3
    review = participant.get(f"/survey/{token}/review").text
    assert ENGLISH.text("review.missing") in review
    assert ENGLISH.text("review.send") not in review
    unfinished = participant.post(f"/survey/{token}/submit")
    assert unfinished.headers["location"] == f"/survey/{token}/review"


def test_an_out_of_range_answer_is_shown_at_its_item_and_nothing_is_saved(
    world: World, participant: TestClient
) -> None:
    _, token = link(world)
    refused = participant.post(
        f"/survey/{token}/disability_days",
        data={"answer_restricted_days": "40", "answer_bed_days": "2"},
    )
    assert refused.status_code == 422
    html = refused.text
    assert 'id="error-restricted_days"' in html
    assert 'id="error-bed_days"' not in html
    assert re.search(r'aria-describedby="error-restricted_days[^"]*"[^>]*aria-invalid="true"', html)
    assert 'href="#item-restricted_days"' in html
    assert 'value="40"' in html  # what they typed stays, to correct
    assert 'value="40"' not in participant.get(f"/survey/{token}/disability_days").text


def _refusal(phone: TestClient, token: str, key: str, status: int, **values: str) -> None:
    message = ENGLISH.text(f"refused.{key}", **values)
    for response in (
        phone.get(f"/survey/{token}"),
        phone.get(f"/survey/{token}/rdq"),
        phone.post(f"/survey/{token}/rdq", data=form_of("rdq", rdq_answers(2))),
        phone.post(f"/survey/{token}/submit"),
    ):
        assert response.status_code == status, (key, response.text)
        assert message in response.text


def test_each_link_that_opens_nothing_has_its_page_and_changes_nothing(
    world: World, participant: TestClient
) -> None:
    study_id, token = link(world)
    _refusal(participant, "lms_" + "A" * 43, "forged", 404)
    _refusal(participant, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "forged", 404)

    _, replacing = link(world, study_id=study_id)
    _refusal(participant, token, "revoked", 410)
    assert participant.get(f"/survey/{replacing}/rdq").status_code == 200
    answer_all(participant, world, replacing)
    participant.post(f"/survey/{replacing}/submit")
    _refusal(participant, replacing, "used", 410)

    early = world.as_("coord").issue_survey_token(study_id, "week_26")
    opens = next(s.opens for s in world.as_("coord").schedule(study_id) if s.visit == "week_26")
    _refusal(participant, early.token, "not_open", 403, day=opens.isoformat())
    closes = next(s.closes for s in world.as_("coord").schedule(study_id) if s.visit == "week_26")
    world.clock.advance((closes - world.clock.today).days + 1)
    _refusal(participant, early.token, "expired", 410, day=(closes + _days(1)).isoformat())
    assert statuses(world, study_id, "week_26") == "missed"

    other, open_link = link(world, "week_10")
    world.as_("coord").withdraw(other, "withdrew_consent", "moved away", world.clock.today)
    _refusal(participant, open_link, "closed", 410)
    assert [q for q in world.as_("coord").questionnaires(other) if q.visit == "week_10"] == []


def test_guessing_links_is_rate_limited_per_address(world: World, participant: TestClient) -> None:
    _, token = link(world)
    for attempt in range(FAILED_LOOKUP_LIMIT):
        assert participant.get(f"/survey/lms_{attempt:043d}").status_code == 404
    blocked = participant.get(f"/survey/lms_{'9' * 43}")
    assert blocked.status_code == 429
    assert ENGLISH.text("refused.too_many") in blocked.text
    assert blocked.headers["retry-after"]
    assert participant.get(f"/survey/{token}").status_code == 429  # no lookup at all
    world.clock.advance(1)
    assert participant.get(f"/survey/{token}").status_code == 200


def test_no_participant_page_shows_an_arm_another_participant_or_a_staff_link(
    world: World, participant: TestClient
) -> None:
    others = [world.randomized() for _ in range(2)]
    study_id, token = link(world)
    pages = answer_all(participant, world, token)
    refused = participant.post(
        f"/survey/{token}/bothersomeness", data={"answer_bothersomeness": "11"}
    )
    pages.append(refused.text)
    participant.post(f"/survey/{token}/submit")
    pages.append(participant.get("/survey/thanks").text)
    pages.append(participant.get(f"/survey/{token}").text)
    words = {"group a", "group b", "group c"}
    for arm in world.protocol.arms:
        words |= {arm.id.lower(), arm.label.lower(), *(t.lower() for t in arm.techniques)}
    for html in pages:
        text = html.lower()
        assert not {word for word in words if word in text}
        assert study_id not in html
        assert not [other for other in others if other in html]
        links = re.findall(r'(?:href|action)="([^"]*)"', html)
        assert all(url.startswith(("/survey/", "/static/survey.css", "#")) for url in links), links
        assert "<script" not in text


def test_a_second_language_is_a_catalogue_file_and_wording_a_wording_file(
    world: World, tmp_path: Path
) -> None:
    english = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    other = {key: f"[xx] {text}" for key, text in english.items()} | {"language": "xx"}
    catalogue = tmp_path / "xx.yaml"
    catalogue.write_text(yaml.safe_dump(other, allow_unicode=True), encoding="utf-8")
    items = "".join(f"  {item.id}: Licensed {item.id}\n" for item in INSTRUMENTS.get("rdq").items)
    wording = tmp_path / "rdq-wording.yaml"
    wording.write_text(
        f"lumbar_wording: 1\ninstrument: rdq\nlanguage: en\nsource: licensed\nitems:\n{items}",
        encoding="utf-8",
    )
    _, token = link(world)
    app = create_app(
        world.url,
        key_file=world.key_file,
        clock=world.clock,
        password_hasher=CHEAP,
        messages=catalogue,
        wording=[wording],
    )
    with TestClient(app) as phone:
        start = phone.get(f"/survey/{token}").text
        assert '<html lang="xx">' in start
        assert "[xx] " + english["start.begin"] in start
        assert "Licensed rdq_05" in phone.get(f"/survey/{token}/rdq").text

    catalogue.write_text(yaml.safe_dump({"language": "xx", "nonsense": "x"}), encoding="utf-8")
    with pytest.raises(LumbarError, match="does not match") as refused:
        Catalogue.load(catalogue)
    assert {problem.received for problem in refused.value.problems} >= {"start.begin", "nonsense"}
