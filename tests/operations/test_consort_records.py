"""CONSORT records: one de-identified row per person screened, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from lumbar.analysis.consort import consort_counts
from lumbar.errors import AccessError
from lumbar.operations import CONSORT_COLUMNS
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers

pytestmark = pytest.mark.integration

VISITS = ("week_10", "week_26", "week_52")
NAME, CONTACT, BIRTH = "Ada Quill-Lovelace", "ada.quill@example.org", dt.date(1980, 3, 14)


@dataclass
class Scenario:
    """Who is who in the small trial of :func:`scenario` (arm: study id)."""

    ineligible: str
    incomplete: str
    declined: str
    consented: str
    by_arm: dict[str, str]
    randomized_on: dt.date


@pytest.fixture
def scenario(world: World) -> Scenario:
    """Seven people at SEA, one at NYC.

    Not randomized: ineligible on two rules (age 19, cancer); screening incomplete
    (age not asked); eligible but never consented; consented but never enrolled.
    Randomized on day 0, one per arm (the seed's first block holds every arm):
    structural attends two sessions and stops treatment on day 14; relaxation
    attends none and is lost to follow-up on day 30; usual care completes week 10
    on day 70. NYC: one person, eligible, not consented. Clock ends on day 70.
    """
    coord = world.as_("coord")
    protocol = world.protocol
    ineligible = coord.screen("SEA", eligible_answers(protocol, age=19, cancer=True))
    incomplete = coord.screen("SEA", eligible_answers(protocol, age=None))
    declined = coord.screen("SEA", eligible_answers(protocol))
    consented = coord.screen("SEA", eligible_answers(protocol))
    coord.consent(consented.screening_number, "1.0", world.clock.today)
    world.as_("coord_nyc").screen("NYC", eligible_answers(protocol))
    randomized_on = world.clock.today
    study_ids = [world.randomized() for _ in range(3)]
    arms = {world.arm(s): s for s in study_ids}
    assert set(arms) == {"usual_care", "structural", "relaxation"}
    for reference in (ineligible.screening_number, arms["structural"]):
        coord.record_identity(reference, name=NAME, contact=CONTACT, birth_date=BIRTH)

    therapist = world.as_("ther")
    technique = protocol.arm("structural").techniques[0]
    for _ in range(2):
        world.clock.advance(7)
        therapist.log_session(arms["structural"], world.clock.today, 60, [technique], ["low_back"])
    coord.withdraw(
        arms["structural"], "discontinued_treatment", "pain after sessions", world.clock.today
    )
    world.clock.advance(16)  # day 30
    coord.withdraw(
        arms["relaxation"], "lost_to_follow_up", "no answer to five calls", world.clock.today
    )
    world.clock.advance(40)  # day 70
    for instrument in protocol.visit("week_10").instruments:
        answers = rdq_answers(5) if instrument == "rdq" else answers_for(instrument, 1)
        coord.record_questionnaire(
            arms["usual_care"], "week_10", instrument, answers, completed_on=world.clock.today
        )
    return Scenario(
        ineligible.screening_number,
        incomplete.screening_number,
        declined.screening_number,
        consented.screening_number,
        arms,
        randomized_on,
    )


def _by_participant(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {
        str(row["participant"]): {str(key): value for key, value in row.items()}
        for row in frame.to_dict("records")
    }


def test_one_row_per_person_screened_with_where_they_stand(
    world: World, scenario: Scenario
) -> None:
    frame = world.as_("stat_open").consort_records()
    assert list(frame.columns) == [*CONSORT_COLUMNS, *(f"visit_{v}" for v in VISITS)]
    assert len(frame) == 8  # everyone screened, both sites (the statistician sees all sites)
    assert frame["site"].tolist().count("NYC") == 1
    rows = _by_participant(frame)
    arms = scenario.by_arm

    ineligible = rows[scenario.ineligible]
    assert ineligible["eligibility"] == "ineligible"
    assert sorted(ineligible["reasons"], key=lambda r: r["rule"]) == [
        {"rule": "adult_under_65", "kind": "inclusion", "category": "demographic",
         "label": "Aged 20 to 64"},
        {"rule": "cancer", "kind": "exclusion", "category": "red_flag", "label": "Cancer"},
    ]  # fmt: skip
    assert (ineligible["consented"], ineligible["enrolled"], ineligible["randomized"]) == (
        False,
        False,
        False,
    )
    assert rows[scenario.incomplete]["eligibility"] == "incomplete"
    assert rows[scenario.incomplete]["reasons"] == []
    declined = rows[scenario.declined]
    assert (declined["eligibility"], declined["consented"], declined["reasons"]) == (
        "eligible",
        False,
        [],
    )
    consented = rows[scenario.consented]
    assert (consented["consented"], consented["enrolled"], consented["randomized"]) == (
        True,
        False,
        False,
    )
    for reference in (scenario.ineligible, scenario.declined, scenario.consented):
        row = rows[reference]
        for column in ("arm", "arm_has_sessions", "sessions", "withdrawal", "withdrawal_day"):
            assert pd.isna(row[column])
        assert all(pd.isna(row[f"visit_{v}"]) for v in VISITS)

    structural = rows[arms["structural"]]
    assert (structural["arm"], structural["arm_has_sessions"], structural["sessions"]) == (
        "structural",
        True,
        2,
    )
    assert (structural["enrolled"], structural["randomized"]) == (True, True)
    assert (structural["withdrawal"], structural["withdrawal_reason"]) == (
        "discontinued_treatment",
        "pain after sessions",
    )
    assert structural["withdrawal_day"] == 14
    assert (structural["discontinued"], structural["discontinued_reason"]) == (
        True,
        "pain after sessions",
    )
    # Stopping treatment does not end follow-up: week 10's window is open on day 70.
    assert structural["visit_week_10"] == "due"

    relaxation = rows[arms["relaxation"]]
    assert (relaxation["arm_has_sessions"], relaxation["sessions"]) == (True, 0)
    assert (relaxation["withdrawal"], relaxation["withdrawal_day"]) == ("lost_to_follow_up", 30)
    assert relaxation["discontinued"] is False
    assert [relaxation[f"visit_{v}"] for v in VISITS] == ["withdrawn"] * 3

    usual = rows[arms["usual_care"]]
    assert (usual["arm_has_sessions"], usual["sessions"]) == (False, 0)
    assert pd.isna(usual["withdrawal"])
    assert pd.isna(usual["withdrawal_day"])
    assert [usual[f"visit_{v}"] for v in VISITS] == ["complete", "upcoming", "upcoming"]


def test_statuses_are_as_of_the_day_asked(world: World, scenario: Scenario) -> None:
    statistician = world.as_("stat_open")
    structural = scenario.by_arm["structural"]
    week_10_closes = scenario.randomized_on + dt.timedelta(days=70 + 21)

    def status(on: dt.date) -> object:
        rows = _by_participant(statistician.consort_records(on=on))
        return rows[structural]["visit_week_10"]

    assert status(scenario.randomized_on) == "upcoming"
    assert status(week_10_closes) == "overdue"
    assert status(week_10_closes + dt.timedelta(days=1)) == "missed"


def test_no_identifiers_or_calendar_dates_anywhere(world: World, scenario: Scenario) -> None:
    for user in ("stat", "stat_open", "admin"):
        frame = world.as_(user).consort_records()
        text = frame.to_json() + repr(frame.to_dict("records"))
        for secret in (NAME, CONTACT, BIRTH.isoformat(), "Quill", "example.org"):
            assert secret not in text
        # No calendar dates: not as values, not as text.
        for value in frame.to_numpy().ravel():
            assert not isinstance(value, dt.date | pd.Timestamp)
        assert "2026-" not in text
        assert "1980" not in text


def test_blinded_users_get_no_arms_and_no_sessions(world: World, scenario: Scenario) -> None:
    blinded = world.as_("stat")
    frame = blinded.consort_records()
    randomized = frame[frame["randomized"]]
    assert len(randomized) == 3
    assert frame["arm"].isna().all()
    assert frame["arm_has_sessions"].isna().all()
    assert frame["sessions"].isna().all()
    assert blinded.dataset()["arm"].isna().all()
    text = frame.to_json()
    for arm in ("usual_care", "structural", "relaxation"):
        assert arm not in text
    # What is not arm-revealing stays: withdrawals and visit statuses.
    relaxation = scenario.by_arm["relaxation"]
    row = frame[frame["participant"] == relaxation].iloc[0]
    assert row["withdrawal"] == "lost_to_follow_up"
    assert row["visit_week_10"] == "withdrawn"


def test_permission_and_site_scope_are_enforced(world: World, scenario: Scenario) -> None:
    for user in ("coord", "ther", "assessor", "monitor"):
        with pytest.raises(AccessError, match="may not read or export the dataset"):
            world.as_(user).consort_records()
    admin = world.as_("admin")
    admin.add_staff("stat_nyc", "statistician", ["NYC"], unblinded=True, reason="analysis")
    frame = world.as_("stat_nyc").consort_records()
    assert frame["site"].tolist() == ["NYC"]
    assert frame["participant"].str.startswith("S").all()


def test_records_feed_the_consort_counts(world: World, scenario: Scenario) -> None:
    records = world.as_("stat_open").consort_records()
    flow = consort_counts(
        records, arms=["usual_care", "structural", "relaxation"], visits=VISITS,
        primary_visit="week_10",
    )  # fmt: skip
    assert (flow.assessed, flow.excluded, flow.randomized) == (8, 5, 3)
    assert (flow.not_meeting_criteria, flow.incomplete_screening) == (1, 1)
    assert (flow.declined, flow.other) == (2, 1)  # one at SEA, one at NYC
    assert {reason.rule: reason.count for reason in flow.reasons} == {
        "adult_under_65": 1,
        "cancer": 1,
    }
    assert [(a.arm, a.allocated, a.received, a.discontinued) for a in flow.arms] == [
        ("usual_care", 1, 1, 0),
        ("structural", 1, 1, 1),
        ("relaxation", 1, 0, 0),
    ]
    assert flow.arm("relaxation").at("week_10").lost_to_follow_up == 1
    assert [a.analysed for a in flow.arms] == [1, 0, 0]
    # A blinded reader's records hold no arm: their flow is counted for the trial as a
    # whole (lumbar.analysis.consort), never split by arm.
    assert world.as_("stat").consort_records()["arm"].isna().all()
