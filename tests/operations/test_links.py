"""What every participant link shares: its status at a time, and revoking with its refusal."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from lumbar.errors import OperationError
from lumbar.operations.links import LINK_STATUSES, link_status
from lumbar.store.schema import AuditRecord, ConsentToken, SurveyToken
from tests.operations.test_consent import enrolled_with_name
from tests.operations.test_session_ratings import treated
from tests.operations.world import World, amended_world

NOW = dt.datetime(2026, 3, 10, 12, 0)
BEFORE = NOW - dt.timedelta(days=1)
AFTER = NOW + dt.timedelta(days=1)


def survey_link(**stamps: Any) -> SurveyToken:
    """A survey link in its window, sent and untouched, but for ``stamps``."""
    fields: dict[str, Any] = {
        "opens_at": BEFORE,
        "expires_at": AFTER,
        "opened_at": None,
        "used_at": None,
        "revoked_at": None,
        "draft": None,
    }
    return SurveyToken(**(fields | stamps))


def consent_link(**stamps: Any) -> ConsentToken:
    fields: dict[str, Any] = {
        "expires_at": AFTER,
        "opened_at": None,
        "used_at": None,
        "revoked_at": None,
    }
    return ConsentToken(**(fields | stamps))


@pytest.mark.parametrize(
    ("stamps", "status"),
    [
        ({}, "sent"),
        ({"opened_at": BEFORE}, "opened"),
        ({"opened_at": BEFORE, "draft": {"rdq": {"rdq_01": 1}}}, "saved"),
        ({"opened_at": BEFORE, "draft": {}}, "opened"),  # nothing saved
        ({"opens_at": AFTER, "expires_at": AFTER + dt.timedelta(days=7)}, "not open yet"),
        ({"opens_at": AFTER, "expires_at": AFTER, "draft": {"rdq": {}}}, "not open yet"),
        ({"expires_at": NOW}, "expired"),  # expires at the instant
        ({"expires_at": BEFORE, "opened_at": BEFORE, "draft": {"rdq": {}}}, "expired"),
        ({"expires_at": BEFORE, "used_at": BEFORE}, "used"),
        ({"used_at": BEFORE, "revoked_at": NOW}, "revoked"),
        ({"expires_at": BEFORE, "revoked_at": BEFORE}, "revoked"),
    ],
)
def test_a_survey_links_status_is_the_first_of_its_timestamps_that_holds(
    stamps: dict[str, Any], status: str
) -> None:
    assert link_status(survey_link(**stamps), NOW) == status
    assert status in LINK_STATUSES


def test_a_session_rating_link_is_never_used_nor_saved() -> None:
    rating = {"kind": "session_rating", "visit": "session_rating"}
    assert link_status(survey_link(**rating), NOW) == "sent"
    assert link_status(survey_link(**rating, opened_at=BEFORE), NOW) == "opened"
    assert link_status(survey_link(**rating, opens_at=AFTER), NOW) == "not open yet"
    assert link_status(survey_link(**rating, expires_at=NOW), NOW) == "expired"


@pytest.mark.parametrize(
    ("stamps", "status"),
    [
        ({}, "sent"),  # open from the moment it is issued
        ({"opened_at": BEFORE}, "opened"),
        ({"expires_at": NOW}, "expired"),
        ({"used_at": BEFORE, "expires_at": BEFORE}, "used"),
        ({"used_at": BEFORE, "revoked_at": BEFORE}, "revoked"),
    ],
)
def test_a_consent_links_status_has_no_opening_day(stamps: dict[str, Any], status: str) -> None:
    assert link_status(consent_link(**stamps), NOW) == status


@pytest.mark.integration
def test_revoking_audits_each_live_link_and_refuses_when_none_is_left(
    database_url: str, tmp_path: Path
) -> None:
    world = amended_world(database_url, tmp_path)
    study_id = enrolled_with_name(world)
    world.clock.advance(31)
    coord = world.as_("coord")
    coord.issue_consent_link(study_id)
    second = coord.issue_consent_link(study_id)  # revokes the first, "reissued"
    assert coord.revoke_consent_link(study_id) == 1
    with coord.db.read() as session:
        records = session.execute(
            select(AuditRecord)
            .where(AuditRecord.action == "consent_token.revoke")
            .order_by(AuditRecord.seq)
        ).scalars()
        revoked = [
            (
                record.entity,
                record.entity_id,
                json.loads(record.old or ""),
                json.loads(record.new or ""),
            )
            for record in records
        ]
        before = session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
    assert [(entity, entity_id) for entity, entity_id, _, _ in revoked] == [
        ("consent_token", str(second.id - 1)),
        ("consent_token", str(second.id)),
    ]
    assert revoked[1][2] == {"prefix": second.token[:12]}
    assert [new for _, _, _, new in revoked] == [
        {"study_id": study_id, "reason": "reissued"},
        {"study_id": study_id, "reason": "revoked"},
    ]
    with pytest.raises(OperationError, match="no link to revoke") as refused:
        coord.revoke_consent_link(study_id)
    assert [(p.where, p.rule, p.received, p.hint) for p in refused.value.problems] == [
        ("participant", "has no unused consent link", study_id, "issue one first")
    ]
    with coord.db.read() as session:
        after = session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
    assert after == before  # the refusal changed nothing
    coord.close()


def issued(world: World, action: str) -> dict[str, Any]:
    """The ``new`` of the latest audit record of ``action``."""
    trial = world.as_("admin")
    with trial.db.read() as session:
        record = session.execute(
            select(AuditRecord)
            .where(AuditRecord.action == action)
            .order_by(AuditRecord.seq.desc())
            .limit(1)
        ).scalar_one()
    trial.close()
    return dict(json.loads(record.new or ""))


@pytest.mark.integration
def test_issuing_each_kind_of_link_audits_its_own_fields(database_url: str, tmp_path: Path) -> None:
    world = amended_world(database_url, tmp_path)
    surveyed = world.randomized()
    rated = treated(world)
    consenting = enrolled_with_name(world)
    world.clock.advance(70)  # in week 10's window, and version 2.0 of consent in effect
    coord = world.as_("coord")
    survey = coord.issue_survey_token(surveyed, "week_10")
    consent = coord.issue_consent_link(consenting)
    coord.close()
    therapist = world.as_("ther")
    rating = therapist.issue_rating_link(rated)
    therapist.close()

    assert issued(world, "survey_token.issue") == {
        "study_id": surveyed,
        "visit": "week_10",
        "prefix": survey.token[:12],
        "opens_at": survey.opens_at.isoformat(),
        "expires_at": survey.expires_at.isoformat(),
    }
    assert issued(world, "rating_link.issue") == {
        "study_id": rated,
        "prefix": rating.token[:12],
        "opens_at": rating.opens_at.isoformat(),
        "expires_at": rating.expires_at.isoformat(),
    }
    assert issued(world, "consent_token.issue") == {
        "study_id": consenting,
        "version": consent.version,
        "prefix": consent.token[:12],
        "expires_at": consent.expires_at.isoformat(),
    }
