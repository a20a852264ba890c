"""CONSORT flow counts from hand-built records: every box by hand, and the boxes add up."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from lumbar.analysis.consort import STAGES, consort_counts
from lumbar.errors import AnalysisError

pytestmark = pytest.mark.unit

AGE = {"rule": "age", "kind": "inclusion", "category": "demographic", "label": "Aged 20 to 64"}
CANCER = {"rule": "cancer", "kind": "exclusion", "category": "red_flag", "label": "Cancer"}
VISITS = ("v1", "v2")

COLUMNS = (
    "participant", "eligibility", "reasons", "consented", "randomized", "arm",
    "arm_has_sessions", "sessions", "withdrawal", "withdrawal_reason", "discontinued",
    "discontinued_reason", "visit_v1", "visit_v2",
)  # fmt: skip


def _screened(
    participant: str, eligibility: str, reasons: list[Any], consented: bool
) -> tuple[Any, ...]:
    """Someone not randomized: nothing after screening and consent applies."""
    return (participant, eligibility, reasons, consented, False, None, None, None, None, None,
            False, None, None, None)  # fmt: skip


# Arm A plans sessions, arm U (usual care) does not.
# fmt: off
ROWS: list[tuple[Any, ...]] = [
    _screened("S1", "ineligible", [AGE, CANCER], consented=False),
    _screened("S2", "ineligible", [CANCER], consented=False),
    _screened("S3", "incomplete", [], consented=False),
    _screened("S4", "eligible", [], consented=False),
    _screened("S5", "eligible", [], consented=False),
    _screened("X-1", "eligible", [], consented=True),
    ("A-1", "eligible", [], True, True, "A", True, 3, None, None, False, None,
     "complete", "complete"),
    ("A-2", "eligible", [], True, True, "A", True, 0, "lost_to_follow_up", "no answer", False,
     None, "withdrawn", "withdrawn"),
    ("A-3", "eligible", [], True, True, "A", True, 1, "discontinued_treatment", "pain", True,
     "pain", "complete", "missed"),
    ("A-4", "eligible", [], True, True, "A", True, 2, "withdrew_consent", "asked", True, "moved",
     "missed", "withdrawn"),
    ("U-1", "eligible", [], True, True, "U", False, 0, None, None, False, None, "complete", "due"),
    ("U-2", "eligible", [], True, True, "U", False, 0, "lost_to_follow_up", "moved", False, None,
     "complete", "withdrawn"),
    ("U-3", "eligible", [], True, True, "U", False, 0, None, None, False, None, "overdue",
     "upcoming"),
]
# fmt: on


def _records() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=list(COLUMNS))
    frame["arm_has_sessions"] = frame["arm_has_sessions"].astype("boolean")
    frame["sessions"] = frame["sessions"].astype("Int64")
    return frame


def _flow(records: pd.DataFrame | None = None, **kwargs: Any) -> Any:
    return consort_counts(
        _records() if records is None else records, visits=VISITS, primary_visit="v1", **kwargs
    )


def test_enrolment_boxes_by_hand() -> None:
    flow = _flow()
    assert flow.assessed == 13
    assert (flow.not_meeting_criteria, flow.incomplete_screening) == (2, 1)
    assert (flow.declined, flow.other) == (2, 1)
    assert flow.excluded == 6
    assert flow.randomized == 7
    # One person (S1) has two reasons: 2 people not meeting criteria, 3 reasons.
    assert [(r.rule, r.kind, r.count) for r in flow.reasons] == [
        ("cancer", "exclusion", 2),
        ("age", "inclusion", 1),
    ]
    assert sum(r.count for r in flow.reasons) == 3
    assert flow.reasons[1].text == "not met: Aged 20 to 64"


def test_allocation_follow_up_and_analysis_boxes_by_hand() -> None:
    flow = _flow()
    assert [arm.arm for arm in flow.arms] == ["A", "U"]
    a, u = flow.arm("A"), flow.arm("U")
    # A: A-2 attended no session; stopped treatment (A-4 then withdrew consent).
    assert (a.allocated, a.received, a.not_received, a.discontinued) == (4, 3, 1, 2)
    assert a.discontinued_reasons == (("moved", 1), ("pain", 1))
    # U plans no sessions: everyone allocated received usual care.
    assert (u.allocated, u.received, u.not_received, u.discontinued) == (3, 3, 0, 0)
    assert u.discontinued_reasons == ()

    def boxes(arm: Any, visit: str) -> tuple[int, ...]:
        v = arm.at(visit)
        return (v.completed, v.missed, v.lost_to_follow_up, v.withdrew_consent, v.pending)

    assert boxes(a, "v1") == (2, 1, 1, 0, 0)
    assert boxes(a, "v2") == (1, 1, 1, 1, 0)
    assert boxes(u, "v1") == (2, 0, 0, 0, 1)
    assert boxes(u, "v2") == (0, 0, 1, 0, 2)

    assert (a.analysed, a.excluded) == (2, 2)
    assert dict(a.excluded_from_analysis) == {
        "lost_to_follow_up": 1,
        "withdrew_consent": 0,
        "missed": 1,
        "pending": 0,
    }
    assert (u.analysed, u.excluded) == (2, 1)
    assert dict(u.excluded_from_analysis)["pending"] == 1


def test_the_boxes_add_up() -> None:
    flow = _flow()
    assert flow.assessed == flow.excluded + flow.randomized
    assert sum(arm.allocated for arm in flow.arms) == flow.randomized
    for arm in flow.arms:
        assert arm.received is not None
        assert arm.not_received is not None
        assert arm.received + arm.not_received == arm.allocated
        assert arm.analysed + arm.excluded == arm.allocated
        for visit in arm.follow_up:
            assert visit.total == arm.allocated
        # Losses and withdrawals of consent are cumulative from one visit to the next.
        losses = [v.lost_to_follow_up + v.withdrew_consent for v in arm.follow_up]
        assert losses == sorted(losses)
    frame = flow.to_frame()
    by_group = frame[frame["stage"] == "excluded_by"]["count"].sum()
    assert by_group == flow.excluded


def test_discontinued_falls_back_to_the_withdrawal_column() -> None:
    # Without the discontinued columns, only a withdrawal recorded as a stop of treatment counts
    # (A-4's earlier stop is hidden behind the withdrawal of consent).
    records = _records().drop(columns=["discontinued", "discontinued_reason"])
    a = _flow(records).arm("A")
    assert (a.discontinued, a.discontinued_reasons) == (1, (("pain", 1),))


def test_blinded_records_leave_receipt_unknown() -> None:
    records = _records()
    records["arm_has_sessions"] = pd.array([None] * len(records), dtype="boolean")
    records["sessions"] = pd.array([None] * len(records), dtype="Int64")
    records["arm"] = records["arm"].map({"A": "group B", "U": "group A"})
    flow = _flow(records)
    assert [arm.arm for arm in flow.arms] == ["group A", "group B"]
    assert all((arm.received, arm.not_received) == (None, None) for arm in flow.arms)
    assert not flow.received_known
    frame = flow.to_frame()
    assert frame.loc[frame["stage"] == "received", "count"].isna().all()
    assert "Received allocated intervention (n=unknown)" in str(flow)
    assert "not shown to blinded users" in flow.method_text
    # Everything else is counted as before.
    assert flow.arm("group B").analysed == 2


def test_plain_none_and_nan_work_as_missing() -> None:
    records = _records().astype(object)
    records["arm_has_sessions"] = [None] * 6 + [True] * 4 + [False] * 3
    records["sessions"] = [float("nan")] * 6 + [3, 0, 1, 2, 0, 0, 0]
    assert _flow(records).arm("A").received == 3


def test_arms_order_and_a_listed_arm_without_participants() -> None:
    flow = _flow(arms=["U", "A", "B"])
    assert [arm.arm for arm in flow.arms] == ["U", "A", "B"]
    empty = flow.arm("B")
    assert (empty.allocated, empty.received, empty.analysed, empty.excluded) == (0, 0, 0, 0)


def test_to_frame_to_dict_and_text() -> None:
    flow = _flow()
    frame = flow.to_frame()
    assert list(frame.columns) == ["stage", "arm", "visit", "reason", "count"]
    assert set(frame["stage"]) == set(STAGES)

    def count(stage: str, arm: str | None = None, visit: str | None = None,
              reason: str | None = None) -> int:  # fmt: skip
        rows = frame[frame["stage"] == stage]
        for column, value in (("arm", arm), ("visit", visit), ("reason", reason)):
            if value is not None:
                rows = rows[rows[column] == value]
        assert len(rows) == 1
        return int(rows["count"].iloc[0])

    assert count("assessed") == 13
    assert count("exclusion_reason", reason="Cancer") == 2
    assert count("excluded_by", reason="declined") == 2
    assert count("lost_to_follow_up", "A", "v2") == 1
    assert count("withdrew_consent", "A", "v2") == 1
    assert count("analysed", "U", "v1") == 2
    assert count("excluded_from_analysis_by", "A", "v1", "missed") == 1
    assert count("discontinued_reason", "A", reason="moved") == 1

    data = flow.to_dict()
    json.dumps(data)
    assert data["enrolment"]["excluded_by"] == {
        "not_meeting_criteria": 2,
        "incomplete_screening": 1,
        "declined": 2,
        "other": 1,
    }
    assert data["arms"][0]["follow_up"][1] == {
        "visit": "v2",
        "completed": 1,
        "missed": 1,
        "lost_to_follow_up": 1,
        "withdrew_consent": 1,
        "pending": 0,
    }
    text = str(flow)
    for line in (
        "Assessed for eligibility (n=13)",
        "Excluded (n=6)",
        "excluded: Cancer (n=2)",
        "Declined to participate (n=2)",
        "Randomized (n=7)",
        "Received allocated intervention (n=3)",
        "Discontinued intervention (n=2)",
        "Excluded from analysis (n=2): lost to follow up 1, missed 1",
    ):
        assert line in text


def _problem(records: pd.DataFrame, **kwargs: Any) -> tuple[str, str]:
    kwargs.setdefault("visits", VISITS)
    kwargs.setdefault("primary_visit", "v1")
    with pytest.raises(AnalysisError) as caught:
        consort_counts(records, **kwargs)
    problem = caught.value.problems[0]
    return problem.where, problem.rule


def test_inconsistent_records_are_refused() -> None:
    assert _problem(_records().drop(columns=["visit_v2"])) == (
        "column 'visit_v2'",
        "is not in the records",
    )
    assert _problem(_records(), primary_visit="v9")[0] == "primary_visit"
    assert _problem(_records(), visits=[])[0] == "visits"
    assert _problem(_records(), arms=["A"]) == (
        "arms",
        "leaves out arms participants were randomized to",
    )
    bad = _records()
    bad.loc[0, "eligibility"] = "maybe"
    assert _problem(bad)[0] == "column 'eligibility'"
    bad = _records()
    bad.loc[6, "arm"] = None
    assert _problem(bad) == ("column 'arm'", "is empty for a randomized participant")
    bad = _records()
    bad.loc[6, "visit_v1"] = "withdrawn"  # A-1 has no withdrawal
    assert _problem(bad)[0] == "column 'visit_v1'"
    bad = _records()
    bad.loc[6, "visit_v2"] = "finished"
    assert _problem(bad)[1].startswith("holds a status that is not")
    bad = _records()
    bad.at[0, "reasons"] = "age"
    assert _problem(bad)[0] == "column 'reasons'"
