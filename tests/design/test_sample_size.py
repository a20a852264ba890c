"""Analytic sample size and power: the formulas by hand, their shape, and their errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate, special, stats

from lumbar.design import (
    DesignError,
    PowerAssumptions,
    power_ancova,
    power_curve,
    protocol_defaults,
    sample_size_ancova,
)
from lumbar.design.assumptions import Method
from lumbar.design.sample_size import analysed_power, t_test_power
from lumbar.protocol import Protocol

pytestmark = pytest.mark.unit


def _normal_approximation(difference: float, sd: float, alpha: float, power: float) -> float:
    # n per arm = 2 (z_{1-alpha/2} + z_{power})^2 sd^2 / difference^2 (e.g. Machin et al.)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return 2 * z * z * sd * sd / (difference * difference)


def test_t_test_size_is_the_normal_approximation_rounded_up_or_one_more() -> None:
    for difference, sd in ((0.5, 1.0), (2.0, 5.0), (1.5, 2.3)):
        approximate = _normal_approximation(difference, sd, 0.05, 0.8)
        n = sample_size_ancova(difference, sd).randomized_reference
        # The t distribution's heavier tails cost about one participant per arm.
        assert math.ceil(approximate) <= n <= math.ceil(approximate) + 2


def test_ancova_size_is_the_t_test_size_with_the_deflated_sd_plus_one_per_arm() -> None:
    # Borm et al. 2007: ANCOVA needs (1 - rho^2) x the t test's n, plus one per arm.
    for rho in (0.0, 0.3, 0.55, 0.8):
        ancova = sample_size_ancova(2, 5, baseline_correlation=rho)
        t_test = sample_size_ancova(2, 5 * math.sqrt(1 - rho * rho))
        assert ancova.randomized_reference == t_test.randomized_reference + 1
    by_hand = (1 - 0.55**2) * _normal_approximation(2, 5, 0.05, 0.8) + 1
    assert abs(sample_size_ancova(2, 5, baseline_correlation=0.55).analysed_reference - by_hand) < 2


def test_rdq_example_by_hand() -> None:
    # 2 RDQ points, SD 5, r = 0.55: t test 100 per arm; ANCOVA (1 - 0.3025) x 99.08 + 1.
    assert sample_size_ancova(2, 5).randomized_reference == 100
    result = sample_size_ancova(2, 5, baseline_correlation=0.55, dropout=0.12)
    assert result.analysed_reference == 71
    assert result.randomized_reference == math.ceil(71 / 0.88) == 81


def test_exact_ancova_power_is_the_integral_over_the_baseline_imbalance() -> None:
    assumptions = PowerAssumptions(2, 5, baseline_correlation=0.55, arms=3, method="exact")
    n = 60
    total = 3 * n
    ncp = 2 / (5 * math.sqrt(1 - 0.55**2) * math.sqrt(2 / n))
    shape = (total - 3) / 2

    def integrand(b: float) -> float:
        power = t_test_power(ncp * math.sqrt(1 - b), total - 4, 0.05, True)
        return float(power) * float(stats.beta.pdf(b, 0.5, shape))

    expected = integrate.quad(integrand, 0, 1, limit=200, points=[1e-6, 1e-3, 0.05])[0]
    assert analysed_power(assumptions, n, n) == pytest.approx(expected, abs=1e-8)


def test_exact_and_borm_agree_closely_and_borm_is_conservative() -> None:
    for n in (20, 50, 120):
        exact = power_ancova(n, 2, 5, baseline_correlation=0.5, method="exact").power
        borm = power_ancova(n, 2, 5, baseline_correlation=0.5).power
        assert borm <= exact < borm + 0.02


def test_exact_power_stays_finite_for_very_large_trials() -> None:
    power = power_ancova(200_000, 0.02, 1, baseline_correlation=0.5, method="exact").power
    expected = power_ancova(200_000, 0.02, 1, baseline_correlation=0.5).power
    assert 0 < power < 1
    assert power == pytest.approx(expected, abs=1e-4)


def test_size_falls_as_the_difference_or_correlation_grows_and_rises_with_power() -> None:
    sizes = [sample_size_ancova(d, 5).analysed_reference for d in (1, 1.5, 2, 3, 4)]
    assert sizes == sorted(sizes, reverse=True)
    sizes = [
        sample_size_ancova(2, 5, baseline_correlation=r).analysed_reference
        for r in (0.0, 0.3, 0.5, 0.7, 0.9)
    ]
    assert sizes == sorted(sizes, reverse=True)
    sizes = [sample_size_ancova(2, 5, power=p).analysed_reference for p in (0.7, 0.8, 0.9, 0.95)]
    assert sizes == sorted(sizes)


def test_power_rises_with_n_and_is_the_inverse_of_the_sample_size() -> None:
    powers = [power_ancova(n, 2, 5, baseline_correlation=0.5).power for n in range(5, 200, 7)]
    assert np.all(np.diff(powers) > 0)
    methods: tuple[Method, ...] = ("borm", "exact")
    for method in methods:
        result = sample_size_ancova(2, 5, baseline_correlation=0.5, power=0.9, method=method)
        n = result.randomized_reference
        options: dict[str, Any] = {"baseline_correlation": 0.5, "method": method}
        assert power_ancova(n, 2, 5, **options).power == pytest.approx(result.power)
        assert power_ancova(n - 1, 2, 5, **options).power < 0.9 <= result.power


def test_the_sign_of_the_difference_does_not_matter() -> None:
    assert sample_size_ancova(-2, 5).power == sample_size_ancova(2, 5).power


def test_dropout_inflates_the_randomized_numbers_rounded_up() -> None:
    result = sample_size_ancova(2, 5, dropout=0.2)
    assert result.analysed_reference == 100
    assert result.randomized_reference == 125  # 100 / 0.8 exactly: not rounded up to 126
    result = sample_size_ancova(2, 5, dropout=0.12)
    assert result.randomized_per_arm == (114, 114)  # 100 / 0.88 = 113.6
    assert power_ancova(114, 2, 5, dropout=0.12).analysed_reference == pytest.approx(100.32)


def test_unequal_allocation_and_several_arms() -> None:
    result = sample_size_ancova(2, 5, allocation_ratio=2)
    assert result.randomized_treatment == 2 * result.randomized_reference
    equal = sample_size_ancova(2, 5).randomized_total
    assert result.randomized_total > equal  # unequal allocation is less efficient
    three = sample_size_ancova(2, 5, arms=3)
    assert three.randomized_per_arm == (99, 99, 99)  # more df for the pooled variance
    bonferroni = sample_size_ancova(2, 5, arms=3, multiplicity="bonferroni")
    assert bonferroni.assumptions.alpha_per_comparison == 0.025
    assert (
        bonferroni.randomized_reference
        == sample_size_ancova(2, 5, alpha=0.025).randomized_reference - 1
    )


def test_one_sided_needs_fewer() -> None:
    assert sample_size_ancova(0.5, 1, two_sided=False).randomized_reference == 51


def test_invalid_assumptions_are_refused_all_at_once_naming_each_field() -> None:
    with pytest.raises(DesignError) as caught:
        sample_size_ancova(0, -1, baseline_correlation=1.0, alpha=0, power=1.2, dropout=1.0, arms=1)
    wheres = {problem.where for problem in caught.value.problems}
    assert wheres == {
        "difference",
        "sd",
        "baseline_correlation",
        "alpha",
        "power",
        "dropout",
        "arms",
    }
    message = str(caught.value)
    assert "difference: must not be 0" in message
    assert "baseline_correlation: must be between -1 and 1, exclusive (received 1.0)" in message
    assert "dropout: must be at least 0 and below 1" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("difference", math.nan),
        ("sd", 0.0),
        ("baseline_correlation", -1.0),
        ("alpha", 1.0),
        ("dropout", -0.1),
        ("allocation_ratio", 0.0),
        ("method", "guess"),
        ("multiplicity", "holm"),
    ],
)
def test_each_rule_names_its_field(field: str, value: object) -> None:
    options: dict[str, object] = {"difference": 2.0, "sd": 5.0, field: value}
    with pytest.raises(DesignError) as caught:
        PowerAssumptions(**options)  # type: ignore[arg-type]
    assert [problem.where for problem in caught.value.problems] == [field]


def test_too_small_a_trial_for_power_is_refused() -> None:
    with pytest.raises(DesignError, match="n_per_arm: must leave at least 3 analysed"):
        power_ancova(3, 2, 5, baseline_correlation=0.5, dropout=0.5)


def test_an_impossible_difference_is_refused() -> None:
    with pytest.raises(DesignError, match="needs more than"):
        sample_size_ancova(1e-6, 5)


def test_result_reports_inputs_sizes_and_power() -> None:
    result = sample_size_ancova(2, 5, baseline_correlation=0.55, dropout=0.12, arms=3)
    row = result.to_frame().iloc[0]
    assert row["randomized_total"] == 243
    assert row["baseline_correlation"] == 0.55
    assert row["power"] == pytest.approx(result.power)
    document = result.to_dict()
    assert document["randomized_per_arm"] == [81, 81, 81]
    assert document["assumptions"]["comparisons"] == 2
    text = result.method_text
    assert "Borm" in text
    assert "12%" in text
    assert "243 participants are randomized" in text
    assert "randomized: 81, 81, 81 (total 243)" in str(result)


def test_power_curve_rows_fit_the_power_figure() -> None:
    assumptions = PowerAssumptions(2, 5, baseline_correlation=0.5)
    curve = power_curve(assumptions, [20, 40, 80], scenario="RDQ")
    assert list(curve.columns) == ["n", "power", "scenario", "lower", "upper"]
    assert curve["power"].is_monotonic_increasing
    assert curve["lower"].isna().all()


def test_protocol_defaults_of_the_reference_trial(reference: Protocol) -> None:
    defaults = protocol_defaults(reference)
    assert defaults.outcome == "rdq_10"
    assert defaults.difference == 2
    assert "Cherkin" in defaults.difference_source
    assert defaults.arms[0] == "usual_care"
    assert len(defaults.arms) == 3
    assert defaults.allocation_ratio == 1
    assert defaults.alpha == 0.05
    assert protocol_defaults(reference, "bothersomeness_10").difference == 1.5
    with pytest.raises(DesignError, match="outcome: is not an outcome"):
        protocol_defaults(reference, "nope")


def test_quadrature_handles_the_singular_beta_density() -> None:
    # The Golub-Welsch weights reproduce Beta(1/2, s) moments: E[B] = 1 / (1 + 2 s).
    from lumbar.design.sample_size import _beta_half_rule

    for shape in (1.0, 10.0, 1e4):
        nodes, weights = _beta_half_rule(shape)
        assert weights @ nodes == pytest.approx(0.5 / (0.5 + shape), rel=1e-12)
        assert weights @ nodes**2 == pytest.approx(
            special.beta(2.5, shape) / special.beta(0.5, shape), rel=1e-10
        )
