"""Implausible dates are refused, naming the field and the rule, and nothing is stored.

Issue 10's attacks: a baseline, an adverse event or a withdrawal dated before the person
consented, dates in 1900 or earlier, and a date of birth in 1800 were all accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from lumbar.errors import LumbarError, OperationError
from tests.operations.world import World, answers_for

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
