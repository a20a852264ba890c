"""Per-session ratings: the 0-10 ratings given before a treatment session, checked
against the protocol's ``session_rating``, stored with the session and read back with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from lumbar.errors import AccessError, OperationError
from lumbar.protocol import Protocol, shipped_protocol
from lumbar.store.database import Database
from tests.operations.world import World, build_world

pytestmark = pytest.mark.integration


def treated(world: World) -> str:
    """A participant randomized to an arm with sessions (the list decides which arm)."""
    for _ in range(10):
        study_id = world.randomized()
        if world.protocol.arm(world.arm(study_id)).sessions.planned:
            return study_id
    raise AssertionError("ten participants in a row without sessions")


def log(world: World, study_id: str, ratings: dict[str, int] | None) -> int:
    technique = world.protocol.arm(world.arm(study_id)).techniques[0]
    return world.as_("ther").log_session(
        study_id, world.clock.today, 60, [technique], ["low_back"], ratings=ratings
    )


def session_count(world: World) -> int:
    database = Database(world.url)
    try:
        with database.read() as session:
            return int(session.execute(text("SELECT count(*) FROM treatment_session")).scalar_one())
    finally:
        database.dispose()


def test_ratings_are_stored_with_their_session_and_read_back_in_order(world: World) -> None:
    study_id = treated(world)
    assert log(world, study_id, {"bothersomeness": 7, "pain_intensity": 6}) == 1
    world.clock.advance(7)
    assert log(world, study_id, {"bothersomeness": 4}) == 2  # pain left out: not required
    world.clock.advance(7)
    assert log(world, study_id, None) == 3
    ther = world.as_("ther")
    sessions = ther.sessions(study_id)
    assert [dict(s.ratings) for s in sessions] == [
        {"bothersomeness": 7, "pain_intensity": 6},
        {"bothersomeness": 4},
        {},
    ]
    plan = ther.treatment_plan(study_id)
    assert plan.ratings == ("bothersomeness", "pain_intensity")
    assert plan.ratings_required is False
    table = world.as_("stat_open").sessions_table()
    assert list(table["rating_bothersomeness"].iloc[:2]) == [7, 4]
    assert table["rating_bothersomeness"].isna().iloc[2]
    assert table["rating_pain_intensity"].iloc[0] == 6
    assert table["rating_pain_intensity"].isna().iloc[1]


@pytest.mark.parametrize(
    ("ratings", "where", "rule"),
    [
        ({"bothersomeness": 11}, "rating_bothersomeness", "from 0 to 10"),
        ({"pain_intensity": -1}, "rating_pain_intensity", "from 0 to 10"),
        ({"rdq": 3}, "rating_rdq", "not a rating the protocol asks"),
    ],
)
def test_a_rating_out_of_range_or_undeclared_is_refused_at_its_field_and_nothing_is_stored(
    world: World, ratings: dict[str, int], where: str, rule: str
) -> None:
    study_id = treated(world)
    with pytest.raises(OperationError) as caught:
        log(world, study_id, {"bothersomeness": 5, **ratings})
    (problem,) = caught.value.problems
    assert problem.where == where
    assert rule in problem.rule
    assert session_count(world) == 0
    assert world.as_("ther").sessions(study_id) == []


def test_ratings_are_required_when_the_protocol_says_so(database_url: str, tmp_path: Path) -> None:
    data = shipped_protocol("massage-clbp").model_dump(mode="json", by_alias=True)
    data["session_rating"]["required"] = True
    world = build_world(database_url, tmp_path, protocol=Protocol.model_validate(data))
    study_id = treated(world)
    with pytest.raises(OperationError) as caught:
        log(world, study_id, {"bothersomeness": 5})
    assert [p.where for p in caught.value.problems] == ["rating_pain_intensity"]
    assert "required" in caught.value.problems[0].rule
    assert log(world, study_id, {"bothersomeness": 5, "pain_intensity": 0}) == 1


def test_without_a_declared_rating_any_rating_is_refused(database_url: str, tmp_path: Path) -> None:
    data = shipped_protocol("massage-clbp").model_dump(mode="json", by_alias=True)
    del data["session_rating"]
    world = build_world(database_url, tmp_path, protocol=Protocol.model_validate(data))
    study_id = treated(world)
    with pytest.raises(OperationError, match="not logged") as caught:
        log(world, study_id, {"bothersomeness": 5})
    assert caught.value.problems[0].hint == "the protocol's ratings are: none"
    assert log(world, study_id, None) == 1
    assert world.as_("ther").sessions(study_id)[0].ratings == {}
    assert "rating_bothersomeness" not in world.as_("stat_open").sessions_table().columns


def test_the_database_refuses_a_rating_out_of_range(world: World) -> None:
    study_id = treated(world)
    log(world, study_id, {"bothersomeness": 3})
    database = Database(world.url)
    try:
        with database.engine.begin() as connection:
            connection.info["lumbar_write"] = True
            with pytest.raises(IntegrityError, match=r"(?i)check"):
                connection.execute(text("UPDATE session_rating SET value = 11"))
    finally:
        database.dispose()


def test_ratings_are_read_by_unblinded_users_only(world: World) -> None:
    study_id = treated(world)
    log(world, study_id, {"bothersomeness": 3})
    with pytest.raises(AccessError, match="blinded"):
        world.as_("stat").sessions(study_id)
    with pytest.raises(AccessError, match="may not see treatment sessions"):
        world.as_("assessor").sessions(study_id)
