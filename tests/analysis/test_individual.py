"""One client's change: reliable change and the trial's thresholds, checked by hand.

The Roland-Morris (RDQ) figures used throughout, from the instrument registry:
SEM = 3.7 points (Davidson & Keating, Phys Ther 2002;82:8), so
    S_diff = sqrt(2) x 3.7 = 1.414214 x 3.7 = 5.232590
    reliable change (95%) = 1.96 x 5.232590 = 10.255877 points
and the thresholds 30% of baseline, 5 points (Ostelo 2008), 2 points (Cherkin 2011).
"""

from __future__ import annotations

import math

import pytest

from lumbar.analysis import client_change, trajectory
from lumbar.analysis.individual import CATEGORIES, measurement_error
from lumbar.errors import AnalysisError, InstrumentError
from lumbar.instruments import MeasurementProperties, Reference, get_instrument

pytestmark = pytest.mark.unit

RDQ_S_DIFF = 5.232590  # sqrt(2) x 3.7
RDQ_RELIABLE = 10.255877  # 1.96 x 5.232590
JARGON = ("RCI", "SEM", "standard error", "ICC", "measurement error", "reliab")


def _verdicts(change: object) -> dict[str, tuple[float, bool, str]]:
    return {
        verdict.definition.name: (verdict.needed, verdict.met, verdict.category)
        for verdict in change.thresholds  # type: ignore[attr-defined]
    }


def test_rdq_uses_the_published_sem_and_its_source() -> None:
    error = measurement_error(get_instrument("rdq").properties)
    assert error.sem == 3.7
    assert "Davidson" in error.source
    assert error.method == "published SEM"
    assert error.s_diff == pytest.approx(RDQ_S_DIFF, abs=1e-6)
    assert error.reliable_change == pytest.approx(RDQ_RELIABLE, abs=1e-6)


def test_rdq_eleven_points_down_is_reliably_improved() -> None:
    # 20 -> 9: improvement 11 (lower is better); RCI = 11 / 5.232590 = 2.102209 >= 1.96.
    change = client_change("rdq", 20, 9)
    assert change.change == -11
    assert change.improvement == 11
    assert change.rci == pytest.approx(2.102209, abs=1e-6)
    assert change.category == "reliably improved"
    # 30% of 20 = 6 (met), 5 (met), 2 (met); each also beyond error.
    assert _verdicts(change) == {
        "percent": (pytest.approx(6.0), True, "reliably improved"),
        "mic": (5.0, True, "reliably improved"),
        "small": (2.0, True, "reliably improved"),
    }
    assert "went down 11 points, from 20 to 9" in change.reason
    assert "about 10.3 points" in change.reason
    assert "real improvement" in change.reason


def test_rdq_change_just_below_and_just_above_the_reliable_change() -> None:
    # A prorated RDQ can be fractional. 20 -> 9.75: improvement 10.25 < 10.255877;
    # 20 -> 9.74: improvement 10.26 > 10.255877.
    below = client_change("rdq", 20, 9.75)
    above = client_change("rdq", 20, 9.74)
    assert below.rci == pytest.approx(10.25 / RDQ_S_DIFF, abs=1e-6)  # 1.958874
    assert below.category == "improved but within measurement error"
    assert above.rci == pytest.approx(10.26 / RDQ_S_DIFF, abs=1e-6)  # 1.960785
    assert above.category == "reliably improved"
    # Whole scores: 10 points is not enough (RCI 10 / 5.232590 = 1.911099).
    assert client_change("rdq", 20, 10).category == "improved but within measurement error"


def test_rdq_six_points_meets_every_threshold_but_is_within_error() -> None:
    # 14 -> 8: improvement 6; RCI = 6 / 5.232590 = 1.146660. 30% of 14 = 4.2 (met), 5, 2 met.
    change = client_change("rdq", 14, 8)
    assert change.rci == pytest.approx(1.146660, abs=1e-6)
    assert change.category == "improved but within measurement error"
    assert _verdicts(change) == {
        "percent": (pytest.approx(4.2), True, "improved but within measurement error"),
        "mic": (5.0, True, "improved but within measurement error"),
        "small": (2.0, True, "improved but within measurement error"),
    }
    assert "cannot yet be sure" in change.reason
    assert "(here 4.2 points)" in change.thresholds[0].reason


def test_rdq_small_worsening_is_no_reliable_change() -> None:
    # 14 -> 17: improvement -3; RCI = -3 / 5.232590 = -0.573330, inside +-1.96.
    change = client_change("rdq", 14, 17)
    assert change.improvement == -3
    assert change.rci == pytest.approx(-0.573330, abs=1e-6)
    assert change.category == "no reliable change"
    assert {verdict.met for verdict in change.thresholds} == {False}
    assert {verdict.category for verdict in change.thresholds} == {"no reliable change"}
    assert "went up 3 points" in change.reason
    assert "not a real change either way" in change.reason


