"""Implausible dates are refused, naming the field and the rule, and nothing is stored.

Issue 10's attacks: a baseline, an adverse event or a withdrawal dated before the person
consented, dates in 1900 or earlier, and a date of birth in 1800 were all accepted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from lumbar.errors import LumbarError, OperationError
from tests.operations.world import World, answers_for, rdq_answers

pytestmark = pytest.mark.integration


def _refused(operation: Callable[[], object]) -> OperationError:
    with pytest.raises(OperationError) as caught:
        operation()
    return caught.value


def test_records_dated_before_consent_or_1900_are_refused_and_store_nothing(world: World) -> None:
    coord = world.as_("coord")
    study_id = world.enrolled()  # consented today
    today = world.clock.today
    yesterday = today - dt.timedelta(days=1)
    long_ago = dt.date(1899, 12, 31)
    before = coord.participants()
    cases: dict[str, tuple[Callable[[], object], str, str]] = {
        "baseline before consent": (
            lambda: coord.record_questionnaire(
                study_id,
                "baseline",
                "bothersomeness",
                {"bothersomeness": 5},
                completed_on=yesterday,
            ),
            "completed_on",
            "consent",
        ),
        "adverse event before consent": (
            lambda: coord.report_adverse_event(
                study_id,
                "old pain",
                yesterday,
                severity="mild",
                serious=False,
                relatedness="not_related",
            ),
            "onset_date",
            "consent",
        ),
        "withdrawal before consent": (
            lambda: coord.withdraw(study_id, "withdrew_consent", "moved", yesterday),
            "effective_date",
            "consent",
        ),
        "baseline in 1899": (
            lambda: coord.record_questionnaire(
                study_id,
                "baseline",
                "satisfaction",
                answers_for("satisfaction", 1),
                completed_on=long_ago,
            ),
            "completed_on",
            "1900",
        ),
    }
    for name, (operation, field, rule) in cases.items():
        error = _refused(operation)
        (problem,) = error.problems
        assert problem.where == field, name
        assert f"must not be before {rule}" in problem.rule, name
        assert problem.received in (yesterday.isoformat(), long_ago.isoformat()), name
    assert coord.participants() == before
    with coord.db.read() as session:
        from sqlalchemy import func, select

        from lumbar.store.schema import AdverseEvent, Questionnaire, Withdrawal

        for table in (AdverseEvent, Questionnaire, Withdrawal):
            assert session.execute(select(func.count()).select_from(table)).scalar_one() == 0
    # The same records dated on the day of consent are accepted.
    coord.record_questionnaire(
        study_id, "baseline", "bothersomeness", {"bothersomeness": 5}, completed_on=today
    )


def test_a_date_of_birth_giving_an_impossible_age_is_refused(world: World) -> None:
    coord = world.as_("coord")
    study_id = world.enrolled()
    for born, shown in (
        (dt.date(1800, 4, 2), "must not be before 1900"),
        (dt.date(1901, 1, 1), "gives an age of 125 at screening, outside the protocol's 0 to 120"),
    ):
        with pytest.raises(LumbarError) as caught:
            coord.record_identity(study_id, name="Ann", birth_date=born)
        assert caught.value.problems[0].where == "birth_date"
        assert shown in str(caught.value)
    assert coord.identity(study_id).name is None  # nothing sealed by a refused call
    coord.record_identity(study_id, birth_date=dt.date(1980, 4, 2))
    assert coord.identity(study_id).birth_date == dt.date(1980, 4, 2)


# ---------------------------------------------------------------------- visit windows


def _questionnaire_row(world: World, study_id: str, visit: str, instrument: str) -> Any:
    from sqlalchemy import select

    from lumbar.store.schema import Participant, Questionnaire

    with world.as_("coord").db.read() as session:
        return session.execute(
            select(Questionnaire.window_status, Questionnaire.days_from_target)
            .join(Participant, Participant.id == Questionnaire.participant_id)
            .where(
                Participant.study_id == study_id,
                Questionnaire.visit == visit,
                Questionnaire.instrument == instrument,
            )
        ).one()


def test_a_week_26_questionnaire_on_randomization_day_is_stored_flagged_early(
    world: World,
) -> None:
    """Issue 10: it was accepted and went into the dataset as in-window. It happened, so it is
    stored (refusing it would lose data), but flagged at once: the result says it is outside
    the window, by how many days, and what the protocol's rule does with it."""
    coord = world.as_("coord")
    study_id = world.randomized()
    view = coord.record_questionnaire(
        study_id, "week_26", "rdq", rdq_answers(3), completed_on=world.clock.today
    )
    week_26 = world.protocol.visit("week_26")
    assert (view.window, view.days_from_target) == ("early", -week_26.day)
    assert view.outside_window
    assert view.flag is not None
    assert f"{week_26.earliest_day} days before its window opens" in view.flag
    assert "analysis.out_of_window: include" in view.flag
    assert "sensitivity analysis" in view.flag
    assert _questionnaire_row(world, study_id, "week_26", "rdq") == ("early", -week_26.day)
    # The dataset row carries it although the visit is far from complete.
    row = _dataset_row(world, study_id, "week_26")
    assert (row["window"], row["days_from_target"], row["out_of_window"]) == (
        "early",
        -week_26.day,
        True,
    )
    assert row["status"] != "complete"


