"""Early non-response: "no relief by session k" against non-response, by hand.

The six-participant data set below is small enough to do every number on paper;
the arithmetic is in the comments next to each assertion.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lumbar.analysis.early_response import (
    Relief,
    auc_delong,
    early_response,
    session_changes,
)
from lumbar.errors import AnalysisError
from lumbar.estimates import wilson_interval

POINTS_2 = Relief("2 points", "points", 2)
PERCENT_50 = Relief("50 percent", "percent", 50)

#  participant  baseline  rating  improvement  responder
#  p1           8         7       1            no
#  p2           8         8       0            no
#  p3           6         3       3            no
#  p4           7         3       4            yes
#  p5           9         7       2            yes
#  p6           5         2       3            yes
TINY = pd.DataFrame(
    {
        "participant": ["p1", "p2", "p3", "p4", "p5", "p6"],
        "baseline": [8, 8, 6, 7, 9, 5],
        "rating": [7, 8, 3, 3, 7, 2],
        "responder": [False, False, False, True, True, True],
    }
)


def _tiny() -> pd.DataFrame:
    return TINY.copy()


def test_two_by_two_and_accuracy_by_hand_for_a_points_rule() -> None:
    result = early_response(_tiny(), [POINTS_2], session=2, folds=2, fold=[0, 1, 0, 0, 1, 1])
    rule = result.rules[0]
    # relief = improvement >= 2: p3, p4, p5, p6; no relief: p1, p2 (both non-responders)
    assert (
        rule.no_relief_non_responder,
        rule.no_relief_responder,
        rule.relief_non_responder,
        rule.relief_responder,
    ) == (2, 0, 1, 3)
    assert rule.sensitivity.estimate == pytest.approx(2 / 3)  # a / (a + c) = 2 / 3
    assert rule.specificity.estimate == pytest.approx(1.0)  # d / (b + d) = 3 / 3
    assert rule.ppv.estimate == pytest.approx(1.0)  # a / (a + b) = 2 / 2
    assert rule.npv.estimate == pytest.approx(3 / 4)  # d / (c + d) = 3 / 4
    assert (rule.npv.numerator, rule.npv.denominator) == (3, 4)


def test_percent_rule_by_hand_including_the_boundary() -> None:
    result = early_response(_tiny(), [PERCENT_50], session=3, folds=2, fold=[0, 1, 0, 0, 1, 1])
    rule = result.rules[0]
    # relief = 100 * improvement >= 50 * baseline:
    # p1 100 >= 400 no; p2 0 >= 400 no; p3 300 >= 300 yes (boundary); p4 400 >= 350 yes;
    # p5 200 >= 450 no; p6 300 >= 250 yes.
    # a = {p1, p2} = 2, b = {p5} = 1, c = {p3} = 1, d = {p4, p6} = 2
    assert (
        rule.no_relief_non_responder,
        rule.no_relief_responder,
        rule.relief_non_responder,
        rule.relief_responder,
    ) == (2, 1, 1, 2)
    for value in (rule.sensitivity, rule.specificity, rule.ppv, rule.npv):
        assert value.estimate == pytest.approx(2 / 3)
    assert result.session == 3


def test_a_zero_baseline_cannot_have_percent_relief() -> None:
    data = _tiny()
    data.loc[0, ["baseline", "rating"]] = [0, 0]
    rule = early_response(data, [Relief("any", "percent", 1)], session=2, folds=2).rules[0]
    # p1 now has baseline 0: no relief, still a non-responder; p2 (0 improvement) too
    assert rule.no_relief_non_responder == 2


def test_wilson_interval_matches_newcombe_1998() -> None:
    # Newcombe, Stat Med 1998;17:857, Table I, method 3 (score, no continuity correction)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)
    assert all(math.isnan(bound) for bound in wilson_interval(0, 0))


def test_wilson_interval_by_hand_for_two_of_three() -> None:
    z = 1.959963984540054
    n, p = 3, 2 / 3
    centre = p + z**2 / (2 * n)  # 0.66667 + 0.64026 = 1.30693
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))  # 1.95996 * sqrt(0.07407 + 0.10671)
    scale = 1 + z**2 / n  # 2.28051
    expected = ((centre - half) / scale, (centre + half) / scale)
    assert expected == pytest.approx((0.2077, 0.9385), abs=5e-5)
    result = early_response(_tiny(), [POINTS_2], session=2, folds=2, fold=[0, 1, 0, 0, 1, 1])
    sensitivity = result.rules[0].sensitivity
    assert (sensitivity.lower, sensitivity.upper) == pytest.approx(expected, rel=1e-12)


def test_auc_and_delong_variance_by_hand() -> None:
    result = early_response(_tiny(), [POINTS_2], session=2, folds=2, fold=[0, 1, 0, 0, 1, 1])
    # non-responders x = (1, 0, 3), responders y = (4, 2, 3); psi = 1 if y > x, 1/2 on a tie
    # x=1: 1, 1, 1 -> V10 = 1;  x=0: 1, 1, 1 -> V10 = 1;  x=3: 1, 0, 1/2 -> V10 = 1/2
    # AUC = (3 + 3 + 1.5) / 9 = 5/6
    assert result.auc == pytest.approx(5 / 6)
    # V01: y=4: 1; y=2: 2/3; y=3: 5/6.  var(V10) = ((1/6)^2 * 2 + (1/3)^2) / 2 = 1/12;
    # var(V01) = ((1/6)^2 + (1/6)^2 + 0) / 2 = 1/36.  var(AUC) = (1/12)/3 + (1/36)/3 = 1/27
    assert result.auc_variance == pytest.approx(1 / 27)
    half = 1.959963984540054 * math.sqrt(1 / 27)  # 0.37720
    assert result.auc_lower == pytest.approx(5 / 6 - half)
    assert result.auc_upper == 1.0  # 5/6 + 0.377 clipped to 1


def _delong_from_definition(x: list[float], y: list[float]) -> float:
    """DeLong et al. 1988, eq. for the structural components, written with plain loops."""
    m, n = len(x), len(y)

    def psi(a: float, b: float) -> float:
        return 1.0 if b > a else 0.5 if b == a else 0.0

    v10 = [sum(psi(a, b) for b in y) / n for a in x]
    v01 = [sum(psi(a, b) for a in x) / m for b in y]
    auc = sum(v10) / m
    s10 = sum((v - auc) ** 2 for v in v10) / (m - 1)
    s01 = sum((v - auc) ** 2 for v in v01) / (n - 1)
    return s10 / m + s01 / n


def test_delong_variance_agrees_with_a_loop_implementation_on_tied_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 5, 23).astype(float)
    y = rng.integers(0, 7, 31).astype(float)
    auc, variance, _, _ = auc_delong(x, y)
    assert variance == pytest.approx(_delong_from_definition(list(x), list(y)), rel=1e-12)
    # the Mann-Whitney U of scipy, as another route to the AUC with ties 1/2
    from scipy.stats import mannwhitneyu

    assert auc == pytest.approx(mannwhitneyu(y, x).statistic / (len(x) * len(y)), rel=1e-12)


def test_auc_is_one_half_for_identical_distributions_and_one_for_separation() -> None:
    same = np.array([1.0, 2.0, 3.0, 4.0])
    assert auc_delong(same, same)[0] == pytest.approx(0.5)
    auc, variance, lower, upper = auc_delong(np.array([0.0, 1.0, 2.0]), np.array([3.0, 4.0]))
    assert (auc, variance, lower, upper) == (1.0, 0.0, 1.0, 1.0)
    assert auc_delong(np.array([3.0, 4.0]), np.array([0.0, 1.0]))[0] == 0.0


def test_all_ties_count_one_half() -> None:
    assert auc_delong(np.array([2.0, 2.0]), np.array([2.0, 2.0, 2.0]))[0] == 0.5


def test_roc_runs_from_no_one_flagged_to_everyone_flagged() -> None:
    roc = early_response(_tiny(), [POINTS_2], session=2, folds=2).roc
    assert (roc["sensitivity"].iloc[0], roc["specificity"].iloc[0]) == (0.0, 1.0)
    assert (roc["sensitivity"].iloc[-1], roc["specificity"].iloc[-1]) == (1.0, 0.0)
    # "no relief" = improvement < 2 flags p1, p2: sensitivity 2/3, specificity 1
    row = roc.loc[roc["threshold"] == 2].iloc[0]
    assert (row["sensitivity"], row["specificity"]) == pytest.approx((2 / 3, 1.0))


def test_in_sample_youden_threshold_by_hand() -> None:
    cv = early_response(
        _tiny(), [POINTS_2], session=2, folds=2, fold=[0, 1, 0, 0, 1, 1]
    ).cross_validation
    assert cv is not None
    # candidates 0..4 (relief = improvement >= t, "no relief" = improvement < t):
    # J(0) = 0 + 1 - 1 = 0; J(1) = 1/3 + 1 - 1 = 1/3 (p2); J(2) = 2/3 + 1 - 1 = 2/3 (p1, p2);
    # J(3) = 2/3 + 2/3 - 1 = 1/3 (p1, p2, p5); J(4) = 1 + 1/3 - 1 = 1/3
    assert cv.in_sample_threshold == 2
    assert cv.in_sample_sensitivity.estimate == pytest.approx(2 / 3)
    assert cv.in_sample_specificity.estimate == pytest.approx(1.0)
    # fold 0 = p1, p3, p4 held out; trained on p2 (0, NR), p5 (2, R), p6 (3, R), candidates
    # 0, 2, 3: J(0) = 0, J(2) = 1 + 1 - 1 = 1, J(3) = 1 + 1/2 - 1: threshold 2, so held out
    # p1 (1) no relief, p3 (3) relief, p4 (4) relief.
    # fold 1 = p2, p5, p6 held out; trained on p1 (1, NR), p3 (3, NR), p4 (4, R), candidates
    # 1, 3, 4: J(1) = 0, J(3) = 1/2, J(4) = 1: threshold 4, so p2, p5, p6 all "no relief".
    assert cv.fold_thresholds == (2.0, 4.0)
    # pooled: non-responders p1, p2 no relief, p3 relief -> sensitivity 2/3;
    # responders p4 relief, p5 and p6 no relief -> specificity 1/3
    assert cv.out_of_sample_sensitivity.estimate == pytest.approx(2 / 3)
    assert cv.out_of_sample_specificity.estimate == pytest.approx(1 / 3)
    assert cv.optimism == pytest.approx((2 / 3 + 1) - (2 / 3 + 1 / 3))


def test_cross_validation_is_seeded_stratified_and_shows_optimism_on_noise() -> None:
    rng = np.random.default_rng(11)
    n = 200
    baseline = rng.integers(4, 11, n)
    data = pd.DataFrame(
        {
            "participant": [f"s{i}" for i in range(n)],
            "baseline": baseline,
            "rating": np.clip(baseline - rng.integers(-2, 5, n), 0, 10),
            "responder": rng.random(n) < 0.4,  # unrelated to the ratings
        }
    )
    first = early_response(data, [POINTS_2], session=2, folds=5, seed=4)
    again = early_response(data, [POINTS_2], session=2, folds=5, seed=4)
    assert first.cross_validation == again.cross_validation
    cv = first.cross_validation
    assert cv is not None
    # every held-out participant is counted once
    assert cv.out_of_sample_sensitivity.denominator == first.non_responders
    assert cv.out_of_sample_specificity.denominator == n - first.non_responders
    # in-sample J of the chosen threshold is > 0 on pure noise; out of sample it shrinks
    assert cv.optimism > 0
    frame = first.cross_validation_frame()
    assert set(frame["sample"]) == {"in_sample", "out_of_sample"}


def test_to_frame_has_one_row_per_relief_and_measure() -> None:
    result = early_response(_tiny(), [POINTS_2, PERCENT_50], session=2, folds=2)
    frame = result.to_frame()
    assert len(frame) == 8
    assert set(frame["measure"]) == {"sensitivity", "specificity", "ppv", "npv"}
    assert "AUC 0.833" in str(result)
    assert "less than 2 points; 50%" in result.method_text
    assert result.to_dict()["method_text"] == result.method_text


def test_missing_rating_is_refused_naming_the_field() -> None:
    data = _tiny()
    data.loc[2, "rating"] = np.nan
    with pytest.raises(AnalysisError) as error:
        early_response(data, [POINTS_2], session=2, folds=2)
    assert "rating: must be a number for every participant (no missing ratings)" in str(error.value)
    assert "p3" in str(error.value)


def test_non_boolean_responder_is_refused() -> None:
    data = _tiny()
    data["responder"] = [0, 0, 0, 1, 1, 1]
    with pytest.raises(AnalysisError) as error:
        early_response(data, [POINTS_2], session=2, folds=2)
    assert "responder: must be a boolean column" in str(error.value)


@pytest.mark.parametrize("session", [1, 0, -3])
def test_session_before_two_is_refused(session: int) -> None:
    with pytest.raises(AnalysisError) as error:
        early_response(_tiny(), [POINTS_2], session=session, folds=2)
    assert "session: must be a whole number >= 2" in str(error.value)


def test_a_non_positive_relief_threshold_is_refused_naming_the_rule() -> None:
    with pytest.raises(AnalysisError) as error:
        early_response(_tiny(), [Relief("none", "points", 0)], session=2, folds=2)
    assert "relief none.threshold: must be a positive number" in str(error.value)


def test_too_few_per_class_for_the_folds_is_refused() -> None:
    with pytest.raises(AnalysisError) as error:
        early_response(_tiny(), [POINTS_2], session=2, folds=5)
    assert "needs at least 5 non-responders and 5 responders" in str(error.value)


def test_session_changes_builds_the_per_participant_frame_from_tidy_ratings() -> None:
    ratings = pd.DataFrame(
        {
            "participant": ["a", "a", "a", "b", "b", "c"],
            "session": [1, 2, 3, 1, 3, 1],
            "rating": [8, 6, 5, 7, 7, 9],
        }
    )
    responder = pd.Series({"a": True, "b": False, "c": False})
    frame = session_changes(ratings, responder, 3)
    assert frame.to_dict(orient="list") == {
        "participant": ["a", "b"],
        "baseline": [8.0, 7.0],
        "rating": [5.0, 7.0],
        "responder": [True, False],
    }
    assert list(session_changes(ratings, responder, 2)["participant"]) == ["a"]


def test_delong_interval_is_undefined_with_one_participant_in_a_group() -> None:
    auc, variance, lower, upper = auc_delong(np.array([1.0]), np.array([2.0, 0.0]))
    assert auc == 0.5
    assert all(math.isnan(value) for value in (variance, lower, upper))


def test_given_folds_must_leave_both_groups_in_training() -> None:
    with pytest.raises(AnalysisError) as error:
        # fold 0 holds out every non-responder (p1, p2, p3)
        early_response(_tiny(), [POINTS_2], session=2, folds=2, fold=[0, 0, 0, 1, 1, 1])
    assert "fold: must leave non-responders and responders in every training set" in str(
        error.value
    )
