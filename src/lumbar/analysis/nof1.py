"""A client's own trial (N-of-1): a randomized plan, its analysis, and several clients pooled.

A client who wants to know whether massage helps *them* alternates periods with
and without massage. The periods come in pairs; within each pair the order is
drawn at random (Guyatt et al., N Engl J Med 1986;314:889; Kravitz & Duan,
Design and Implementation of N-of-1 Trials, AHRQ 2014).

Analysis of one client, on each period's mean rating (lower is better):

- d_i = score(none) - score(massage) in pair i, so d_i > 0 means less bother
  with massage;
- the mean difference d̄ with the 95% CI d̄ ± t(0.975; n - 1) s / sqrt(n), s the
  SD of the n pair differences (R's ``t.test(none, massage, paired = TRUE)``);
- an exact randomization test following the randomization actually used: under
  "massage makes no difference", swapping the order within a pair only flips
  the sign of d_i, so all 2^n sign patterns were equally likely. The two-sided
  p-value is the share of patterns whose mean is at least as far from 0 as the
  observed one (the observed pattern counts). With 4 pairs there are 16 patterns,
  so p is never below 2/16 = 0.125: a short series cannot rule out chance.

Several clients (:func:`nof1_pooled`): the pair differences d_ij of client j
follow the one-way random-effects model d_ij = mu + u_j + e_ij, u_j ~ N(0, tau²),
e_ij ~ N(0, sigma²), fitted by REML (as ``nlme::lme(d ~ 1, random = ~ 1 | client,
method = "REML")``). With V_j = sigma² I + tau² J and w_j = n_j / (sigma² + n_j tau²),
mu = sum w_j d̄_j / sum w_j and SE(mu) = 1 / sqrt(sum w_j); the CI uses t on
(clients - 1) df.

Example::

    >>> plan = nof1_plan(pairs=4, period_days=7, seed=20261208)
    >>> [p.condition for p in plan.periods][:2]  # one pair, in its drawn order
    ['none', 'massage']
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from lumbar.errors import AnalysisError, Problem

__all__ = [
    "CONDITIONS",
    "MAX_EXACT_PAIRS",
    "Nof1Plan",
    "Nof1Pooled",
    "Nof1Result",
    "PlannedPeriod",
    "nof1_analysis",
    "nof1_plan",
    "nof1_pooled",
]

Condition = Literal["massage", "none"]
CONDITIONS: tuple[Condition, ...] = ("massage", "none")
LEVEL = 0.95
"""Confidence level of the intervals; the trial's default two-sided alpha of 0.05."""
MAX_EXACT_PAIRS = 20
"""The exact test enumerates 2^n sign patterns: 2^20 is about a million, still quick."""
_TIE = 1e-9
"""Relative tolerance when a permuted mean equals the observed one in absolute value."""


@dataclass(frozen=True)
class PlannedPeriod:
    """One period of the plan: days ``start_day`` to ``end_day`` (day 1 = first day)."""

    pair: int
    period: int
    condition: Condition
    start_day: int
    end_day: int


@dataclass(frozen=True)
class Nof1Plan:
    """The randomized schedule: ``pairs`` pairs of ``period_days``-day periods."""

    pairs: int
    period_days: int
    seed: int
    periods: tuple[PlannedPeriod, ...]
    method: str = (
        "order within each pair drawn by numpy.random.default_rng(seed).integers(0, 2, pairs):"
        " 1 = massage first"
    )

    def to_frame(self) -> pd.DataFrame:
        """One row per period: pair, period, condition, start and end day."""
        return pd.DataFrame([asdict(p) for p in self.periods])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive_int(name: str, value: object, minimum: int) -> list[Problem]:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        return [Problem(name, f"must be a whole number >= {minimum}", received=value)]
    return []


