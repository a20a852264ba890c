"""Simulated power: each trial's ANCOVA is statsmodels' OLS, and the power is the analytic one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from lumbar.design import (
    DesignError,
    Scenario,
    ancova_trials,
    power_ancova,
    simulate_power,
    simulate_trials,
)
from lumbar.design import simulation as simulation_module
from lumbar.estimates import wilson_interval
from lumbar.report.figures import power_figure

pytestmark = pytest.mark.unit

RDQ = Scenario.uniform("RDQ", difference=-2, sd=5, baseline_correlation=0.55, dropout=0.12, arms=3)


def _statsmodels(frame: pd.DataFrame, arms: int) -> Any:
    columns: list[np.ndarray] = [np.ones(len(frame))]
    columns += [(frame["arm"] == arm).to_numpy(dtype=float) for arm in range(1, arms)]
    columns.append(frame["baseline"].to_numpy())
    return sm.OLS(frame["outcome"].to_numpy(), np.column_stack(columns)).fit()


@pytest.mark.parametrize(
    ("scenario", "n", "ratio"),
    [
        (RDQ, 40, 1.0),
        (Scenario.uniform("two arms", difference=1, sd=2, baseline_correlation=0.3), 25, 1.0),
        (
            Scenario(
                "unequal, missing by baseline",
                difference=(1.5, -0.5),
                sd=2.3,
                baseline_correlation=0.6,
                dropout=(0.1, 0.3, 0.0),
                missing="baseline",
            ),
            30,
            1.5,
        ),
    ],
    ids=["three_arms_mcar", "two_arms", "unequal_mar"],
)
def test_each_trial_equals_statsmodels_ols(scenario: Scenario, n: int, ratio: float) -> None:
    trials = simulate_trials(scenario, n, 6, np.random.default_rng(7), allocation_ratio=ratio)
    fit = ancova_trials(trials.baseline, trials.outcome, trials.observed)
    for index in range(trials.trials):
        reference = _statsmodels(trials.participants(index), scenario.arms)
        arms = slice(1, scenario.arms)
        np.testing.assert_allclose(fit.estimate[index], reference.params[arms], rtol=0, atol=1e-10)
        np.testing.assert_allclose(fit.se[index], reference.bse[arms], rtol=0, atol=1e-10)
        np.testing.assert_allclose(fit.p[index], reference.pvalues[arms], rtol=0, atol=1e-10)
        assert fit.slope[index] == pytest.approx(reference.params[-1], abs=1e-10)
        assert fit.df[index] == reference.df_resid


def test_simulated_arms_have_their_sizes_and_dropout() -> None:
    scenario = Scenario("sizes", (1.0,), 1.0, 0.5, (0.0, 0.5))
    trials = simulate_trials(scenario, 40, 500, np.random.default_rng(3), allocation_ratio=2)
    assert trials.sizes == (40, 80)
    analysed = trials.observed.sum(axis=2).mean(axis=0)
    assert analysed[0] == 40
    assert analysed[1] == pytest.approx(40, abs=1.0)
    assert not trials.observed[:, 0, 40:].any()  # the reference arm's unused slots


def test_missing_by_baseline_keeps_the_dropout_rate_and_drops_the_worse() -> None:
    scenario = Scenario.uniform(
        "mar", difference=0, sd=5, baseline_correlation=0.5, dropout=0.2, missing="baseline"
    )
    trials = simulate_trials(scenario, 200, 200, np.random.default_rng(11))
    assert 1 - trials.observed.mean() == pytest.approx(0.2, abs=0.01)
    assert trials.baseline[~trials.observed].mean() > trials.baseline[trials.observed].mean() + 2


def test_simulation_is_reproducible_and_independent_of_chunking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options: dict[str, Any] = {"trials": 700, "seed": 5}
    first = simulate_power([RDQ], [30, 60], **options).to_frame()
    again = simulate_power([RDQ], [30, 60], **options).to_frame()
    pd.testing.assert_frame_equal(first, again)
    monkeypatch.setattr(simulation_module, "CHUNK_VALUES", 1000)  # 8 trials a chunk
    pd.testing.assert_frame_equal(first, simulate_power([RDQ], [30, 60], **options).to_frame())
    # Another grid leaves the shared size's numbers alone; another seed changes them.
    alone = simulate_power([RDQ], [60], **options).to_frame()
    pd.testing.assert_frame_equal(
        first[first["n"] == 60].reset_index(drop=True), alone.reset_index(drop=True)
    )
    other = simulate_power([RDQ], [60], trials=700, seed=6).to_frame()
    assert not other["rejections"].equals(alone["rejections"])


def test_simulated_power_agrees_with_the_exact_analytic_power() -> None:
    scenario = Scenario.uniform("r 0.5", difference=2, sd=5, baseline_correlation=0.5)
    trials = 20_000
    result = simulate_power([scenario], [20, 45, 80], trials=trials, seed=20110705)
    for n in (20, 45, 80):
        simulated = result.point("r 0.5", n).power
        exact = power_ancova(n, 2, 5, baseline_correlation=0.5, method="exact").power
        borm = power_ancova(n, 2, 5, baseline_correlation=0.5).power
        error = math.sqrt(exact * (1 - exact) / trials)
        assert abs(simulated - exact) < 4 * error
        assert simulated > borm - 4 * error  # Borm's rule is conservative


def test_simulated_power_with_three_arms_bonferroni_and_dropout() -> None:
    result = simulate_power(
        [RDQ], [100], trials=10_000, seed=1, multiplicity="bonferroni", arm_names=("uc", "s", "r")
    )
    assert result.comparisons == ("s vs uc", "r vs uc")
    expected = power_ancova(
        100,
        2,
        5,
        baseline_correlation=0.55,
        dropout=0.12,
        arms=3,
        multiplicity="bonferroni",
        method="exact",
    ).power
    frame: Any = result.to_frame().set_index("comparison")
    for comparison in result.comparisons:
        # The analytic power uses the expected number analysed, so allow a little more.
        assert frame.loc[comparison, "power"] == pytest.approx(expected, abs=0.02)
        assert frame.loc[comparison, "mean_estimate"] == pytest.approx(-2, abs=0.05)
    assert frame.loc["all", "power"] < frame.loc[result.comparisons[0], "power"]
    assert frame.loc["any", "power"] > frame.loc[result.comparisons[0], "power"]
    assert frame.loc["all", "mean_analysed"] == pytest.approx(300 * 0.88, abs=1)


def test_a_null_scenario_rejects_at_about_alpha() -> None:
    null = Scenario.uniform("null", difference=0, sd=1, baseline_correlation=0.7, dropout=0.2)
    point = simulate_power([null], [30], trials=20_000, seed=3).point("null", 30)
    assert abs(point.power - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 20_000)


def test_one_sided_looks_in_the_direction_of_the_difference() -> None:
    worse = Scenario.uniform("lower is better", difference=-1, sd=2, baseline_correlation=0.5)
    point = simulate_power([worse], [50], trials=5000, seed=2, two_sided=False).point(
        "lower is better", 50
    )
    expected = power_ancova(
        50, -1, 2, baseline_correlation=0.5, two_sided=False, method="exact"
    ).power
    assert point.power == pytest.approx(
        expected, abs=4 * math.sqrt(expected * (1 - expected) / 5000)
    )


def test_a_trial_without_an_analysable_arm_gives_nan_and_never_rejects() -> None:
    rng = np.random.default_rng(0)
    baseline = rng.standard_normal((3, 2, 10))
    outcome = rng.standard_normal((3, 2, 10))
    observed = np.ones((3, 2, 10), dtype=bool)
    observed[1, 1] = False  # nobody observed in trial 1's treatment arm
    baseline[2] = 1.0  # a constant baseline in trial 2
    fit = ancova_trials(baseline, outcome, observed)
    assert np.isfinite(fit.estimate[0]).all()
    assert np.isnan(fit.estimate[1:]).all()
    assert not fit.rejects(0.5)[1:].any()


def test_batched_analysis_works_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    trials = simulate_trials(RDQ, 20, 50, np.random.default_rng(4))
    whole = ancova_trials(trials.baseline, trials.outcome, trials.observed)
    monkeypatch.setattr(simulation_module, "CHUNK_VALUES", 7 * 60)
    chunked = ancova_trials(trials.baseline, trials.outcome, trials.observed)
    np.testing.assert_array_equal(whole.estimate, chunked.estimate)
    np.testing.assert_array_equal(whole.df, chunked.df)


def test_bad_arrays_and_inputs_are_refused() -> None:
    with pytest.raises(DesignError, match="must be arrays of one shape"):
        ancova_trials(np.zeros((2, 2, 5)), np.zeros((2, 2, 4)))
    with pytest.raises(DesignError) as caught:
        simulate_power([RDQ], [1], trials=0, seed=-1, alpha=2)
    assert {p.where for p in caught.value.problems} == {"trials", "seed", "alpha", "n_per_arm"}
    with pytest.raises(DesignError, match="same number of arms"):
        simulate_power(
            [RDQ, Scenario.uniform("2", difference=1, sd=1, baseline_correlation=0)],
            [10],
            trials=1,
            seed=1,
        )
    with pytest.raises(DesignError, match="scenario 'x': baseline_correlation"):
        Scenario.uniform("x", difference=1, sd=1, baseline_correlation=1)
    with pytest.raises(DesignError, match="dropout: needs one share per arm"):
        Scenario("x", (1.0,), 1.0, 0.5, (0.1,))


def test_wilson_interval() -> None:
    # Wilson (1927): 8 of 10 at 95% -> 0.490 to 0.943.
    lower, upper = wilson_interval(8, 10)
    assert (round(lower, 3), round(upper, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 50)[0] == 0.0


def test_the_power_curve_feeds_the_power_figure() -> None:
    result = simulate_power([RDQ], [20, 60, 100], trials=300, seed=9)
    curve = result.curve()
    assert list(curve.columns) == ["n", "power", "scenario", "lower", "upper"]
    assert set(curve["scenario"]) == {f"RDQ: {c}" for c in result.comparisons}
    assert (curve["lower"] <= curve["power"]).all()
    assert (curve["power"] <= curve["upper"]).all()
    figure = power_figure(curve, target=0.8, title="Power", name="power", x_label="n per arm")
    try:
        assert "<svg" in figure.svg()
    finally:
        figure.close()
    document = result.to_dict()
    assert document["seed"] == 9
    assert document["trials"] == 300
    assert "Wilson" in result.method_text
