"""Responder analyses: classification, counts, and intervals checked against hand computations."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import pytest

from lumbar.analysis import Columns, TrialData
from lumbar.analysis.responders import Definition, definitions_from, nnt_interval, responders
from lumbar.protocol import shipped_protocol

pytestmark = pytest.mark.unit


def _data(rows: Sequence[tuple[str, str, float, float | None]]) -> TrialData:
    frame = pd.DataFrame(rows, columns=["participant", "arm", "baseline", "y"])
    frame["visit"] = "week_10"
    return TrialData.from_frame(
        frame, Columns(outcome="y", baseline="baseline", reference="control", visits=("week_10",))
    )


POINTS_2 = Definition("small", ">= 2 points", "points", 2.0)
PERCENT_30 = Definition("percent", ">= 30%", "percent", 30.0)


def test_classification_under_points_and_percent() -> None:
    data = _data(
        [
            ("a", "control", 10, 8),  # -2 points: improved by 2 (20%)
            ("b", "control", 10, 11),  # worse by 1
            ("c", "control", 10, 13),  # worse by 3: deteriorated (30% worse)
            ("d", "active", 10, 6),  # improved by 4 (40%)
            ("e", "active", 20, 15),  # improved by 5 (25%)
            ("f", "active", 0, 0),  # baseline 0: cannot improve
        ]
    )
    result = responders(data, [POINTS_2, PERCENT_30])
    counts = result.counts.set_index(["definition", "arm"])
    columns = ["n", "improved", "unchanged", "deteriorated"]
    assert [counts.loc[("small", "control"), c] for c in columns] == [3, 1, 1, 1]
    assert [counts.loc[("small", "active"), c] for c in ["improved", "unchanged"]] == [2, 1]
    assert [counts.loc[("percent", "control"), c] for c in ["improved", "deteriorated"]] == [0, 1]
    assert [counts.loc[("percent", "active"), c] for c in ["improved", "unchanged"]] == [1, 2]


def test_higher_is_better_flips_the_direction() -> None:
    data = _data([("a", "control", 5, 8), ("b", "active", 5, 2)])
    result = responders(data, [POINTS_2], direction="higher_is_better")
    counts = result.counts.set_index("arm")
    assert counts.loc["control", "improved"] == 1
    assert counts.loc["active", "deteriorated"] == 1


def test_missing_outcomes_are_excluded_or_counted_as_non_responders() -> None:
    data = _data([("a", "control", 10, 5), ("b", "control", 10, None), ("c", "active", 10, 4)])
    excluded = responders(data, [POINTS_2]).counts.set_index("arm")
    assert [excluded.loc["control", c] for c in ["n", "improved"]] == [1, 1]
    counted = responders(data, [POINTS_2], missing="non_responder").counts.set_index("arm")
    assert [counted.loc["control", c] for c in ["n", "improved"]] == [2, 1]


def test_risk_difference_ratio_and_nnt_match_hand_computation() -> None:
    # Active 30/50 improved, control 15/50: RD 0.3, RR 2.0.
    rows = [(f"c{i}", "control", 10.0, 5.0 if i < 15 else 10.0) for i in range(50)]
    rows += [(f"a{i}", "active", 10.0, 5.0 if i < 30 else 10.0) for i in range(50)]
    (comparison,) = responders(_data(rows), [POINTS_2]).comparisons
    z = 1.959963984540054
    rd_se = math.sqrt(0.6 * 0.4 / 50 + 0.3 * 0.7 / 50)
    assert comparison.risk_difference == pytest.approx(0.3)
    assert comparison.rd_lower == pytest.approx(0.3 - z * rd_se)
    assert comparison.rd_upper == pytest.approx(0.3 + z * rd_se)
    log_se = math.sqrt(1 / 30 - 1 / 50 + 1 / 15 - 1 / 50)
    assert comparison.risk_ratio == pytest.approx(2.0)
    assert comparison.rr_lower == pytest.approx(2.0 * math.exp(-z * log_se))
    assert comparison.rr_upper == pytest.approx(2.0 * math.exp(z * log_se))
    assert comparison.nnt == pytest.approx(1 / 0.3)
    assert comparison.nnt_interval == (
        f"NNT (benefit) {1 / (0.3 + z * rd_se):.1f} to {1 / (0.3 - z * rd_se):.1f}"
    )


def test_an_empty_cell_uses_the_half_correction() -> None:
    rows = [(f"c{i}", "control", 10.0, 10.0) for i in range(10)]
    rows += [(f"a{i}", "active", 10.0, 5.0 if i < 4 else 10.0) for i in range(10)]
    (comparison,) = responders(_data(rows), [POINTS_2]).comparisons
    assert comparison.risk_ratio == pytest.approx((4.5 / 11) / (0.5 / 11))


def test_nnt_interval_when_the_difference_may_be_zero() -> None:
    assert nnt_interval(-0.1, 0.25) == "NNT (benefit) 4.0 to infinity to NNT (harm) 10.0"
    assert nnt_interval(-0.25, -0.1) == "NNT (harm) 4.0 to 10.0"


def test_reliable_change_uses_the_reliability_and_the_baseline_sd() -> None:
    # SD of baselines 10, 14 is sqrt(8); SEM = sqrt(8) * sqrt(1 - 0.5) = 2; S_diff = 2.828.
    rdq = Definition("reliable", "reliable change", "reliable", 1.96, reliability=0.5)
    data = _data([("a", "control", 10, 4.4), ("b", "active", 14, 8.5)])
    result = responders(data, [rdq])
    assert result.sem_used["reliable"] == pytest.approx(2.0)
    counts = result.counts.set_index("arm")
    assert counts.loc["control", "improved"] == 1  # 5.6 / 2.828 = 1.98 >= 1.96
    assert counts.loc["active", "improved"] == 0  # 5.5 / 2.828 = 1.94 < 1.96


def test_the_protocol_gives_four_definitions_for_the_rdq() -> None:
    definitions = definitions_from(shipped_protocol("massage-clbp").thresholds_for("rdq"))
    assert [(d.name, d.threshold) for d in definitions] == [
        ("percent", 30.0),
        ("mic", 5.0),
        ("small", 2.0),
        ("reliable", 1.96),
    ]
    assert definitions[3].reliability == pytest.approx(0.53)


def test_the_cumulative_curve_falls_from_everyone_to_no_one() -> None:
    rows = [(f"p{i}", "control" if i % 2 else "active", 10.0, float(10 - i % 7)) for i in range(40)]
    curve = responders(_data(rows), [POINTS_2]).curve
    for _, part in curve.groupby("arm"):
        shares = part.sort_values("threshold")["share"].tolist()
        assert shares[0] == 1.0
        assert shares == sorted(shares, reverse=True)
        assert shares[-1] > 0
