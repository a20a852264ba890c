r"""Simulation-based power for the pre-specified ANCOVA, vectorized across trials.

Each simulated trial randomizes a fixed number of participants to each arm (as
permuted blocks nearly do) and draws, per participant, a baseline and a
follow-up outcome from a bivariate normal with SD ``sd`` at both times and
correlation ``baseline_correlation``; each treatment arm's follow-up mean is
shifted by its ``difference`` from the reference arm. The outcomes are simulated
on the deviation scale (mean 0 at baseline): the ANCOVA's estimates and tests do
not depend on the outcome's location.

Dropout, per arm, removes a participant's follow-up outcome:

``mcar``
    missing completely at random, with probability ``dropout`` of each arm;
``baseline``
    missing at random given the baseline: participants worse at baseline drop
    out more often. Participant *i* is missing with probability
    :math:`\Phi(a + \gamma z_i)`, where :math:`z_i` is the standardised baseline and
    :math:`\gamma` is ``missing_slope``; :math:`a = \Phi^{-1}(d)\sqrt{1+\gamma^2}` keeps
    the arm's expected dropout at ``d``. Because missingness depends only on a
    covariate in the model, the complete-case ANCOVA stays unbiased; only its
    precision changes.

Each trial is analysed as pre-specified: ``outcome ~ arm + baseline`` by least
squares on the participants with a follow-up outcome, each treatment arm
against the reference arm with a t test on the residual degrees of freedom.
The fit is not a model call per trial: :func:`ancova_trials` forms every trial's
sufficient statistics (per arm: the count and the sums of baseline and outcome;
per trial: the sums of squares and cross-products) in one compiled pass over the
participants (numba), and solves the normal equations of all trials at once in
closed form with array arithmetic. With arm
intercepts and one common slope,

.. math::

    \hat\beta = \frac{S_{xy}}{S_{xx}}, \qquad
    \hat\delta_g = (\bar y_g - \bar y_r) - \hat\beta(\bar x_g - \bar x_r), \qquad
    \widehat{\mathrm{se}}^2 = s^2\left(\frac{1}{n_g} + \frac{1}{n_r}
        + \frac{(\bar x_g - \bar x_r)^2}{S_{xx}}\right)

with :math:`S` the within-arm sums of squares and cross-products and
:math:`s^2 = (S_{yy} - \hat\beta S_{xy}) / (N - k - 1)`: exactly the OLS fit of R's
``lm`` or statsmodels' ``OLS`` (the tests check it trial by trial to 1e-10).

Power is the share of trials whose test rejects, with a Wilson score interval
for its Monte Carlo error (Wilson EB, J Am Stat Assoc 1927;22:209-212).
Reproducibility: every (scenario, size) point draws from its own random streams,
seeded from ``seed``, the scenario's position and the size, so the same call gives
the same numbers, and adding sizes to the grid does not change the others.
Trials are drawn and analysed in chunks of 262,144 participant slots, so memory
stays small however many trials are asked for; the numbers do not depend on the
chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numba
import numpy as np
import pandas as pd
from scipy import special, stats

from lumbar import __version__
from lumbar.design.assumptions import (
    DEFAULT_ALPHA,
    DesignError,
    Multiplicity,
    check_correlation,
    check_dropout,
    check_positive_count,
    check_share,
)
from lumbar.errors import Problem
from lumbar.estimates import wilson_interval

__all__ = [
    "DEFAULT_MISSING_SLOPE",
    "Missing",
    "Scenario",
    "SimulatedPoint",
    "SimulatedPower",
    "SimulatedTrials",
    "TrialEstimates",
    "ancova_trials",
    "simulate_power",
    "simulate_trials",
]

Missing = Literal["mcar", "baseline"]
MISSING: tuple[Missing, ...] = ("mcar", "baseline")

DEFAULT_MISSING_SLOPE = 1.0
"""Assumption: with ``missing="baseline"``, one SD worse at baseline adds 1 to the probit of
dropping out (for an arm losing 12%: 5% at the mean baseline, 25% one SD worse). No published
source; adjust it."""

CHUNK_VALUES = 1 << 18
"""Participant slots drawn and analysed at once: 1 MB per single-precision array, so a chunk
stays in the processor's cache between drawing and analysis, while hundreds of trials share
each NumPy call's overhead."""