def test_rdq_eleven_points_up_is_reliably_worse() -> None:
    # 10 -> 21: improvement -11; RCI = -2.102209 <= -1.96.
    change = client_change("rdq", 10, 21)
    assert change.rci == pytest.approx(-2.102209, abs=1e-6)
    assert change.category == "reliably worse"
    assert {verdict.category for verdict in change.thresholds} == {"reliably worse"}
    assert "real worsening" in change.reason


def test_rdq_client_at_the_floor() -> None:
    # Baseline 0 is the best possible: no change, and 30% of 0 cannot be met.
    change = client_change("rdq", 0, 0)
    assert change.category == "no reliable change"
    assert _verdicts(change)["percent"] == (0.0, False, "no reliable change")
    assert "already the best possible" in change.reason
    assert "nothing to improve" in change.thresholds[0].reason
    # Baseline 2 -> 0: improvement 2 (RCI 0.382220); 5 points not met, 2 points met inside
    # error, 30% of 2 = 0.6 met inside error; at most 2 points of room, below 10.3.
    near = client_change("rdq", 2, 0)
    assert near.rci == pytest.approx(0.382220, abs=1e-6)
    assert _verdicts(near) == {
        "percent": (pytest.approx(0.6), True, "improved but within measurement error"),
        "mic": (5.0, False, "no reliable change"),
        "small": (2.0, True, "improved but within measurement error"),
    }
    assert "room for at most 2 points" in near.reason


def test_thresholds_come_from_the_properties_given() -> None:
    # A protocol overriding the MIC to 3 points: 14 -> 10 (improvement 4) now meets it.
    rdq = get_instrument("rdq")
    protocol = rdq.properties.merged(
        MeasurementProperties(minimal_important_change=Reference(value=3, source="protocol"))
    )
    assert _verdicts(client_change("rdq", 14, 10))["mic"][1] is False
    assert _verdicts(client_change("rdq", 14, 10, properties=protocol))["mic"][1] is True


def test_missing_sem_cannot_be_judged_and_says_why() -> None:
    # Bothersomeness has no published SEM or reliability in the registry.
    change = client_change("bothersomeness", 7, 4)
    assert change.rci is None
    assert change.reliable_change is None
    assert change.category == "cannot be judged"
    assert "no measurement error" in change.error.why
    assert "has not been published" in change.reason
    # 30% of 7 = 2.1 (improvement 3 meets it); 2 points met. No "small" threshold published.
    assert _verdicts(change) == {
        "percent": (pytest.approx(2.1), True, "cannot be judged"),
        "mic": (2.0, True, "cannot be judged"),
    }


def test_reliability_and_reference_sd_give_the_sem() -> None:
    # SEM = SD x sqrt(1 - r) = 4 x sqrt(1 - 0.75) = 4 x 0.5 = 2;
    # reliable change = 1.96 x sqrt(2) x 2 = 1.96 x 2.828427 = 5.543717.
    properties = MeasurementProperties(
        reliability=Reference(value=0.75, source="test figure r"),
        reference_sd=Reference(value=4, source="test figure SD"),
    )
    change = client_change("pain_intensity", 8, 2, properties=properties)
    assert change.error.sem == pytest.approx(2.0)
    assert change.reliable_change == pytest.approx(5.543717, abs=1e-6)
    assert change.rci == pytest.approx(6 / 2.828427, abs=1e-6)  # 2.121320
    assert change.category == "reliably improved"
    assert "test figure r" in change.error.source
    # Reliability without an SD: cannot be judged, and the reason names the SD.
    bare = MeasurementProperties(reliability=Reference(value=0.75, source="r"))
    unjudged = client_change("pain_intensity", 8, 2, properties=bare)
    assert unjudged.category == "cannot be judged"
    assert "reference SD" in unjudged.error.why


def test_higher_is_better_instrument_turns_the_sign() -> None:
    # Satisfaction (1-5, higher is better) with a test SEM of 0.5:
    # S_diff = 0.707107, reliable change = 1.385929. 2 -> 4: improvement +2, RCI 2.828427.
    properties = MeasurementProperties(
        sem=Reference(value=0.5, source="test figure"),
        minimal_important_change=Reference(value=1, source="test figure"),
    )
    up = client_change("satisfaction", 2, 4, properties=properties)
    assert up.improvement == 2
    assert up.rci == pytest.approx(2.828427, abs=1e-6)
    assert up.category == "reliably improved"
    assert "went up 2 points" in up.reason
    assert "higher is better" in up.reason
    down = client_change("satisfaction", 4, 2, properties=properties)
    assert down.improvement == -2
    assert down.category == "reliably worse"
    # 2 -> 3: improvement 1 meets the 1-point threshold; RCI 1.414214 < 1.96.
    small = client_change("satisfaction", 2, 3, properties=properties)
    assert _verdicts(small)["mic"] == (1.0, True, "improved but within measurement error")