def _dataset_row(world: World, study_id: str, visit: str) -> Any:
    frame = world.as_("stat_open").dataset()
    return frame[(frame["participant"] == study_id) & (frame["visit"] == visit)].iloc[0]


def test_answers_in_and_after_their_window_carry_their_own_status(world: World) -> None:
    coord = world.as_("coord")
    study_id = world.randomized()
    week_10, week_26 = world.protocol.visit("week_10"), world.protocol.visit("week_26")
    world.clock.advance(week_10.day + 2)
    on_time = coord.record_questionnaire(
        study_id, "week_10", "bothersomeness", {"bothersomeness": 4}, completed_on=world.clock.today
    )
    assert (on_time.window, on_time.days_from_target, on_time.flag) == ("in_window", 2, None)
    world.clock.advance(week_26.latest_day + 3 - world.protocol.visit("week_10").day - 2)
    late = coord.record_questionnaire(
        study_id, "week_10", "rdq", rdq_answers(2), completed_on=world.clock.today
    )
    late_by = week_26.latest_day + 3 - week_10.latest_day
    assert late.window == "late"
    assert late.flag is not None
    assert f"{late_by} days after its window closed" in late.flag
    # The visit row is out of window because one of its questionnaires is.
    row = _dataset_row(world, study_id, "week_10")
    assert (row["window"], row["out_of_window"]) == ("late", True)
    assert row["days_from_target"] == week_26.latest_day + 3 - week_10.day
    baseline = _dataset_row(world, study_id, "baseline")
    assert pd.isna(baseline["window"])
    assert not baseline["out_of_window"]


def test_correcting_the_date_recomputes_the_window_and_is_audited(world: World) -> None:
    coord = world.as_("coord")
    study_id = world.randomized()
    randomized_on = world.clock.today
    week_10 = world.protocol.visit("week_10")
    world.clock.advance(week_10.day)
    coord.record_questionnaire(
        study_id, "week_10", "bothersomeness", {"bothersomeness": 4}, completed_on=randomized_on
    )
    assert _questionnaire_row(world, study_id, "week_10", "bothersomeness")[0] == "early"
    corrected = coord.edit_questionnaire(
        study_id,
        "week_10",
        "bothersomeness",
        {},
        "the form was dated with the randomization day by mistake",
        completed_on=world.clock.today,
    )
    assert (corrected.completed_on, corrected.window, corrected.flag) == (
        world.clock.today,
        "in_window",
        None,
    )
    assert _questionnaire_row(world, study_id, "week_10", "bothersomeness") == ("in_window", 0)
    with coord.db.read() as session:
        from sqlalchemy import select

        from lumbar.store.schema import AuditRecord

        record = (
            session.execute(
                select(AuditRecord)
                .where(AuditRecord.action == "questionnaire.edit")
                .order_by(AuditRecord.seq.desc())
            )
            .scalars()
            .first()
        )
        assert record is not None
        old, new = json.loads(record.old or "{}"), json.loads(record.new or "{}")
        assert (old["window"], new["window"]) == ("early", "in_window")
        assert new["completed_on"] == world.clock.today.isoformat()
    # A corrected date is held to the same rules as a recorded one.
    error = _refused(
        lambda: coord.edit_questionnaire(
            study_id,
            "week_10",
            "bothersomeness",
            {},
            "typo",
            completed_on=randomized_on - dt.timedelta(days=1),
        )
    )
    assert error.problems[0].where == "completed_on"


def test_a_treatment_session_dated_before_consent_is_refused(world: World) -> None:
    """A session dated after randomization but before the (corrected) consent date was
    accepted: sessions are held to consent like questionnaires, adverse events and
    withdrawals."""
    from sqlalchemy import update

    from lumbar.store.schema import Consent

    study_id = world.randomized()
    while world.arm(study_id) == "usual_care":  # an arm with sessions (the list is seeded)
        study_id = world.randomized()
    randomized_on = world.clock.today
    world.clock.advance(10)
    admin = world.as_("admin")
    with admin.db.write() as session:  # consent dated after randomization, as if imported
        session.execute(update(Consent).values(consent_date=randomized_on + dt.timedelta(days=5)))
    therapist = world.as_("ther")
    plan = therapist.treatment_plan(study_id)

    def log(day: dt.date) -> int:
        return therapist.log_session(
            study_id, day, 60, [plan.techniques[0]], [world.protocol.vocabulary.body_regions[0].id]
        )

    error = _refused(lambda: log(randomized_on + dt.timedelta(days=3)))
    (problem,) = error.problems
    assert problem.where == "session_date"
    assert "must not be before consent" in problem.rule
    assert log(randomized_on + dt.timedelta(days=5)) == 1
