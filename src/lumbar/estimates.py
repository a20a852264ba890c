"""Estimates with their uncertainty: what every estimator of lumbar reports.

Shared by the analysis engine (contrasts, LS means) and evidence synthesis (pooled
estimates, meta-regression coefficients), so neither needs the other. Pure: NumPy,
SciPy and pandas only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd
from scipy import stats

__all__ = ["Estimate", "frame_of", "t_estimate", "wilson_interval", "z_estimate"]


@dataclass(frozen=True)
class Estimate:
    """One estimate (a contrast, an LS mean, a coefficient) with its uncertainty.

    ``df`` is None for a normal (z) reference distribution.
    """

    label: str
    visit: str | None
    arm: str | None
    estimate: float
    se: float
    df: float | None
    statistic: float
    p: float
    lower: float
    upper: float
    n: int | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


def t_estimate(
    label: str,
    estimate: float,
    se: float,
    df: float,
    alpha: float,
    *,
    visit: str | None = None,
    arm: str | None = None,
    n: int | None = None,
) -> Estimate:
    """An estimate tested against zero with a t distribution on ``df`` degrees of freedom."""
    statistic = estimate / se if se > 0 else math.nan
    quantile = float(stats.t.ppf(1 - alpha / 2, df))
    p = float(2 * stats.t.sf(abs(statistic), df))
    return Estimate(
        label,
        visit,
        arm,
        estimate,
        se,
        df,
        statistic,
        p,
        estimate - quantile * se,
        estimate + quantile * se,
        n,
    )


def z_estimate(
    label: str,
    estimate: float,
    se: float,
    alpha: float,
    *,
    visit: str | None = None,
    arm: str | None = None,
    n: int | None = None,
) -> Estimate:
    """An estimate tested against zero with the standard normal distribution."""
    statistic = estimate / se if se > 0 else math.nan
    quantile = float(stats.norm.ppf(1 - alpha / 2))
    p = float(2 * stats.norm.sf(abs(statistic)))
    return Estimate(
        label,
        visit,
        arm,
        estimate,
        se,
        None,
        statistic,
        p,
        estimate - quantile * se,
        estimate + quantile * se,
        n,
    )


def frame_of(estimates: tuple[Estimate, ...]) -> pd.DataFrame:
    """Estimates as a table, one row each."""
    columns = [field.name for field in fields(Estimate)]
    return pd.DataFrame([estimate.row() for estimate in estimates], columns=columns)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion, without continuity correction (Wilson,
    J Am Stat Assoc 1927;22:209-212; Newcombe, Stat Med 1998;17:857, method 3); exactly 0
    or 1 at the ends, (nan, nan) when there are no trials."""
    if trials <= 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + level / 2))
    share = successes / trials
    centre = share + z * z / (2 * trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    lower = 0.0 if successes == 0 else max(0.0, (centre - half) / denominator)
    upper = 1.0 if successes == trials else min(1.0, (centre + half) / denominator)
    return lower, upper
