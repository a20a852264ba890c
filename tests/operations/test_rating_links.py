"""A participant's rating before each session, given on their own phone: the link, the
pending rating, its attachment to the day's session, and who may see and issue what."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lumbar.errors import AccessError, LumbarError, OperationError
from lumbar.operations import Context, Principal, Trial
from lumbar.operations.authentication import (
    SurveyLinkRefusedError,
    authenticate_rating_link,
    authenticate_survey,
)
from lumbar.operations.context import utc_now
from lumbar.operations.ratings import SessionRatingForm
from lumbar.protocol import Protocol, shipped_protocol
from lumbar.store.schema import AuditRecord, GivenRating
from tests.clitools import Cli
from tests.operations.test_authentication import CHEAP, everything
from tests.operations.test_session_ratings import log, treated
from tests.operations.world import World, build_world

pytestmark = pytest.mark.integration


@pytest.fixture
def context(world: World) -> Iterator[Context]:
    opened = Context.open(
        world.url, key_file=world.key_file, clock=world.clock, password_hasher=CHEAP
    )
    yield opened
    opened.close()


def usual_care(world: World) -> str:
    """A participant randomized to the arm without sessions."""
    for _ in range(20):
        study_id = world.randomized()
        if world.protocol.arm(world.arm(study_id)).sessions.planned == 0:
            return study_id
    raise AssertionError("twenty participants in a row with sessions")


def phone(context: Context, token: str) -> SessionRatingForm:
    return SessionRatingForm(context, authenticate_rating_link(context, token))


def actions(context: Context, prefix: str) -> list[str]:
    with context.db.read() as session:
        return list(
            session.execute(
                select(AuditRecord.action)
                .where(AuditRecord.action.like(prefix + "%"))
                .order_by(AuditRecord.seq)
            ).scalars()
        )


def test_a_rating_given_on_the_phone_is_pending_then_attached_to_the_days_session(
    world: World, context: Context
) -> None:
    study_id = treated(world)
    link = world.as_("ther").issue_rating_link(study_id)
    assert link.token.startswith("lmr_")
    assert link.token not in everything(context)  # only its digest is kept
    form = phone(context, link.token)
    assert form.open().given is None
    today = form.give({"bothersomeness": 6, "pain_intensity": 5})
    assert dict(today.given or {}) == {"bothersomeness": 6, "pain_intensity": 5}
    assert not today.session_logged

    ther = world.as_("ther")
    (pending,) = ther.given_ratings(study_id)
    assert (pending.status, pending.session, pending.rated_on) == (
        "pending",
        None,
        world.clock.today,
    )
    assert log(world, study_id, None) == 1
    (session,) = ther.sessions(study_id)
    assert dict(session.ratings) == {"bothersomeness": 6, "pain_intensity": 5}
    (attached,) = ther.given_ratings(study_id)
    assert (attached.status, attached.session) == ("attached", 1)
    table = world.as_("stat_open").sessions_table()
    assert table["rating_bothersomeness"].iloc[0] == 6
    assert actions(context, "session_rating.") == ["session_rating.give", "session_rating.attach"]
    report = world.as_("admin").verify_audit()
    assert report.intact, report.findings


def test_rating_again_the_same_day_replaces_it_until_the_session_is_logged(
    world: World, context: Context
) -> None:
    study_id = treated(world)
    form = phone(context, world.as_("ther").issue_rating_link(study_id).token)
    form.give({"bothersomeness": 6, "pain_intensity": 5})
    form.give({"bothersomeness": 3, "pain_intensity": 2})
    (given,) = world.as_("ther").given_ratings(study_id)
    assert dict(given.ratings) == {"bothersomeness": 3, "pain_intensity": 2}
    assert actions(context, "session_rating.") == [
        "session_rating.give",
        "session_rating.replace",
    ]

    log(world, study_id, None)
    with pytest.raises(OperationError, match="today's session is logged") as refused:
        form.give({"bothersomeness": 9, "pain_intensity": 9})
    assert refused.value.problems[0].where == "ratings"
    assert form.today().session_logged
    (session,) = world.as_("ther").sessions(study_id)
    assert dict(session.ratings) == {"bothersomeness": 3, "pain_intensity": 2}

    world.clock.advance(7)  # the next session's day: a new rating
    assert form.give({"bothersomeness": 2}).given == {"bothersomeness": 2}
    statuses = [(g.status, dict(g.ratings)) for g in world.as_("ther").given_ratings(study_id)]
    assert statuses == [
        ("attached", {"bothersomeness": 3, "pain_intensity": 2}),
        ("pending", {"bothersomeness": 2}),
    ]


def test_the_tablets_ratings_win_and_the_phones_is_kept_as_superseded(
    world: World, context: Context
) -> None:
    study_id = treated(world)
    form = phone(context, world.as_("ther").issue_rating_link(study_id).token)
    form.give({"bothersomeness": 6, "pain_intensity": 5})
    log(world, study_id, {"bothersomeness": 8, "pain_intensity": 7})
    (session,) = world.as_("ther").sessions(study_id)
    assert dict(session.ratings) == {"bothersomeness": 8, "pain_intensity": 7}
    (given,) = world.as_("ther").given_ratings(study_id)
    assert (given.status, given.session, dict(given.ratings)) == (
        "superseded",
        1,
        {"bothersomeness": 6, "pain_intensity": 5},
    )


def test_a_rating_on_a_day_without_a_session_stays_pending(world: World, context: Context) -> None:
    study_id = treated(world)
    form = phone(context, world.as_("ther").issue_rating_link(study_id).token)
    form.give({"bothersomeness": 6})
    world.clock.advance(1)
    log(world, study_id, None)  # the session is the next day: the rating was not before it
    (session,) = world.as_("ther").sessions(study_id)
    assert dict(session.ratings) == {}
    assert [g.status for g in world.as_("ther").given_ratings(study_id)] == ["pending"]


@pytest.mark.parametrize(
    ("ratings", "where"),
    [
        ({"bothersomeness": 11}, "rating_bothersomeness"),
        ({"bothersomeness": "6"}, "rating_bothersomeness"),
        ({"rdq": 3}, "rating_rdq"),
        ({}, "ratings"),
    ],
)
def test_a_bad_rating_is_refused_at_its_field_and_nothing_is_stored(
    world: World, context: Context, ratings: dict[str, object], where: str
) -> None:
    study_id = treated(world)
    form = phone(context, world.as_("ther").issue_rating_link(study_id).token)
    with pytest.raises(OperationError) as refused:
        form.give(ratings)
    assert refused.value.problems[0].where == where
    with context.db.read() as session:
        assert session.execute(select(GivenRating)).first() is None


def test_a_required_rating_given_on_the_phone_satisfies_the_session_log(
    database_url: str, tmp_path: Path
) -> None:
    reference = shipped_protocol("massage-clbp")
    data = reference.model_dump(by_alias=True)
    data["session_rating"] = {**data["session_rating"], "required": True}
    world = build_world(database_url, tmp_path, protocol=Protocol.model_validate(data))
    study_id = treated(world)
    with pytest.raises(OperationError, match="not logged"):
        log(world, study_id, None)
    context = Context.open(world.url, key_file=world.key_file, clock=world.clock)
    try:
        form = phone(context, world.as_("ther").issue_rating_link(study_id).token)
        with pytest.raises(OperationError) as partial:
            form.give({"bothersomeness": 6})  # required: every rating
        assert partial.value.problems[0].where == "rating_pain_intensity"
        form.give({"bothersomeness": 6, "pain_intensity": 4})
        assert log(world, study_id, None) == 1
    finally:
        context.close()


def test_the_link_opens_through_the_planned_course_and_then_expires(
    world: World, context: Context
) -> None:
    study_id = treated(world)
    link = world.as_("ther").issue_rating_link(study_id)
    sessions = world.protocol.arm(world.arm(study_id)).sessions
    assert sessions.interval_days is not None
    course = sessions.planned * sessions.interval_days
    assert link.expires_at.date() == world.clock.today + dt.timedelta(days=course + 1)
    world.clock.advance(course)
    phone(context, link.token).give({"bothersomeness": 1})
    world.clock.advance(1)
    with pytest.raises(SurveyLinkRefusedError) as expired:
        authenticate_rating_link(context, link.token)
    assert expired.value.reason == "expired"
    assert expired.value.link == "session_rating"
    with pytest.raises(OperationError, match="treatment period is over"):
        world.as_("ther").issue_rating_link(study_id)


def test_a_revoked_reissued_or_forged_link_opens_nothing(world: World, context: Context) -> None:
    study_id = treated(world)
    ther = world.as_("ther")
    first = ther.issue_rating_link(study_id)
    second = ther.issue_rating_link(study_id)  # issuing again revokes the first
    with pytest.raises(SurveyLinkRefusedError) as revoked:
        authenticate_rating_link(context, first.token)
    assert revoked.value.reason == "revoked"
    form = phone(context, second.token)
    ther.revoke_rating_link(study_id)
    with pytest.raises(SurveyLinkRefusedError):
        form.give({"bothersomeness": 1})  # re-checked in the same transaction as the write
    assert [link.status for link in ther.rating_links(study_id)] == ["revoked", "revoked"]
    with pytest.raises(OperationError, match="no link to revoke"):
        ther.revoke_rating_link(study_id)
    forged = second.token[:-4] + ("AAAA" if not second.token.endswith("AAAA") else "BBBB")
    for token in (forged, "lmr_short", "lms_" + second.token[4:]):
        with pytest.raises(SurveyLinkRefusedError) as refused:
            authenticate_rating_link(context, token)
        assert refused.value.reason == "forged"
    with pytest.raises(SurveyLinkRefusedError):  # a rating link is no survey link
        authenticate_survey(context, second.token)


def test_the_link_closes_when_the_participant_stops_treatment(
    world: World, context: Context
) -> None:
    study_id = treated(world)
    form = phone(context, world.as_("ther").issue_rating_link(study_id).token)
    world.as_("coord").withdraw(study_id, "discontinued_treatment", "moved away", world.clock.today)
    with pytest.raises(SurveyLinkRefusedError) as closed:
        form.today()
    assert closed.value.reason == "closed"
    with pytest.raises(OperationError, match="treatment has stopped"):
        world.as_("ther").issue_rating_link(study_id)


def test_usual_care_gets_no_link_and_a_blinded_issuer_is_refused_alike_for_everyone(
    world: World,
) -> None:
    control = usual_care(world)
    massage = treated(world)
    with pytest.raises(OperationError) as refused:
        world.as_("ther").issue_rating_link(control)
    problem = refused.value.problems[0]
    assert problem.where == "participant"
    assert "no treatment sessions" in problem.rule

    # A blinded admin may log sessions' links in principle, but whether a link can be
    # issued tells the arm: refused for both participants, in the same words.
    words = []
    for study_id in (control, massage):
        with pytest.raises(AccessError) as blinded:
            world.as_("admin").issue_rating_link(study_id)
        words.append(str(blinded.value))
        assert "usual" not in str(blinded.value).lower()
        assert world.arm(study_id) not in str(blinded.value)
    assert words[0] == words[1]


def test_ratings_are_shown_to_those_who_see_sessions_only(world: World, context: Context) -> None:
    study_id = treated(world)
    phone(context, world.as_("ther").issue_rating_link(study_id).token).give({"bothersomeness": 6})
    assert world.as_("stat_open").given_ratings(study_id)
    assert world.as_("coord_open").rating_links(study_id)
    for blinded in ("coord", "stat", "monitor"):
        with pytest.raises(AccessError, match="blinded"):
            world.as_(blinded).given_ratings(study_id)
    with pytest.raises(AccessError):
        world.as_("assessor").given_ratings(study_id)  # no treatment_records
    with pytest.raises(AccessError):
        world.as_("coord_open").issue_rating_link(study_id)  # no session permission
    admin = world.as_("admin")
    admin.add_staff("ther_nyc", "therapist", ["NYC"], reason="gives the massage in New York")
    nyc = Trial(context, Principal.operator("ther_nyc"))  # unblinded, another site
    for call in (nyc.given_ratings, nyc.rating_links, nyc.issue_rating_link):
        with pytest.raises(LumbarError) as unknown:
            call(study_id)
        assert "blinded" not in str(unknown.value)  # refused for the site, not the blind
    assert [g.status for g in world.as_("ther").given_ratings(study_id)] == ["pending"]


def test_lumbar_session_rating_link_issues_lists_and_revokes_and_ratings_lists(
    world: World, context: Context
) -> None:
    world.clock.now = utc_now()  # the command runs on the real clock
    study_id = treated(world)
    control = usual_care(world)
    cli = Cli(world.url, world.key_file)
    shown = cli("session", "rating-link", "show", study_id, user="ther")
    (address,) = [line for line in shown.splitlines() if "/rate/lmr_" in line]
    token = address.rsplit("/", 1)[1]
    phone(context, token).give({"bothersomeness": 5})
    listed = cli("session", "rating-link", "list", study_id, user="ther")
    assert token[:12] in listed
    assert token not in listed
    ratings = cli("session", "ratings", study_id, user="ther")
    assert "pending" in ratings
    assert "5" in ratings
    cli("session", "rating-link", "revoke", study_id, user="ther")
    assert "revoked" in cli("session", "rating-link", "list", study_id, user="ther")
    refused = cli("session", "rating-link", "show", control, user="ther", code=2)
    assert "no treatment sessions" in refused
    blinded = cli("session", "rating-link", "show", control, user="admin", code=2)
    assert "blinded" in blinded
    assert "usual" not in blinded.lower()
