"""N-of-1 plan and analysis (lumbar.analysis.nof1) against hand-computed numbers."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from lumbar.analysis import nof1_analysis, nof1_plan, nof1_pooled
from lumbar.errors import AnalysisError


def _periods(pairs: list[tuple[float, float]]) -> pd.DataFrame:
    """(massage, none) scores per pair as a long frame of periods."""
    rows = []
    for index, (massage, none) in enumerate(pairs, start=1):
        rows.append({"pair": index, "condition": "none", "score": none})
        rows.append({"pair": index, "condition": "massage", "score": massage})
    return pd.DataFrame(rows)


def test_plan_is_reproducible_with_its_seed_and_balanced_within_pairs() -> None:
    plan = nof1_plan(pairs=6, period_days=7, seed=11)
    assert plan == nof1_plan(pairs=6, period_days=7, seed=11)
    frame = plan.to_frame()
    assert len(frame) == 12
    for _, pair in frame.groupby("pair"):
        assert sorted(pair["condition"]) == ["massage", "none"]
    # periods follow each other: period k starts on day (k - 1) x 7 + 1 and lasts 7 days
    assert list(frame["start_day"]) == [1 + 7 * k for k in range(12)]
    assert list(frame["end_day"] - frame["start_day"]) == [6] * 12


def test_plan_order_is_the_documented_numpy_draw() -> None:
    import numpy as np

    draws = np.random.default_rng(20261208).integers(0, 2, size=8)
    plan = nof1_plan(pairs=8, period_days=3, seed=20261208)
    firsts = [p.condition for p in plan.periods if p.period % 2 == 1]
    assert firsts == ["massage" if x else "none" for x in draws]
    # another seed gives another order (would fail if the seed were ignored)
    others = {
        tuple(p.condition for p in nof1_plan(pairs=8, period_days=3, seed=s).periods)
        for s in range(5)
    }
    assert len(others) > 1


@pytest.mark.parametrize(
    ("pairs", "days", "seed", "where"),
    [(1, 7, 0, "pairs"), (4, 0, 0, "period_days"), (4, 7, -1, "seed"), (2.5, 7, 0, "pairs")],
)
def test_plan_refuses_bad_input(pairs: object, days: object, seed: object, where: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        nof1_plan(pairs, days, seed)  # type: ignore[arg-type]
    assert where in str(caught.value)


def test_four_pairs_by_hand() -> None:
    # (massage, none) per pair; d = none - massage = 2, 1, 2.5, -1
    result = nof1_analysis(_periods([(3, 5), (4, 5), (2, 4.5), (6, 5)]))
    assert result.differences == (2.0, 1.0, 2.5, -1.0)
    # mean = 4.5 / 4 = 1.125
    assert result.mean_difference == pytest.approx(1.125)
    # deviations 0.875, -0.125, 1.375, -2.125; squares 0.765625 + 0.015625 + 1.890625
    # + 4.515625 = 7.1875; var = 7.1875 / 3 = 2.395833; sd = 1.547848
    assert result.sd == pytest.approx(math.sqrt(7.1875 / 3))
    # t(0.975; 3) = 3.182446 (scipy); half width = 3.182446 x 1.547848 / 2 = 2.462972
    t = stats.t.ppf(0.975, 3)
    assert t == pytest.approx(3.182446, abs=1e-6)
    assert (result.lower, result.upper) == pytest.approx((1.125 - 2.462972, 1.125 + 2.462972))
    assert result.df == 3
    # 16 sign patterns of the magnitudes 2, 1, 2.5, 1; |sum| >= |4.5| for exactly:
    #   2 + 1 + 2.5 + 1 = 6.5, 2 + 1 + 2.5 - 1 = 4.5 (observed), 2 - 1 + 2.5 + 1 = 4.5,
    # and their three mirror images (every sign flipped): 6 of 16
    assert (result.as_extreme, result.patterns) == (6, 16)
    assert result.p_value == pytest.approx(0.375)
    assert result.summary == (
        "In your 4 pairs of periods, your back bothered you on average 1.1 points less"
        " (0 to 10) in the periods with massage. If massage made no difference to you, a"
        " difference at least this large would still turn up in 6 of the 16 orders your"
        " periods could have been given, so it could well be chance."
    )


def test_three_pairs_all_better_with_massage_is_the_smallest_p_possible() -> None:
    # d = 1, 2, 3: mean 2, sd 1; only (+,+,+) and (-,-,-) reach |sum| = 6: p = 2/8
    result = nof1_analysis(_periods([(4, 5), (3, 5), (2, 5)]))
    assert result.mean_difference == pytest.approx(2.0)
    assert result.sd == pytest.approx(1.0)
    # t(0.975; 2) = 4.302653; half = 4.302653 / sqrt(3) = 2.484138
    assert (result.lower, result.upper) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert (result.as_extreme, result.patterns, result.p_value) == (2, 8, 0.25)
    assert result.to_frame()["difference"].tolist() == [1.0, 2.0, 3.0]
    assert result.to_dict()["n_pairs"] == 3


def test_worse_with_massage_and_unlikely_to_be_chance() -> None:
    # eight pairs, massage always 1 point worse: d = -1 each; only the two all-same
    # patterns reach |mean| = 1, p = 2 / 256 = 0.0078
    result = nof1_analysis(_periods([(5, 4)] * 8), scale="0 to 10 points")
    assert result.mean_difference == pytest.approx(-1.0)
    assert result.p_value == pytest.approx(2 / 256)
    assert "1 point more (0 to 10 points)" in result.summary
    assert result.summary.endswith("so it is unlikely to be chance alone.")


def test_analysis_refuses_bad_periods() -> None:
    good = _periods([(3, 5), (4, 5)])
    with pytest.raises(AnalysisError, match=r"periods\.score"):
        nof1_analysis(good.drop(columns="score"))
    with pytest.raises(AnalysisError, match=r"periods\.condition"):
        nof1_analysis(good.replace({"condition": {"none": "placebo"}}))
    with pytest.raises(AnalysisError, match="exactly one 'massage' and one 'none'"):
        nof1_analysis(good.iloc[:-1])
    with pytest.raises(AnalysisError, match="2 to 20 complete pairs"):
        nof1_analysis(good.iloc[:2])
    with pytest.raises(AnalysisError, match="finite number"):
        nof1_analysis(good.assign(score=[1.0, float("nan"), 2.0, 3.0]))


def test_pooled_balanced_design_matches_the_anova_estimates() -> None:
    # Balanced, 3 clients x 2 pairs: REML equals the ANOVA estimates when tau2 > 0.
    # client means 1, 3, 8 (d = 0,2 / 2,4 / 7,9); grand mean 4
    # within: every pair deviates by 1 -> SSW = 6, df 3, sigma2 = 2
    # between: MSB = 2 x ((1-4)^2 + (3-4)^2 + (8-4)^2) / 2 = 26; tau2 = (26 - 2) / 2 = 12
    # SE(mu) = sqrt(MSB / 6) = sqrt(26 / 6)
    rows = []
    for client, diffs in {"a": (0, 2), "b": (2, 4), "c": (7, 9)}.items():
        for pair, d in enumerate(diffs, start=1):
            rows.append({"client": client, "pair": pair, "condition": "none", "score": 5 + d})
            rows.append({"client": client, "pair": pair, "condition": "massage", "score": 5})
    result = nof1_pooled(pd.DataFrame(rows))
    assert result.mu == pytest.approx(4.0)
    assert result.sigma2 == pytest.approx(2.0, rel=1e-5)
    assert result.tau2 == pytest.approx(12.0, rel=1e-5)
    assert result.se == pytest.approx(math.sqrt(26 / 6), rel=1e-5)
    assert result.df == 2
    assert result.to_frame().loc[0, "clients"] == 3


def test_pooled_refuses_one_client() -> None:
    frame = _periods([(3, 5), (4, 5)]).assign(client="only")
    with pytest.raises(AnalysisError, match="at least 2 clients"):
        nof1_pooled(frame)
    with pytest.raises(AnalysisError, match=r"periods\.client"):
        nof1_pooled(frame.drop(columns="client"))