def nof1_plan(pairs: int, period_days: int, seed: int) -> Nof1Plan:
    """A randomized N-of-1 schedule: ``pairs`` pairs, the order within each drawn at random.

    The draw is ``numpy.random.default_rng(seed).integers(0, 2, size=pairs)``
    (1 = massage first), so the same seed always gives the same plan; each pair
    holds one massage and one no-massage period. Periods follow each other
    without a gap: period k (1-based) runs from day (k - 1) x period_days + 1.
    """
    problems = _positive_int("pairs", pairs, 2) + _positive_int("period_days", period_days, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        problems.append(Problem("seed", "must be a whole number >= 0", received=seed))
    if problems:
        raise AnalysisError("cannot plan an N-of-1 trial: bad input", problems)
    massage_first = np.random.default_rng(seed).integers(0, 2, size=pairs)
    periods: list[PlannedPeriod] = []
    for index, first in enumerate(massage_first):
        order: tuple[Condition, Condition] = ("massage", "none") if first else ("none", "massage")
        for condition in order:
            number = len(periods) + 1
            start = (number - 1) * period_days + 1
            periods.append(
                PlannedPeriod(index + 1, number, condition, start, start + period_days - 1)
            )
    return Nof1Plan(int(pairs), int(period_days), int(seed), tuple(periods))


@dataclass(frozen=True)
class Nof1Result:
    """One client's N-of-1 analysis: pair differences (none - massage), CI, exact test."""

    pairs: tuple[int, ...]
    differences: tuple[float, ...]
    mean_difference: float
    sd: float
    lower: float
    upper: float
    df: int
    p_value: float
    as_extreme: int
    """Sign patterns whose mean is at least as far from 0 as the observed (observed included)."""
    patterns: int
    """2^n: every sign pattern the randomization could have produced."""
    summary: str
    level: float = LEVEL

    @property
    def n_pairs(self) -> int:
        return len(self.differences)

    def to_frame(self) -> pd.DataFrame:
        """One row per pair: its difference none - massage."""
        return pd.DataFrame({"pair": self.pairs, "difference": self.differences})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_pairs": self.n_pairs}

    def __str__(self) -> str:
        return self.summary


def _differences(periods: object, where: str = "periods") -> pd.DataFrame:
    """Validate a periods frame and return one row per pair with its difference."""
    if not isinstance(periods, pd.DataFrame):
        raise AnalysisError(
            "cannot analyse the N-of-1 trial: bad input",
            [Problem(where, "must be a pandas DataFrame", received=type(periods).__name__)],
        )
    missing = [c for c in ("pair", "condition", "score") if c not in periods.columns]
    if missing:
        raise AnalysisError(
            "cannot analyse the N-of-1 trial: bad input",
            [Problem(f"{where}.{c}", "column is required", received=None) for c in missing],
        )
    problems: list[Problem] = []
    bad = periods.loc[~periods["condition"].isin(CONDITIONS), "condition"]
    if len(bad):
        problems.append(
            Problem(f"{where}.condition", "must be 'massage' or 'none'", received=bad.iloc[0])
        )
    score = pd.to_numeric(periods["score"], errors="coerce")
    if not np.isfinite(score.to_numpy(dtype=float)).all():
        first = periods.loc[~np.isfinite(score.to_numpy(dtype=float)), "score"].iloc[0]
        problems.append(Problem(f"{where}.score", "must be a finite number", received=first))
    if problems:
        raise AnalysisError("cannot analyse the N-of-1 trial: bad input", problems)
    counts = periods.groupby(["pair", "condition"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(CONDITIONS), fill_value=0)
    uneven = counts[(counts["massage"] != 1) | (counts["none"] != 1)]
    if len(uneven):
        raise AnalysisError(
            "cannot analyse the N-of-1 trial: bad input",
            [
                Problem(
                    f"{where}.pair",
                    "each pair needs exactly one 'massage' and one 'none' period",
                    received=uneven.index[0],
                )
            ],
        )
    wide = (
        periods.assign(score=score)
        .pivot(index="pair", columns="condition", values="score")
        .sort_index()
    )
    return pd.DataFrame({"pair": wide.index, "difference": wide["none"] - wide["massage"]})


def _exact_p(differences: np.ndarray) -> tuple[int, int]:
    """(patterns as extreme, 2^n) over every sign flip of the differences, observed included."""
    n = len(differences)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    means = signs @ differences / n
    observed = abs(differences.mean())
    as_extreme = int(np.sum(np.abs(means) >= observed - _TIE * max(1.0, observed)))
    return as_extreme, len(signs)


def _sentence(n: int, mean: float, as_extreme: int, patterns: int, scale: str) -> str:
    size = f"{abs(mean):.1f}".rstrip("0").rstrip(".")
    if abs(mean) < 0.05:
        effect = (
            f"In your {n} pairs of periods, your back bothered you about the same"
            f" ({scale}) in the periods with massage as in the periods without."
        )
    else:
        way = "less" if mean > 0 else "more"
        points = "point" if size == "1" else "points"
        effect = (
            f"In your {n} pairs of periods, your back bothered you on average {size}"
            f" {points} {way} ({scale}) in the periods with massage."
        )
    share = as_extreme / patterns
    chance = (
        f" If massage made no difference to you, a difference at least this large would"
        f" still turn up in {as_extreme} of the {patterns} orders your periods could have"
        f" been given, so "
    )
    verdict = (
        "it is unlikely to be chance alone." if share <= 1 - LEVEL else "it could well be chance."
    )
    return effect + chance + verdict


def nof1_analysis(periods: pd.DataFrame, *, scale: str = "0 to 10") -> Nof1Result:
    """Analyse one client's periods: a frame of ``pair``, ``condition`` and ``score``.

    ``condition`` is "massage" or "none"; ``score`` is the period's mean rating,
    lower is better. Each pair needs one period of each; at least 2 and at most
    :data:`MAX_EXACT_PAIRS` pairs. ``scale`` names the rating scale in the sentence.
    """
    frame = _differences(periods)
    n = len(frame)
    if n < 2 or n > MAX_EXACT_PAIRS:
        raise AnalysisError(
            "cannot analyse the N-of-1 trial: bad input",
            [Problem("periods.pair", f"needs 2 to {MAX_EXACT_PAIRS} complete pairs", received=n)],
        )
    d = frame["difference"].to_numpy(dtype=float)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(1 - (1 - LEVEL) / 2, n - 1)) * sd / math.sqrt(n)
    as_extreme, patterns = _exact_p(d)
    return Nof1Result(
        pairs=tuple(frame["pair"].tolist()),
        differences=tuple(float(x) for x in d),
        mean_difference=mean,
        sd=sd,
        lower=mean - half,
        upper=mean + half,
        df=n - 1,
        p_value=as_extreme / patterns,
        as_extreme=as_extreme,
        patterns=patterns,
        summary=_sentence(n, mean, as_extreme, patterns, scale),
    )


@dataclass(frozen=True)
class Nof1Pooled:
    """Several clients' N-of-1 series pooled: d_ij = mu + u_j + e_ij by REML."""

    clients: int
    pairs: int
    mu: float
    se: float
    df: int
    lower: float
    upper: float
    tau2: float
    """Between-client variance of the true effects."""
    sigma2: float
    """Within-client variance of the pair differences."""
    log_likelihood: float
    """The restricted log-likelihood at the estimates (nlme's ``logLik`` for REML)."""
    level: float = LEVEL

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(self)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _restricted(
    sigma2: float, tau2: float, n: np.ndarray, groups: list[np.ndarray]
) -> tuple[float, float, float]:
    """(REML log-likelihood, mu, sum of weights) of the one-way random-effects model."""
    total = float(n.sum())
    weights = n / (sigma2 + n * tau2)
    means = np.array([g.mean() for g in groups])
    mu = float(np.sum(weights * means) / np.sum(weights))
    log_det = float(np.sum((n - 1) * math.log(sigma2) + np.log(sigma2 + n * tau2)))
    quad = 0.0
    for g, nj in zip(groups, n, strict=True):
        r = g - mu
        quad += (r @ r - tau2 / (sigma2 + nj * tau2) * r.sum() ** 2) / sigma2
    log_l = -0.5 * ((total - 1) * math.log(2 * math.pi) + log_det + math.log(weights.sum()) + quad)
    return log_l, mu, float(weights.sum())


def nof1_pooled(periods: pd.DataFrame) -> Nof1Pooled:
    """Pool several clients' periods (``client``, ``pair``, ``condition``, ``score``) by REML.

    Every client needs at least one complete pair; at least 2 clients and more
    pair differences than clients (otherwise sigma² and tau² cannot be told apart).
    """
    if not isinstance(periods, pd.DataFrame) or "client" not in periods.columns:
        raise AnalysisError(
            "cannot pool N-of-1 trials: bad input",
            [Problem("periods.client", "column is required", received=None)],
        )
    groups: list[np.ndarray] = []
    for client, part in periods.groupby("client", sort=True):
        frame = _differences(part, where=f"periods[client={client}]")
        groups.append(frame["difference"].to_numpy(dtype=float))
    n = np.array([len(g) for g in groups], dtype=float)
    if len(groups) < 2 or n.sum() <= len(groups):
        raise AnalysisError(
            "cannot pool N-of-1 trials: bad input",
            [
                Problem(
                    "periods.client",
                    "needs at least 2 clients and more pairs than clients",
                    received={"clients": len(groups), "pairs": int(n.sum())},
                )
            ],
        )
    # Start from the ANOVA (moment) estimates; optimise on the log scale of both
    # variances, as nlme does, so neither can turn negative.
    within = float(sum(((g - g.mean()) ** 2).sum() for g in groups) / (n.sum() - len(groups)))
    start = np.log([max(within, 1e-8), max(within, 1e-8)])

    def objective(theta: np.ndarray) -> float:
        return -_restricted(math.exp(theta[0]), math.exp(theta[1]), n, groups)[0]

    fit = optimize.minimize(
        objective, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}
    )
    fit = optimize.minimize(objective, fit.x, method="BFGS", options={"gtol": 1e-10})
    sigma2, tau2 = math.exp(fit.x[0]), math.exp(fit.x[1])
    log_l, mu, weight = _restricted(sigma2, tau2, n, groups)
    se = 1 / math.sqrt(weight)
    df = len(groups) - 1
    half = float(stats.t.ppf(1 - (1 - LEVEL) / 2, df)) * se
    return Nof1Pooled(
        clients=len(groups),
        pairs=int(n.sum()),
        mu=mu,
        se=se,
        df=df,
        lower=mu - half,
        upper=mu + half,
        tau2=tau2,
        sigma2=sigma2,
        log_likelihood=float(log_l),
    )