CONFIDENCE = 0.95
"""Coverage of the Monte Carlo interval around each simulated power."""


# ---------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """One set of assumptions to simulate: effects, SD, correlation with baseline, dropout.

    ``difference`` has one entry per treatment arm (its follow-up mean minus the
    reference arm's); ``dropout`` one per arm, the reference arm first. Use
    :meth:`uniform` for the same difference and dropout in every arm.
    """

    name: str
    difference: tuple[float, ...]
    sd: float
    baseline_correlation: float
    dropout: tuple[float, ...]
    missing: Missing = "mcar"
    missing_slope: float = DEFAULT_MISSING_SLOPE

    def __post_init__(self) -> None:
        where = f"scenario {self.name!r}"
        problems: list[Problem] = []
        if not self.name.strip():
            problems.append(Problem("scenario", "needs a name", self.name, "e.g. 'RDQ, 12% lost'"))
        if not self.difference:
            problems.append(
                Problem(f"{where}: difference", "needs one value per treatment arm", ())
            )
        for value in self.difference:
            if not math.isfinite(value):
                problems.append(Problem(f"{where}: difference", "must be finite", value))
        if not (math.isfinite(self.sd) and self.sd > 0):
            problems.append(Problem(f"{where}: sd", "must be greater than 0", self.sd, "e.g. 5"))
        problems += check_correlation(f"{where}: baseline_correlation", self.baseline_correlation)
        if len(self.dropout) != len(self.difference) + 1:
            problems.append(
                Problem(
                    f"{where}: dropout",
                    f"needs one share per arm ({len(self.difference) + 1}), reference first",
                    self.dropout,
                )
            )
        for share in self.dropout:
            problems += check_dropout(f"{where}: dropout", share)
        if self.missing not in MISSING:
            problems.append(
                Problem(f"{where}: missing", f"must be one of {', '.join(MISSING)}", self.missing)
            )
        if not math.isfinite(self.missing_slope):
            problems.append(
                Problem(f"{where}: missing_slope", "must be finite", self.missing_slope)
            )
        if problems:
            raise DesignError("the simulation scenario is not valid", problems)

    @classmethod
    def uniform(
        cls,
        name: str,
        *,
        difference: float,
        sd: float,
        baseline_correlation: float,
        dropout: float = 0.0,
        arms: int = 2,
        missing: Missing = "mcar",
        missing_slope: float = DEFAULT_MISSING_SLOPE,
    ) -> Scenario:
        """Every treatment arm ``difference`` from the reference; every arm ``dropout``."""
        problems = check_positive_count("arms", arms, 2, "e.g. 3")
        if problems:
            raise DesignError("the simulation scenario is not valid", problems)
        return cls(
            name,
            (float(difference),) * (arms - 1),
            float(sd),
            float(baseline_correlation),
            (float(dropout),) * arms,
            missing,
            missing_slope,
        )

    @property
    def arms(self) -> int:
        return len(self.difference) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "difference": list(self.difference),
            "sd": self.sd,
            "baseline_correlation": self.baseline_correlation,
            "dropout": list(self.dropout),
            "missing": self.missing,
            "missing_slope": self.missing_slope if self.missing == "baseline" else None,
        }


@dataclass(frozen=True)
class SimulatedTrials:
    """Simulated trials, participant by participant: arrays of shape (trials, arms, size).

    Arm *g* of trial *t* holds ``sizes[g]`` participants in ``[t, g, :sizes[g]]``;
    slots past an arm's size (when arms differ in size) are never observed.
    ``observed`` is False where the follow-up outcome is missing.
    """

    scenario: Scenario
    sizes: tuple[int, ...]
    baseline: np.ndarray
    outcome: np.ndarray
    observed: np.ndarray

    @property
    def trials(self) -> int:
        return int(self.baseline.shape[0])

    def participants(self, trial: int) -> pd.DataFrame:
        """One trial's observed participants as rows: ``arm`` (0 = reference), baseline, outcome."""
        keep = self.observed[trial]
        arm = np.broadcast_to(np.arange(len(self.sizes))[:, None], keep.shape)
        return pd.DataFrame(
            {
                "arm": arm[keep],
                "baseline": self.baseline[trial][keep],
                "outcome": self.outcome[trial][keep],
            }
        )


def _sizes(n_per_arm: int, arms: int, allocation_ratio: float) -> tuple[int, ...]:
    treatment = math.ceil(allocation_ratio * n_per_arm - 1e-9)
    return (n_per_arm,) + (treatment,) * (arms - 1)


def _draw(
    scenario: Scenario,
    sizes: tuple[int, ...],
    trials: int,
    values: np.random.Generator,
    dropout: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baselines, outcomes and observed flags for ``trials`` trials, shape (trials, arms, size).

    ``values`` supplies two standard normals per participant slot (trial by trial,
    so the draws do not depend on how trials are chunked); ``dropout`` one uniform
    (``mcar``) or normal (``baseline``) per slot. Values are kept in single precision
    (seven significant digits, far finer than any outcome scale) to halve the memory the
    analysis reads; the analysis itself accumulates in double precision.
    """
    arms, size = len(sizes), max(sizes)
    rho = scenario.baseline_correlation
    normals = values.standard_normal((trials, 2, arms, size), dtype=np.float32)
    baseline = normals[:, 0]
    baseline *= scenario.sd
    means = np.array((0.0, *scenario.difference))[:, None]
    outcome = normals[:, 1]
    outcome *= scenario.sd * math.sqrt(1.0 - rho * rho)
    outcome += rho * baseline
    outcome += means
    shares = np.array(scenario.dropout)[:, None]
    if scenario.missing == "mcar":
        observed = dropout.random((trials, arms, size), dtype=np.float32) >= shares
    else:
        slope = scenario.missing_slope
        with np.errstate(invalid="ignore"):  # a share of 0 gives -inf: never missing
            intercept = special.ndtri(shares) * math.sqrt(1.0 + slope * slope)
        threshold = intercept + slope * (baseline / scenario.sd)
        observed = dropout.standard_normal((trials, arms, size)) >= threshold
    if min(sizes) < size:
        observed &= np.arange(size) < np.array(sizes)[:, None]
    return baseline, outcome, observed


def simulate_trials(
    scenario: Scenario,
    n_per_arm: int,
    trials: int,
    rng: np.random.Generator,
    *,
    allocation_ratio: float = 1.0,
) -> SimulatedTrials:
    """Simulate ``trials`` trials with ``n_per_arm`` randomized to the reference arm.

    Each treatment arm gets ``allocation_ratio * n_per_arm`` (rounded up). For
    looking at trials one by one, tests and benchmarks; :func:`simulate_power`
    draws and analyses in chunks without keeping the trials.
    """
    problems = check_positive_count("n_per_arm", n_per_arm, 2, "e.g. 134")
    problems += check_positive_count("trials", trials, 1, "e.g. 1000")
    if problems:
        raise DesignError("cannot simulate the trials", problems)
    sizes = _sizes(n_per_arm, scenario.arms, allocation_ratio)
    baseline, outcome, observed = _draw(scenario, sizes, trials, rng, rng)
    return SimulatedTrials(scenario, sizes, baseline, outcome, observed)


# ---------------------------------------------------------------------- the batched ANCOVA


@dataclass(frozen=True)
class TrialEstimates:
    """The ANCOVA of many trials: each treatment arm minus the reference arm, per trial.

    Arrays have one row per trial; ``estimate`` and ``se`` one column per treatment
    arm. A trial that cannot be analysed (an arm with nobody observed, no residual
    degrees of freedom, or a constant baseline) has NaN estimates and never rejects.
    """

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    """Residual degrees of freedom (whole numbers): analysed participants - arms - 1."""
    slope: np.ndarray
    """The common baseline coefficient."""
    analysed: np.ndarray
    """Participants analysed per arm, shape (trials, arms)."""

    @property
    def statistic(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(self.estimate / self.se)

    @property
    def p(self) -> np.ndarray:
        """Two-sided p-values from the t distribution on ``df``."""
        with np.errstate(invalid="ignore"):
            return np.asarray(2.0 * special.stdtr(self.df[:, None], -np.abs(self.statistic)))

    def rejects(self, alpha: float, *, two_sided: bool = True) -> np.ndarray:
        """Whether each comparison is significant; one-sided tests look for positive values."""
        statistic = self.statistic
        critical = _critical_values(alpha, two_sided, int(np.max(self.df, initial=1)))
        usable = np.isfinite(self.estimate).all(axis=1)
        limit = critical[np.where(usable, np.clip(self.df, 0, None), 0)][:, None]
        with np.errstate(invalid="ignore"):
            return np.asarray((np.abs(statistic) if two_sided else statistic) >= limit)


def _critical_values(alpha: float, two_sided: bool, largest_df: int) -> np.ndarray:
    """t critical values indexed by integer df (index 0 is +inf: nothing rejects)."""
    tail = alpha / 2 if two_sided else alpha
    return np.concatenate(([np.inf], stats.t.isf(tail, np.arange(1, max(largest_df, 1) + 1))))


def _sums_loop(
    baseline: np.ndarray,
    outcome: np.ndarray,
    observed: np.ndarray,
    count: np.ndarray,
    sum_x: np.ndarray,
    sum_y: np.ndarray,
    xx: np.ndarray,
    xy: np.ndarray,
    yy: np.ndarray,
) -> None:  # pragma: no cover - compiled by numba; its result is tested against statsmodels
    """Every trial's sufficient statistics in one pass over its participants.

    A compiled loop (numba) reads each participant's baseline, outcome and flag once
    and accumulates in float64, whatever the inputs' precision: memory traffic, not
    arithmetic, bounds the ANCOVA of many trials, and one pass is the least there is.
    Trials are shared among the processor's cores; each trial's sums are taken in one
    fixed order, so the results do not depend on the number of threads.
    """
    trials, arms, size = baseline.shape
    for trial in numba.prange(trials):  # trials in parallel; each trial's sums in order
        sxx = 0.0
        sxy = 0.0
        syy = 0.0
        for arm in range(arms):
            n = 0.0
            sx = 0.0
            sy = 0.0
            for slot in range(size):
                weight = 1.0 if observed[trial, arm, slot] else 0.0
                x = weight * baseline[trial, arm, slot]
                y = weight * outcome[trial, arm, slot]
                n += weight
                sx += x
                sy += y
                sxx += x * x
                sxy += x * y
                syy += y * y
            count[trial, arm] = n
            sum_x[trial, arm] = sx
            sum_y[trial, arm] = sy
        xx[trial] = sxx
        xy[trial] = sxy
        yy[trial] = syy


_sums: Callable[..., None] = numba.njit(cache=True, nogil=True, parallel=True)(_sums_loop)


class _Sums:
    """Sufficient statistics of up to ``trials`` trials in preallocated arrays, reused chunk
    after chunk. Per arm: the count analysed and the sums of baseline and outcome; per
    trial: the sums of squares and cross-products over the analysed participants.
    """

    def __init__(self, trials: int, arms: int) -> None:
        self.count, self.sum_x, self.sum_y = (np.empty((trials, arms)) for _ in range(3))
        self.xx, self.xy, self.yy = (np.empty(trials) for _ in range(3))

    def fit(
        self, baseline: np.ndarray, outcome: np.ndarray, observed: np.ndarray
    ) -> TrialEstimates:
        """The ANCOVA of these trials (arrays of shape (trials, arms, size))."""
        rows = slice(0, baseline.shape[0])
        parts = (self.count, self.sum_x, self.sum_y, self.xx, self.xy, self.yy)
        _sums(baseline, outcome, observed, *(part[rows] for part in parts))
        return _fit(*(part[rows] for part in parts))


def _chunk_trials(arms: int, size: int) -> int:
    return max(1, CHUNK_VALUES // (arms * size))


def _fit(
    count: np.ndarray,
    sum_x: np.ndarray,
    sum_y: np.ndarray,
    xx: np.ndarray,
    xy: np.ndarray,
    yy: np.ndarray,
) -> TrialEstimates:
    """Closed-form ANCOVA (arm intercepts, one slope) from the sufficient statistics."""
    arms = count.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x = sum_x / count
        mean_y = sum_y / count
        sxx = xx - np.einsum("ta,ta->t", sum_x, mean_x)
        sxy = xy - np.einsum("ta,ta->t", sum_x, mean_y)
        syy = yy - np.einsum("ta,ta->t", sum_y, mean_y)
        slope = sxy / sxx
        df = count.sum(axis=1) - arms - 1
        residual = (syy - slope * sxy) / df
        gap_x = mean_x[:, 1:] - mean_x[:, :1]
        estimate = (mean_y[:, 1:] - mean_y[:, :1]) - slope[:, None] * gap_x
        spread = 1.0 / count[:, 1:] + 1.0 / count[:, :1] + gap_x * gap_x / sxx[:, None]
        se = np.sqrt(residual[:, None] * spread)
    bad = (count.min(axis=1) < 1) | (df < 1) | ~(sxx > 0)
    if bad.any():
        estimate[bad] = np.nan
        se[bad] = np.nan
        slope[bad] = np.nan
    return TrialEstimates(estimate, se, df.astype(np.int64), slope, count.astype(np.int64))


def ancova_trials(
    baseline: np.ndarray, outcome: np.ndarray, observed: np.ndarray | None = None
) -> TrialEstimates:
    """Fit ``outcome ~ arm + baseline`` to every trial at once.

    Arrays have shape (trials, arms, size): arm 0 is the reference. ``observed``
    (default: everyone) marks the participants analysed; values elsewhere are
    ignored but must be finite. Each trial's fit equals ``statsmodels.OLS`` (or R's
    ``lm``) on its observed participants with arm dummies and the baseline.
    """
    baseline, outcome = (_floats(values) for values in (baseline, outcome))
    mask = (
        np.ones(baseline.shape, dtype=bool)
        if observed is None
        else np.asarray(observed, dtype=bool)
    )
    if baseline.ndim != 3 or baseline.shape != outcome.shape or mask.shape != baseline.shape:
        raise DesignError(
            "cannot analyse the trials",
            [
                Problem(
                    "baseline, outcome, observed",
                    "must be arrays of one shape (trials, arms, participants per arm)",
                    (baseline.shape, outcome.shape, mask.shape),
                )
            ],
        )
    if baseline.shape[1] < 2:
        raise DesignError(
            "cannot analyse the trials",
            [Problem("arms", "at least 2 arms are needed", baseline.shape[1])],
        )
    return _Sums(*baseline.shape[:2]).fit(baseline, outcome, mask)


def _floats(values: np.ndarray) -> np.ndarray:
    """Single or double precision as given (no copy); anything else as double."""
    array = np.asarray(values)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)


# ---------------------------------------------------------------------- power


@dataclass(frozen=True)
class SimulatedPoint:
    """Simulated power of one comparison (or of all / any of them) at one size."""

    scenario: str
    n: int
    """Randomized to the reference arm."""
    comparison: str
    trials: int
    rejections: int
    power: float
    lower: float
    upper: float
    failed: int
    """Trials that could not be analysed (counted as not rejecting)."""
    mean_estimate: float
    mean_analysed: float
    """Participants analysed per trial, all arms, on average."""

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class SimulatedPower:
    """Power of the pre-specified ANCOVA, by simulation, for each scenario and size."""

    scenarios: tuple[Scenario, ...]
    n_per_arm: tuple[int, ...]
    trials: int
    seed: int
    alpha: float
    two_sided: bool
    multiplicity: Multiplicity
    allocation_ratio: float
    arm_names: tuple[str, ...]
    points: tuple[SimulatedPoint, ...] = field(repr=False)

    @property
    def alpha_per_comparison(self) -> float:
        comparisons = len(self.arm_names) - 1
        return self.alpha / comparisons if self.multiplicity == "bonferroni" else self.alpha

    @property
    def comparisons(self) -> tuple[str, ...]:
        reference = self.arm_names[0]
        return tuple(f"{arm} vs {reference}" for arm in self.arm_names[1:])

    def to_frame(self) -> pd.DataFrame:
        """One row per scenario, size and comparison (with "all" and "any" for several)."""
        columns = list(SimulatedPoint.__dataclass_fields__)
        return pd.DataFrame([point.row() for point in self.points], columns=columns)

    def curve(self, comparisons: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows for ``power_figure``: ``n``, ``power``, ``scenario``, ``lower``, ``upper``.

        By default every comparison; a line is labelled by its scenario, and also by
        its comparison when there are several.
        """
        chosen = set(comparisons) if comparisons is not None else set(self.comparisons)
        several = len(chosen) > 1
        rows = [
            {
                "n": point.n,
                "power": point.power,
                "scenario": f"{point.scenario}: {point.comparison}" if several else point.scenario,
                "lower": point.lower,
                "upper": point.upper,
            }
            for point in self.points
            if point.comparison in chosen
        ]
        return pd.DataFrame(rows, columns=["n", "power", "scenario", "lower", "upper"])

    def point(self, scenario: str, n: int, comparison: str | None = None) -> SimulatedPoint:
        """The point of one scenario and size (the first comparison by default)."""
        wanted = comparison or self.comparisons[0]
        for point in self.points:
            if point.scenario == scenario and point.n == n and point.comparison == wanted:
                return point
        raise KeyError((scenario, n, wanted))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "simulation",
            "lumbar_version": __version__,
            "seed": self.seed,
            "trials": self.trials,
            "alpha": self.alpha,
            "alpha_per_comparison": self.alpha_per_comparison,
            "two_sided": self.two_sided,
            "multiplicity": self.multiplicity,
            "allocation_ratio": self.allocation_ratio,
            "arms": list(self.arm_names),
            "n_per_arm": list(self.n_per_arm),
            "scenarios": [scenario.to_dict() for scenario in self.scenarios],
            "points": [point.row() for point in self.points],
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        sides = "two-sided" if self.two_sided else "one-sided"
        missing = {
            "mcar": "completely at random",
            "baseline": "at random given the baseline (more often when worse at baseline)",
        }
        kinds = sorted({missing[scenario.missing] for scenario in self.scenarios})
        return (
            f"Power was estimated by simulating {self.trials:,} trials per scenario and size "
            f"(seed {self.seed}): baseline and follow-up outcomes bivariate normal, follow-up "
            f"outcomes missing {' or '.join(kinds)}; each trial analysed by ANCOVA of the "
            f"follow-up outcome on arm and baseline in the participants with a follow-up "
            f"outcome, each treatment arm against {self.arm_names[0]} with a {sides} t test at "
            f"{100 * self.alpha_per_comparison:.3g}%. Intervals are 95% Wilson intervals for "
            f"the Monte Carlo error (lumbar {__version__})."
        )

    def __str__(self) -> str:
        lines = [f"Simulated power ({self.trials:,} trials per point, seed {self.seed})"]
        for point in self.points:
            lines.append(
                f"  {point.scenario:<20} n={point.n:<6} {point.comparison:<28} "
                f"{point.power:.4f} ({point.lower:.4f} to {point.upper:.4f})"
            )
        return "\n".join(lines)


def _check_simulation(
    scenarios: Sequence[Scenario],
    n_per_arm: Sequence[int],
    trials: int,
    seed: int,
    alpha: float,
    allocation_ratio: float,
    arm_names: Sequence[str] | None,
    two_sided: bool,
) -> list[Problem]:
    problems = check_positive_count("trials", trials, 1, "e.g. 10000")
    problems += check_positive_count("seed", seed, 0, "e.g. 20110705")
    problems += check_share("alpha", alpha, "e.g. 0.05")
    if not scenarios:
        problems.append(Problem("scenarios", "give at least one scenario"))
        return problems
    arms = {scenario.arms for scenario in scenarios}
    if len(arms) > 1:
        problems.append(Problem("scenarios", "must all have the same number of arms", sorted(arms)))
    names = [scenario.name for scenario in scenarios]
    if len(set(names)) != len(names):
        problems.append(Problem("scenarios", "need different names", names))
    if not two_sided and any(value == 0 for s in scenarios for value in s.difference):
        problems.append(
            Problem(
                "difference",
                "a one-sided test needs a direction: no difference may be 0",
                hint="simulate a null scenario two-sided",
            )
        )
    if not (math.isfinite(allocation_ratio) and allocation_ratio > 0):
        problems.append(
            Problem("allocation_ratio", "must be greater than 0", allocation_ratio, "e.g. 1")
        )
    if not n_per_arm:
        problems.append(Problem("n_per_arm", "give at least one size", hint="e.g. 50 to 200"))
    for n in n_per_arm:
        problems += check_positive_count("n_per_arm", n, 2, "at least 2 per arm")
    if arm_names is not None and len(arm_names) != next(iter(arms)):
        problems.append(
            Problem("arm_names", f"needs one name per arm ({next(iter(arms))})", arm_names)
        )
    return problems


def simulate_power(
    scenarios: Sequence[Scenario],
    n_per_arm: Sequence[int],
    *,
    trials: int,
    seed: int,
    alpha: float = DEFAULT_ALPHA,
    two_sided: bool = True,
    multiplicity: Multiplicity = "none",
    allocation_ratio: float = 1.0,
    arm_names: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulatedPower:
    """Simulate ``trials`` trials per scenario and randomized size, and analyse each.

    ``n_per_arm`` are randomized to the reference arm; each treatment arm gets
    ``allocation_ratio`` times as many (rounded up). One-sided tests look in the
    direction of each scenario's difference. ``progress(done, total)`` is called
    after each (scenario, size) point.
    """
    problems = _check_simulation(
        scenarios, n_per_arm, trials, seed, alpha, allocation_ratio, arm_names, two_sided
    )
    if problems:
        raise DesignError("cannot simulate the power", problems)
    arms = scenarios[0].arms
    names = tuple(arm_names) if arm_names is not None else _default_arm_names(arms)
    comparisons = tuple(f"{arm} vs {names[0]}" for arm in names[1:])
    tested = alpha / (arms - 1) if multiplicity == "bonferroni" else alpha
    sizes_grid = tuple(sorted(set(n_per_arm)))
    points: list[SimulatedPoint] = []
    total, done = len(scenarios) * len(sizes_grid), 0
    for position, scenario in enumerate(scenarios):
        for n in sizes_grid:
            points += _simulate_point(
                scenario,
                position,
                _sizes(n, arms, allocation_ratio),
                trials,
                seed,
                tested,
                two_sided,
                comparisons,
            )
            done += 1
            if progress is not None:
                progress(done, total)
    return SimulatedPower(
        tuple(scenarios),
        sizes_grid,
        trials,
        seed,
        alpha,
        two_sided,
        multiplicity,
        allocation_ratio,
        names,
        tuple(points),
    )


def _default_arm_names(arms: int) -> tuple[str, ...]:
    if arms == 2:
        return ("reference", "treatment")
    return ("reference", *(f"treatment {index}" for index in range(1, arms)))


def _simulate_point(
    scenario: Scenario,
    position: int,
    sizes: tuple[int, ...],
    trials: int,
    seed: int,
    alpha: float,
    two_sided: bool,
    comparisons: tuple[str, ...],
) -> list[SimulatedPoint]:
    values = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(position, sizes[0], 0)))
    )
    dropout = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(position, sizes[0], 1)))
    )
    arms, size = len(sizes), max(sizes)
    direction = np.sign(np.array(scenario.difference))
    critical = _critical_values(alpha, two_sided, sum(sizes) - arms - 1)
    step = _chunk_trials(arms, size)
    rejections = np.zeros(arms - 1, dtype=np.int64)
    every = some = failed = 0
    estimate_sum = np.zeros(arms - 1)
    analysed = 0
    sums = _Sums(step, arms)
    for start in range(0, trials, step):
        chunk = min(step, trials - start)
        fit = sums.fit(*_draw(scenario, sizes, chunk, values, dropout))
        statistic = fit.statistic
        usable = np.isfinite(fit.estimate[:, 0])
        df = np.where(usable, fit.df, 0).astype(np.intp)
        limit = critical[df][:, None]
        with np.errstate(invalid="ignore"):
            signed = np.abs(statistic) if two_sided else statistic * direction
            rejected = signed >= limit
        rejections += rejected.sum(axis=0)
        every += int(rejected.all(axis=1).sum())
        some += int(rejected.any(axis=1).sum())
        failed += int((~usable).sum())
        estimate_sum += np.nansum(fit.estimate, axis=0)
        analysed += int(fit.analysed.sum())
    usable_trials = trials - failed
    points = [
        _point(
            scenario.name,
            sizes[0],
            comparison,
            trials,
            int(rejections[index]),
            failed,
            float(estimate_sum[index] / usable_trials) if usable_trials else math.nan,
            analysed / trials,
        )
        for index, comparison in enumerate(comparisons)
    ]
    if arms > 2:
        points.append(
            _point(
                scenario.name, sizes[0], "all", trials, every, failed, math.nan, analysed / trials
            )
        )
        points.append(
            _point(
                scenario.name, sizes[0], "any", trials, some, failed, math.nan, analysed / trials
            )
        )
    return points


def _point(
    scenario: str,
    n: int,
    comparison: str,
    trials: int,
    rejections: int,
    failed: int,
    mean_estimate: float,
    mean_analysed: float,
) -> SimulatedPoint:
    lower, upper = wilson_interval(rejections, trials)
    return SimulatedPoint(
        scenario,
        n,
        comparison,
        trials,
        rejections,
        rejections / trials,
        lower,
        upper,
        failed,
        mean_estimate,
        mean_analysed,
    )