def test_reliable_change_below_a_threshold_is_not_reliably_improved_under_it() -> None:
    # SEM 0.5: reliable change 1.385929. 2 -> 4 (satisfaction): improvement 2, RCI 2.828427,
    # so the change is reliable; a 3-point threshold is not met: under it, no improvement.
    properties = MeasurementProperties(
        sem=Reference(value=0.5, source="test figure"),
        minimal_important_change=Reference(value=3, source="test figure"),
    )
    change = client_change("satisfaction", 2, 4, properties=properties)
    assert change.category == "reliably improved"
    assert _verdicts(change)["mic"] == (3.0, False, "no reliable change")
    assert "does not reach it" in change.thresholds[0].reason


def test_results_as_dicts_for_a_chart() -> None:
    record = client_change("rdq", 20, 9).to_dict()
    assert record["category"] == "reliably improved"
    assert record["reliable_change"] == pytest.approx(RDQ_RELIABLE, abs=1e-6)
    assert record["thresholds"][1]["definition"]["name"] == "mic"
    chart = trajectory("rdq", [(1, 14), (2, 3)]).to_dict()
    assert chart["band_low"] == pytest.approx(3.744123, abs=1e-6)
    assert chart["points"][1]["change"]["improvement"] == 11


def test_every_category_is_reached_and_reasons_avoid_jargon() -> None:
    changes = [
        client_change("rdq", 20, 9),
        client_change("rdq", 14, 8),
        client_change("rdq", 14, 17),
        client_change("rdq", 10, 21),
        client_change("rdq", 0, 0),
        client_change("rdq", 2, 0),
        client_change("bothersomeness", 7, 4),
    ]
    assert {change.category for change in changes} == set(CATEGORIES)
    reasons = [change.reason for change in changes]
    reasons += [verdict.reason for change in changes for verdict in change.thresholds]
    for reason in reasons:
        for word in JARGON:
            assert word not in reason, (word, reason)


def test_trajectory_band_and_points() -> None:
    # Baseline 14: band 14 - 10.255877 = 3.744123 to 14 + 10.255877 = 24.26, clipped to 24.
    chart = trajectory("rdq", [(1, 14), (2, 12), (3, 3)])
    assert chart.baseline == 14
    assert chart.band_low == pytest.approx(3.744123, abs=1e-6)
    assert chart.band_high == 24
    assert [point.when for point in chart.points] == [1, 2, 3]
    assert chart.points[0].change is None
    second, third = chart.points[1].change, chart.points[2].change
    assert second is not None
    assert third is not None
    assert second.improvement == 2
    assert second.category == "improved but within measurement error"
    assert third.improvement == 11
    assert third.category == "reliably improved"
    # Without a published error there is no band.
    assert trajectory("bothersomeness", [("week 0", 7), ("week 10", 3)]).band_low is None


def test_score_outside_the_range_is_refused_naming_the_field_and_rule() -> None:
    with pytest.raises(AnalysisError) as caught:
        client_change("rdq", 12, 25)
    (problem,) = caught.value.problems
    assert problem.where == "current"
    assert "from 0 to 24" in problem.rule
    assert problem.received == 25
    with pytest.raises(AnalysisError) as caught:
        client_change("rdq", -1, 5)
    assert caught.value.problems[0].where == "baseline"
    with pytest.raises(AnalysisError) as caught:
        client_change("rdq", math.nan, 5)
    assert "finite number" in caught.value.problems[0].rule
    with pytest.raises(AnalysisError) as caught:
        trajectory("rdq", [(1, 10), (2, 30)])
    assert caught.value.problems[0].where == "scores[1].score"


def test_unknown_instrument_score_or_directionless_score_is_refused() -> None:
    with pytest.raises(InstrumentError, match="rdqq"):
        client_change("rdqq", 10, 5)
    with pytest.raises(AnalysisError) as caught:
        client_change("rdq", 10, 5, score="mean")
    assert caught.value.problems[0].where == "score"
    with pytest.raises(AnalysisError, match="direction"):
        client_change("lifestyle", 7, 8)
    with pytest.raises(AnalysisError) as caught:
        trajectory("rdq", [])
    assert caught.value.problems[0].where == "scores"
    with pytest.raises(AnalysisError) as caught:
        trajectory("rdq", [(1, 10), (1, 8)])
    assert caught.value.problems[0].where == "scores[1].when"
