r"""Analytic sample size and power for comparing arms on a continuous outcome.

The t test (no baseline adjustment) is computed exactly as R's
``power.t.test(..., strict = TRUE)``: with :math:`n_r` analysed in the reference
arm and :math:`n_t` in a treatment arm, the test statistic follows a noncentral
t distribution with

.. math::

    \nu = N - k, \qquad
    \lambda = \frac{\delta}{\sigma \sqrt{1/n_r + 1/n_t}}, \qquad
    \text{power} = P(T_{\nu,\lambda} > q) + P(T_{\nu,\lambda} < -q),
    \quad q = t_{1-\alpha/2,\,\nu}

where :math:`N` is the number analysed over all :math:`k` arms (the variance is
pooled over all arms, so with two arms :math:`\nu = 2(n - 1)` as in R). One-sided,
the power is :math:`P(T_{\nu,|\lambda|} > t_{1-\alpha,\nu})`. The sample size is the
smallest whole number per arm whose power reaches the target.

The pre-specified analysis is an ANCOVA, ``outcome ~ arm + baseline``. Given a
correlation :math:`\rho` between the outcome and its baseline value, two methods:

``borm`` (default)
    Borm, Fransen & Lemmens (J Clin Epidemiol 2007;60:1234-8): an ANCOVA with
    :math:`(1-\rho^2)\,n` per arm has the power of a t test with :math:`n` per arm,
    and one participant is added per arm for the degree of freedom the covariate
    takes (and the chance imbalance in it). Here: the power at :math:`n` per arm is the
    t test's power at :math:`n - 1` per arm with the residual SD
    :math:`\sigma\sqrt{1-\rho^2}`, so the sample size is the t test's with that SD,
    plus one per arm. Slightly conservative.
``exact``
    The ANCOVA's power with a normal baseline (Shieh, Multivariate Behav Res
    2017;52:1-11 for contrasts; Psychometrika 2020;85:101-120): given the
    baselines, the t statistic is noncentral t on
    :math:`N - k - 1` df with :math:`\lambda\sqrt{1-B}`, where :math:`B \sim
    \text{Beta}(1/2, (N - k)/2)` measures the chance baseline imbalance between the
    two arms compared; the power is averaged over :math:`B` by Gauss-Jacobi
    quadrature. The simulation in :mod:`lumbar.design.simulation` reproduces it.

Dropout: the analysed numbers are divided by :math:`1 - d` and rounded up to give
the numbers to randomize (the achieved power is that of the analysed numbers).

Example: R's ``power.t.test(delta = 0.5, sd = 1, power = 0.8)`` gives
n = 63.77, so 64 per arm:

>>> result = sample_size_ancova(0.5, 1.0)
>>> result.randomized_reference, round(result.power, 4)
(64, 0.8015)

The reference trial's RDQ: a 2-point difference, SD 5, correlation with baseline
0.55 (an assumption), 12% dropout, two massage arms each against usual care:

>>> result = sample_size_ancova(2, 5, baseline_correlation=0.55, dropout=0.12, arms=3)
>>> result.randomized_per_arm, result.randomized_total
((81, 81, 81), 243)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, stats

from lumbar.design.assumptions import (
    DEFAULT_ALPHA,
    DEFAULT_POWER,
    DesignError,
    Method,
    Multiplicity,
    PowerAssumptions,
    check_share,
)
from lumbar.errors import Problem

__all__ = [
    "BORM_EXTRA_PER_ARM",
    "MAX_PER_ARM",
    "PowerCalculation",
    "analysed_power",
    "power_ancova",
    "power_curve",
    "randomized_for",
    "sample_size_ancova",
    "t_test_power",
]

BORM_EXTRA_PER_ARM = 1
"""Participants added per arm to (1 - rho^2) x the t test's sample size: Borm GF, Fransen J,
Lemmens WAJG. A simple sample size formula for analysis of covariance in randomized clinical
trials. J Clin Epidemiol 2007;60(12):1234-8 (for the covariate's degree of freedom)."""

MAX_PER_ARM = 10_000_000
"""The largest sample size per arm searched; a difference needing more is refused."""

_QUADRATURE_NODES = 24
"""Gauss-Jacobi nodes for the exact ANCOVA power: its integrand is smooth, so 24 nodes
agree with adaptive quadrature to about 1e-15."""

_ROUNDING = 1e-9
"""Slack when rounding a quotient up, so 100 / (1 - 0.2) is 125, not 126."""


# ---------------------------------------------------------------------- kernels


def t_test_power(
    ncp: float | np.ndarray, df: float, alpha: float, two_sided: bool
) -> float | np.ndarray:
    """Power of a t test on ``df`` degrees of freedom with noncentrality ``ncp``.

    Two-sided it counts rejections in both tails, as R's ``power.t.test(strict = TRUE)``.
    """
    ncp = np.abs(ncp)
    if two_sided:
        quantile = stats.t.isf(alpha / 2, df)
        # The far tail as P(T > q | -ncp): scipy's lower tail at large ncp can be NaN.
        result = stats.nct.sf(quantile, df, ncp) + stats.nct.sf(quantile, df, -ncp)
    else:
        result = stats.nct.sf(stats.t.isf(alpha, df), df, ncp)
    return float(result) if np.ndim(result) == 0 else np.asarray(result)


@lru_cache(maxsize=256)
def _beta_half_rule(shape: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[g(B)], B ~ Beta(1/2, shape), by Gauss-Jacobi (Golub-Welsch).

    On x in [-1, 1] with B = (1 + x) / 2 the density is proportional to
    (1 - x)^a (1 + x)^b with a = shape - 1, b = -1/2. The weights come from the
    eigenvectors of the Jacobi matrix, normalised to sum to 1, so no beta function
    (which overflows for large trials) is evaluated.
    """
    a, b = shape - 1.0, -0.5
    index = np.arange(_QUADRATURE_NODES, dtype=float)
    total = 2 * index + a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        diagonal = np.where(
            index == 0, (b - a) / (a + b + 2), (b * b - a * a) / (total * (total + 2))
        )
    j = index[1:]
    total = 2 * j + a + b
    off = np.sqrt(4 * j * (j + a) * (j + b) * (j + a + b) / (total**2 * (total + 1) * (total - 1)))
    nodes, vectors = linalg.eigh_tridiagonal(diagonal, off)
    weights = vectors[0] ** 2
    return (1 + nodes) / 2, weights / weights.sum()


def analysed_power(assumptions: PowerAssumptions, n_reference: float, n_treatment: float) -> float:
    """Power of one comparison with ``n_reference`` and ``n_treatment`` analysed per arm.

    Non-integer numbers are allowed (expected numbers after dropout).
    """
    k = assumptions.arms
    alpha = assumptions.alpha_per_comparison
    if assumptions.adjusted and assumptions.method == "borm":
        n_reference -= BORM_EXTRA_PER_ARM
        n_treatment -= BORM_EXTRA_PER_ARM
    total = n_reference + (k - 1) * n_treatment
    spread = math.sqrt(1 / n_reference + 1 / n_treatment)
    ncp = assumptions.difference / (assumptions.residual_sd * spread)
    if not (assumptions.adjusted and assumptions.method == "exact"):
        return float(t_test_power(ncp, total - k, alpha, assumptions.two_sided))
    imbalance, weights = _beta_half_rule((total - k) / 2)
    conditional = t_test_power(
        ncp * np.sqrt(1 - imbalance), total - k - 1, alpha, assumptions.two_sided
    )
    return float(weights @ conditional)


def _smallest_analysed(assumptions: PowerAssumptions) -> int:
    """The fewest analysed per reference arm for which the calculation is defined."""
    least = 2 + (BORM_EXTRA_PER_ARM if assumptions.adjusted and assumptions.method == "borm" else 0)
    n = least
    while _treatment_size(assumptions, n) < least:
        n += 1
    return n


def _treatment_size(assumptions: PowerAssumptions, n_reference: int) -> int:
    return _ceil(assumptions.allocation_ratio * n_reference)


def _ceil(value: float) -> int:
    return math.ceil(value - _ROUNDING)


def randomized_for(analysed: int, dropout: float) -> int:
    """Participants to randomize so that ``analysed`` remain after ``dropout``: rounded up."""
    return _ceil(analysed / (1.0 - dropout))


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class PowerCalculation:
    """A sample size and its power, under stated assumptions.

    From :func:`sample_size_ancova` (``target_power`` set: the smallest size reaching
    it) or :func:`power_ancova` (``target_power`` None: the power of a given size).
    The analysed numbers are whole from :func:`sample_size_ancova`, and the expected
    numbers after dropout from :func:`power_ancova`.
    """

    assumptions: PowerAssumptions
    target_power: float | None
    randomized_reference: int
    randomized_treatment: int
    """Per treatment arm."""
    analysed_reference: float
    analysed_treatment: float
    power: float
    """Power of each comparison of a treatment arm with the reference arm."""

    @property
    def randomized_per_arm(self) -> tuple[int, ...]:
        """Reference arm first, then each treatment arm."""
        return (self.randomized_reference,) + (self.randomized_treatment,) * (
            self.assumptions.arms - 1
        )

    @property
    def randomized_total(self) -> int:
        return sum(self.randomized_per_arm)

    @property
    def analysed_total(self) -> float:
        return self.analysed_reference + (self.assumptions.arms - 1) * self.analysed_treatment

    def to_dict(self) -> dict[str, Any]:
        return {
            "assumptions": self.assumptions.to_dict(),
            "target_power": self.target_power,
            "analysed_reference": self.analysed_reference,
            "analysed_treatment": self.analysed_treatment,
            "analysed_total": self.analysed_total,
            "randomized_per_arm": list(self.randomized_per_arm),
            "randomized_total": self.randomized_total,
            "power": self.power,
            "method_text": self.method_text,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row: the assumptions, the numbers per arm and in total, the power."""
        row = {
            **self.assumptions.to_dict(),
            "target_power": self.target_power,
            "analysed_reference": self.analysed_reference,
            "analysed_treatment": self.analysed_treatment,
            "randomized_reference": self.randomized_reference,
            "randomized_treatment": self.randomized_treatment,
            "randomized_total": self.randomized_total,
            "power": self.power,
        }
        return pd.DataFrame([row])

    @property
    def method_text(self) -> str:
        """A sample-size justification, as a protocol would state it."""
        a = self.assumptions
        sides = "two-sided" if a.two_sided else "one-sided"
        level = f"{_percent(a.alpha_per_comparison)} {sides} significance level"
        if a.comparisons > 1:
            if a.multiplicity == "bonferroni":
                level += (
                    f" for each of {a.comparisons} comparisons with the reference arm "
                    f"(Bonferroni: {_percent(a.alpha)} divided by {a.comparisons})"
                )
            else:
                level += f" for each of {a.comparisons} comparisons with the reference arm"
        per_arm = _per_arm_text(self)
        if a.adjusted:
            method = (
                f"an ANCOVA adjusted for the baseline value, assuming a correlation of "
                f"{a.baseline_correlation:g} between baseline and follow-up; "
                + (
                    "the t test's sample size was multiplied by 1 - rho^2 and one participant "
                    "added per arm (Borm, Fransen & Lemmens, J Clin Epidemiol 2007;60:1234-8)"
                    if a.method == "borm"
                    else "power from the exact distribution of the ANCOVA t statistic with a "
                    "normal baseline (Shieh, Multivariate Behav Res 2017;52:1-11)"
                )
            )
        else:
            method = "a t test without baseline adjustment"
        if self.target_power is None:
            opening = f"With {per_arm}, the trial has {_percent(self.power)} power"
        else:
            opening = (
                f"A trial with {per_arm} has {_percent(self.power)} power "
                f"(target {_percent(self.target_power)})"
            )
        text = (
            f"{opening} to detect a difference of {abs(a.difference):g} in mean outcome "
            f"(SD {a.sd:g}) between a treatment arm and the reference arm at the {level}, "
            f"analysed by {method}."
        )
        if a.dropout > 0:
            text += (
                f" Allowing for {_percent(a.dropout)} without a follow-up outcome, "
                f"{self.randomized_total} participants are randomized "
                f"({', '.join(str(n) for n in self.randomized_per_arm)} per arm)."
            )
        return text

    def __str__(self) -> str:
        a = self.assumptions
        lines = [
            f"{'Sample size' if self.target_power is not None else 'Power'}: {a.analysis}",
            f"  difference {a.difference:g}, SD {a.sd:g}"
            + (f", baseline correlation {a.baseline_correlation:g}" if a.adjusted else "")
            + f", alpha {a.alpha_per_comparison:g} {'two' if a.two_sided else 'one'}-sided"
            + (f", dropout {a.dropout:g}" if a.dropout else ""),
            f"  analysed per arm: {_number(self.analysed_reference)}"
            + (
                f" reference, {_number(self.analysed_treatment)} per treatment arm"
                if self.analysed_treatment != self.analysed_reference
                else ""
            ),
            f"  randomized: {', '.join(str(n) for n in self.randomized_per_arm)} "
            f"(total {self.randomized_total})",
            f"  power {self.power:.4f}"
            + (f" (target {self.target_power:g})" if self.target_power is not None else ""),
        ]
        return "\n".join(lines)


def _percent(share: float) -> str:
    return f"{100 * share:.3g}%"


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _per_arm_text(result: PowerCalculation) -> str:
    a = result.assumptions
    if result.randomized_reference == result.randomized_treatment and (
        result.analysed_reference == result.analysed_treatment
    ):
        analysed = _number(result.analysed_reference)
        return (
            f"{analysed} participants analysed per arm ({_number(result.analysed_total)} in total)"
        )
    return (
        f"{_number(result.analysed_reference)} participants analysed in the reference arm and "
        f"{_number(result.analysed_treatment)} in each treatment arm "
        f"(allocation {a.allocation_ratio:g}:1)"
    )


# ---------------------------------------------------------------------- front door


def _assumptions(
    difference: float,
    sd: float,
    *,
    baseline_correlation: float | None,
    alpha: float,
    two_sided: bool,
    arms: int,
    allocation_ratio: float,
    dropout: float,
    multiplicity: Multiplicity,
    method: Method,
) -> PowerAssumptions:
    return PowerAssumptions(
        difference=difference,
        sd=sd,
        baseline_correlation=baseline_correlation,
        alpha=alpha,
        two_sided=two_sided,
        arms=arms,
        allocation_ratio=allocation_ratio,
        dropout=dropout,
        multiplicity=multiplicity,
        method=method,
    )


def sample_size_ancova(
    difference: float,
    sd: float,
    *,
    baseline_correlation: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    two_sided: bool = True,
    arms: int = 2,
    allocation_ratio: float = 1.0,
    dropout: float = 0.0,
    multiplicity: Multiplicity = "none",
    method: Method = "borm",
) -> PowerCalculation:
    """The smallest trial whose every comparison with the reference arm reaches ``power``.

    See the module docstring for the formulas and :class:`PowerAssumptions` for
    the arguments. Without ``baseline_correlation`` the answer is the t test's, as
    R's ``power.t.test``; with it, the ANCOVA's.
    """
    problems = check_share("power", power, "e.g. 0.8 or 0.9")
    try:
        assumptions = _assumptions(
            difference,
            sd,
            baseline_correlation=baseline_correlation,
            alpha=alpha,
            two_sided=two_sided,
            arms=arms,
            allocation_ratio=allocation_ratio,
            dropout=dropout,
            multiplicity=multiplicity,
            method=method,
        )
    except DesignError as error:
        raise DesignError(error.summary, [*error.problems, *problems]) from None
    if problems:
        raise DesignError("the power calculation's assumptions are not valid", problems)
    return _solve(assumptions, power)


def _solve(assumptions: PowerAssumptions, target: float) -> PowerCalculation:
    def reaches(n: int) -> tuple[bool, float]:
        achieved = analysed_power(assumptions, n, _treatment_size(assumptions, n))
        return achieved >= target, achieved

    low = _smallest_analysed(assumptions)
    enough, achieved = reaches(low)
    if not enough:
        # Double until the target is reached, then bisect: the power rises with n.
        high = low
        while not enough:
            low, high = high, high * 2
            if high > MAX_PER_ARM:
                raise DesignError(
                    "no feasible sample size",
                    [
                        Problem(
                            "difference",
                            f"needs more than {MAX_PER_ARM:,} participants per arm to reach "
                            f"power {target:g}",
                            assumptions.difference,
                            "check the difference and SD are on the same scale",
                        )
                    ],
                )
            enough, achieved = reaches(high)
        while high - low > 1:
            middle = (low + high) // 2
            middle_enough, middle_power = reaches(middle)
            if middle_enough:
                high, achieved = middle, middle_power
            else:
                low = middle
        low = high
    treatment = _treatment_size(assumptions, low)
    return PowerCalculation(
        assumptions=assumptions,
        target_power=target,
        randomized_reference=randomized_for(low, assumptions.dropout),
        randomized_treatment=randomized_for(treatment, assumptions.dropout),
        analysed_reference=float(low),
        analysed_treatment=float(treatment),
        power=achieved,
    )


def power_ancova(
    n_per_arm: int,
    difference: float,
    sd: float,
    *,
    baseline_correlation: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    two_sided: bool = True,
    arms: int = 2,
    allocation_ratio: float = 1.0,
    dropout: float = 0.0,
    multiplicity: Multiplicity = "none",
    method: Method = "borm",
) -> PowerCalculation:
    """The power of each comparison when ``n_per_arm`` are randomized to the reference arm.

    Each treatment arm gets ``allocation_ratio * n_per_arm`` (rounded up); the
    power is computed at the expected numbers analysed after ``dropout``.

    >>> round(power_ancova(64, 0.5, 1.0).power, 5)  # R: power.t.test(n = 64, delta = 0.5)
    0.80146
    """
    assumptions = _assumptions(
        difference,
        sd,
        baseline_correlation=baseline_correlation,
        alpha=alpha,
        two_sided=two_sided,
        arms=arms,
        allocation_ratio=allocation_ratio,
        dropout=dropout,
        multiplicity=multiplicity,
        method=method,
    )
    return _power_at(assumptions, n_per_arm)


def _power_at(assumptions: PowerAssumptions, n_per_arm: int) -> PowerCalculation:
    treatment = _treatment_size(assumptions, n_per_arm) if isinstance(n_per_arm, int) else 0
    keep = 1.0 - assumptions.dropout
    least = _smallest_analysed(assumptions)
    if (
        isinstance(n_per_arm, bool)
        or not isinstance(n_per_arm, int)
        or min(n_per_arm, treatment) * keep < least
    ):
        raise DesignError(
            "too few participants",
            [
                Problem(
                    "n_per_arm",
                    f"must leave at least {least} analysed in every arm after dropout",
                    n_per_arm,
                    "give a larger whole number",
                )
            ],
        )
    return PowerCalculation(
        assumptions=assumptions,
        target_power=None,
        randomized_reference=n_per_arm,
        randomized_treatment=treatment,
        analysed_reference=n_per_arm * keep,
        analysed_treatment=treatment * keep,
        power=analysed_power(assumptions, n_per_arm * keep, treatment * keep),
    )


def power_curve(
    assumptions: PowerAssumptions, n_per_arm: Sequence[int], *, scenario: str
) -> pd.DataFrame:
    """Analytic power at each randomized size per arm, as rows for ``power_figure``.

    Columns ``n``, ``power``, ``scenario``, ``lower``, ``upper`` (the last two empty:
    an analytic power has no Monte Carlo error).
    """
    rows = [
        {
            "n": n,
            "power": _power_at(assumptions, n).power,
            "scenario": scenario,
            "lower": math.nan,
            "upper": math.nan,
        }
        for n in n_per_arm
    ]
    return pd.DataFrame(rows, columns=["n", "power", "scenario", "lower", "upper"])
