"""Adherence, session content and adverse events per arm, against hand counts."""

from __future__ import annotations

import pandas as pd
import pytest

from lumbar.analysis.treatment import safety_summary, treatment_summary
from lumbar.errors import AnalysisError

pytestmark = pytest.mark.unit

ALLOCATED = pd.Series(
    {"A1": "massage", "A2": "massage", "A3": "massage", "A4": "massage", "U1": "usual"}
)


def _sessions() -> pd.DataFrame:
    rows = []
    # A1 attends all 5 planned sessions, A2 attends 4, A3 attends 1, A4 none.
    for participant, count in (("A1", 5), ("A2", 4), ("A3", 1)):
        for number in range(count):
            rows.append(
                {
                    "participant": participant,
                    "arm": "massage",
                    "day": 3 + 7 * number,
                    "minutes": 90 if number == 0 else 60,
                    "techniques": ["kneading", "friction"] if number % 2 == 0 else ["kneading"],
                    "body_regions": ["low_back"],
                    "home_care": ["stretch"] if participant == "A1" else [],
                }
            )
    return pd.DataFrame(rows)


def test_adherence_counts_every_allocated_participant() -> None:
    summary = treatment_summary(_sessions(), ALLOCATED, {"massage": 5, "usual": 0})
    massage = summary.adherence.loc["massage"]
    assert massage["allocated"] == 4
    assert massage["started"] == 3
    assert massage["completed"] == 2  # 5 and 4 of 5 reach 80%
    assert massage["sessions_mean"] == pytest.approx((5 + 4 + 1 + 0) / 4)
    assert massage["sessions_median"] == pytest.approx(2.5)
    assert massage["minutes_mean"] == pytest.approx((3 * 90 + 7 * 60) / 10)
    assert massage["first_minutes_mean"] == pytest.approx(90)
    usual = summary.adherence.loc["usual"]
    assert (usual["allocated"], usual["started"], usual["planned"]) == (1, 0, 0)
    attendance = summary.attendance.set_index(["arm", "sessions"])["participants"]
    assert [attendance["massage", k] for k in range(6)] == [1, 1, 0, 0, 1, 1]


def test_content_is_shared_over_sessions_and_people() -> None:
    summary = treatment_summary(_sessions(), ALLOCATED, {"massage": 5, "usual": 0})
    content = summary.content.set_index("item")
    friction = content.loc["friction"]
    # sessions 0, 2, 4 of A1, 0 and 2 of A2, 0 of A3
    assert friction["sessions"] == 6
    assert friction["share_of_sessions"] == pytest.approx(6 / 10)
    assert friction["share_of_participants"] == pytest.approx(1.0)
    stretch = content.loc["stretch"]
    assert (stretch["sessions"], stretch["participants"]) == (5, 1)


def test_safety_counts_events_and_people() -> None:
    events = pd.DataFrame(
        {
            "participant": ["A1", "A1", "A2", "U1"],
            "arm": ["massage", "massage", "massage", "usual"],
            "onset_day": [4, 11, 5, 100],
            "severity": ["mild", "moderate", "mild", "severe"],
            "serious": [False, False, False, True],
            "relatedness": ["probable", "possible", "unlikely", "not_related"],
            "outcome": ["recovered"] * 4,
        }
    )
    table = safety_summary(events, ALLOCATED, arms=["usual", "massage"]).by_arm
    assert list(table.index) == ["usual", "massage"]
    massage = table.loc["massage"]
    assert (massage["events"], massage["participants_with_event"]) == (3, 2)
    assert massage["share_with_event"] == pytest.approx(0.5)
    assert (massage["related_events"], massage["mild"], massage["moderate"]) == (2, 2, 1)
    usual = table.loc["usual"]
    assert (usual["serious_events"], usual["participants_with_serious"], usual["severe"]) == (
        1,
        1,
        1,
    )


def test_a_missing_column_or_arm_is_named() -> None:
    with pytest.raises(AnalysisError) as caught:
        treatment_summary(_sessions().drop(columns="minutes"), ALLOCATED, {"massage": 5})
    assert "minutes" in caught.value.problems[0].where
    with pytest.raises(AnalysisError, match="unknown arm"):
        treatment_summary(_sessions(), ALLOCATED, {"massage": 5})
