"""Multiple imputation by chained equations, within each arm; Rubin's rules; tipping points.

Missing outcomes are imputed m times, separately in each arm (so imputations
respect the arms' different trajectories). In each arm, the participants'
outcomes at every visit form a wide table with the baseline and covariates;
each visit with missing values is imputed from all the others in turn, for a
number of iterations (van Buuren & Groothuis-Oudshoorn 2011). Each imputation
starts from its own random fill of the observed values.

- ``norm`` (Bayesian linear regression; Rubin 1987, p. 167): draw
  sigma*^2 = SSR / chi^2_(n-q) and beta* ~ N(beta_hat, sigma*^2 (X'X)^-1), then
  impute X beta* plus normal noise with variance sigma*^2;
- ``pmm`` (predictive mean matching, type 1 as in mice): the same draw, then for
  each missing value pick at random one of the ``donors`` observed values whose
  prediction (with beta_hat) is closest to the missing one's (with beta*).

Every completed data set is analysed with the ANCOVA, and the estimates are
pooled with Rubin's rules and the Barnard & Rubin (1999) degrees of freedom:

    Q = mean(q);  U = mean(u);  B = var(q);  T = U + (1 + 1/m) B
    lambda = (1 + 1/m) B / T;   v_old = (m - 1) / max(lambda, 1e-4)^2
    v_obs = (v_com + 1) / (v_com + 3) v_com (1 - lambda);  v = v_old v_obs / (v_old + v_obs)

A delta-adjusted sensitivity analysis (a tipping-point analysis) adds delta to
every imputed value in the non-reference arms, in the direction of a worse
outcome, for a range of deltas: how much worse would the participants who
left the treatment arms have to be, for the conclusion to change?
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from lumbar.analysis.ancova import ols_columns
from lumbar.analysis.data import TrialData
from lumbar.analysis.design import ancova_design
from lumbar.errors import AnalysisError, Problem

__all__ = [
    "ImputationResult",
    "Pooled",
    "TippingPointResult",
    "impute",
    "multiple_imputation",
    "pool",
    "tipping_point",
]

Method = Literal["pmm", "norm"]


@dataclass(frozen=True)
class Pooled:
    """An estimate pooled over imputations by Rubin's rules."""

    visit: str
    arm: str
    estimate: float
    within: float
    between: float
    total: float
    df: float
    se: float
    lower: float
    upper: float
    p: float
    lambda_: float
    """The proportion of the variance due to missing data."""


def pool(
    estimates: Sequence[float],
    variances: Sequence[float],
    df_complete: float,
    *,
    alpha: float = 0.05,
    visit: str = "",
    arm: str = "",
) -> Pooled:
    """Rubin's rules with Barnard-Rubin degrees of freedom (as mice::pool)."""
    m = len(estimates)
    if m < 2:
        raise AnalysisError(
            "pooling needs at least two imputations",
            [Problem("m", "must be at least 2", m, "use m = 20 or more")],
        )
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    qbar = float(q.mean())
    ubar = float(u.mean())
    between = float(q.var(ddof=1))
    total = ubar + (1 + 1 / m) * between
    lam = (1 + 1 / m) * between / total if total > 0 else 0.0
    # As mice::pool, lambda is floored at 1e-4 in the df formula, so that no missing
    # information (B = 0) gives a large but finite v_old rather than a division by zero.
    floored = max(lam, 1e-4)
    df_old = (m - 1) / floored**2
    df_observed = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - floored)
    df = df_old * df_observed / (df_old + df_observed)
    se = math.sqrt(total)
    quantile = float(stats.t.ppf(1 - alpha / 2, df))
    p = float(2 * stats.t.sf(abs(qbar / se), df)) if se > 0 else math.nan
    return Pooled(
        visit,
        arm,
        qbar,
        ubar,
        between,
        total,
        df,
        se,
        qbar - quantile * se,
        qbar + quantile * se,
        p,
        lam,
    )


def impute(
    data: TrialData,
    *,
    m: int = 20,
    method: Method = "pmm",
    iterations: int = 10,
    donors: int = 5,
    rng: np.random.Generator,
) -> list[pd.DataFrame]:
    """``m`` completed long data sets, imputed by arm; column ``imputed`` flags what was imputed."""
    if method not in ("pmm", "norm"):
        raise AnalysisError(
            "unknown imputation method",
            [Problem("method", "is not a method", method, "use pmm or norm")],
        )
    if data.baseline is None:
        raise AnalysisError(
            "imputation needs a baseline",
            [Problem("baseline", "is required as a predictor", hint="name the baseline column")],
        )
    wide, predictors, keys = _wide(data)
    completed = []
    for _ in range(m):
        filled = wide.copy()
        for arm in data.arms:
            in_arm = keys["arm"].to_numpy() == arm
            filled[in_arm] = _chain(
                wide[in_arm], predictors[in_arm], method, iterations, donors, rng, arm, data.visits
            )
        completed.append(_long(data, filled, wide, keys))
    return completed


def _wide(data: TrialData) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Outcomes (participants x visits), predictors (1, baseline, covariates), keys."""
    frame = data.frame.dropna(subset=["baseline", *data.covariates])
    outcome = frame.pivot(index="participant", columns="visit", values="y")
    outcome = outcome.reindex(columns=list(data.visits))
    first = frame.groupby("participant", observed=True).first()
    keys = first.loc[outcome.index, ["arm"]].astype(str).reset_index()
    columns = [np.ones(len(outcome)), first.loc[outcome.index, "baseline"].to_numpy(dtype=float)]
    for name in data.numeric_covariates:
        columns.append(first.loc[outcome.index, name].to_numpy(dtype=float))
    for name in data.categorical_covariates:
        values = first.loc[outcome.index, name].astype(str).to_numpy()
        for level in data.categories[name][1:]:
            columns.append((values == level).astype(float))
    return outcome.to_numpy(dtype=float), np.column_stack(columns), keys


def _chain(
    outcomes: np.ndarray,
    predictors: np.ndarray,
    method: Method,
    iterations: int,
    donors: int,
    rng: np.random.Generator,
    arm: str,
    visits: Sequence[str],
) -> np.ndarray:
    missing = np.isnan(outcomes)
    filled = outcomes.copy()
    targets = [j for j in range(outcomes.shape[1]) if missing[:, j].any()]
    for j in targets:
        observed = outcomes[~missing[:, j], j]
        if len(observed) == 0:
            raise AnalysisError(
                "nothing to impute from",
                [
                    Problem(
                        f"arm {arm} visit {visits[j]}",
                        "has no observed outcome",
                        hint="drop the visit",
                    )
                ],
            )
        filled[missing[:, j], j] = rng.choice(observed, size=int(missing[:, j].sum()))
    for _ in range(iterations):
        for j in targets:
            others = np.delete(filled, j, axis=1)
            design = np.column_stack([predictors, others])
            rows = ~missing[:, j]
            filled[missing[:, j], j] = _draw(
                design[rows], outcomes[rows, j], design[~rows], method, donors, rng, arm, visits[j]
            )
    return filled


def _draw(
    x_observed: np.ndarray,
    y_observed: np.ndarray,
    x_missing: np.ndarray,
    method: Method,
    donors: int,
    rng: np.random.Generator,
    arm: str,
    visit: str,
) -> np.ndarray:
    n, q = x_observed.shape
    if n <= q:
        raise AnalysisError(
            "too few observed values to impute",
            [
                Problem(
                    f"arm {arm} visit {visit}",
                    f"{n} observed values for {q} predictors",
                    hint="use fewer covariates, or the MMRM",
                )
            ],
        )
    # A tiny ridge, as mice does, keeps nearly collinear predictors solvable.
    gram = x_observed.T @ x_observed
    gram += np.eye(q) * 1e-5 * np.diag(gram).mean()
    inverse = np.linalg.inv(gram)
    beta_hat = inverse @ x_observed.T @ y_observed
    residual = y_observed - x_observed @ beta_hat
    sigma_draw = math.sqrt(float(residual @ residual) / rng.chisquare(n - q))
    beta_draw = beta_hat + sigma_draw * np.linalg.cholesky(inverse) @ rng.standard_normal(q)
    if method == "norm":
        result: np.ndarray = x_missing @ beta_draw + sigma_draw * rng.standard_normal(
            len(x_missing)
        )
        return result
    predicted_observed = x_observed @ beta_hat
    predicted_missing = x_missing @ beta_draw
    chosen = np.empty(len(x_missing))
    pool_size = min(donors, n)
    for index, target in enumerate(predicted_missing):
        distance = np.abs(predicted_observed - target)
        nearest = np.argpartition(distance, pool_size - 1)[:pool_size]
        chosen[index] = y_observed[rng.choice(nearest)]
    return chosen


def _long(
    data: TrialData, filled: np.ndarray, wide: np.ndarray, keys: pd.DataFrame
) -> pd.DataFrame:
    """Back to long form, a row for every participant and visit (absent rows included)."""
    first = data.frame.groupby("participant", observed=True).first()
    participants = keys["participant"].to_numpy()
    visits = len(data.visits)
    frame = first.loc[np.repeat(participants, visits)].reset_index()
    frame["visit"] = pd.Categorical(
        np.tile(list(data.visits), len(participants)), categories=list(data.visits), ordered=True
    )
    frame["y"] = filled.ravel()
    frame["imputed"] = np.isnan(wide).ravel()
    return frame


@dataclass(frozen=True)
class ImputationResult:
    """ANCOVA contrasts pooled over imputations."""

    outcome: str
    reference: str
    method: str
    m: int
    iterations: int
    seed: int | None
    alpha: float
    pooled: tuple[Pooled, ...]
    missing_share: dict[str, float]
    completed: list[pd.DataFrame] = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(row) for row in self.pooled])

    def contrast(self, visit: str, arm: str) -> Pooled:
        for row in self.pooled:
            if row.visit == visit and row.arm == arm:
                return row
        raise KeyError((visit, arm))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "multiple_imputation",
            "outcome": self.outcome,
            "reference": self.reference,
            "imputation_method": self.method,
            "m": self.m,
            "iterations": self.iterations,
            "seed": self.seed,
            "alpha": self.alpha,
            "pooled": [vars(row) for row in self.pooled],
            "missing_share": self.missing_share,
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        name = "predictive mean matching" if self.method == "pmm" else "Bayesian linear regression"
        return (
            f"Missing values of {self.outcome} were imputed {self.m} times by chained equations "
            f"within each arm ({name}, {self.iterations} iterations), using the baseline value, "
            "the covariates and the other visits; each completed data set was analysed by ANCOVA "
            "and the results combined by Rubin's rules with Barnard-Rubin degrees of freedom."
        )

    def __str__(self) -> str:
        lines = [f"Multiple imputation ({self.method}, m = {self.m}) of {self.outcome}"]
        for row in self.pooled:
            lines.append(
                f"  {row.visit:>10}  {row.arm:<14} {row.estimate:8.3f} "
                f"({row.lower:.3f} to {row.upper:.3f})  df={row.df:.1f}  p={row.p:.4f}"
            )
        return "\n".join(lines)


def multiple_imputation(
    data: TrialData,
    *,
    m: int = 20,
    method: Method = "pmm",
    iterations: int = 10,
    donors: int = 5,
    seed: int | None = None,
    alpha: float = 0.05,
) -> ImputationResult:
    """Impute, analyse each completed data set by ANCOVA, pool."""
    rng = np.random.default_rng(seed)
    completed = impute(data, m=m, method=method, iterations=iterations, donors=donors, rng=rng)
    pooled = _pool_ancova(data, completed, alpha, deltas=[0.0], direction=1.0)[0.0]
    missing = data.frame.groupby("visit", observed=True)["y"].apply(
        lambda s: float(s.isna().mean())
    )
    return ImputationResult(
        data.outcome,
        data.reference,
        method,
        m,
        iterations,
        seed,
        alpha,
        tuple(pooled),
        {str(k): v for k, v in missing.items()},
        completed,
    )


def _pool_ancova(
    data: TrialData,
    completed: Sequence[pd.DataFrame],
    alpha: float,
    *,
    deltas: Sequence[float],
    direction: float,
) -> dict[float, list[Pooled]]:
    """Rubin-pooled ANCOVA contrasts for each delta: imputed treatment values moved by it.

    Every completed data set has the same rows and design at a visit, so each visit
    takes one QR for all imputations and deltas together.
    """
    first = completed[0]
    outcomes = np.column_stack([frame["y"].to_numpy(dtype=float) for frame in completed])
    imputed = np.column_stack([frame["imputed"].to_numpy(dtype=bool) for frame in completed])
    shift = imputed & (first["arm"].astype(str) != data.reference).to_numpy()[:, None]
    shifted = np.concatenate([outcomes + direction * delta * shift for delta in deltas], axis=1)
    visit_of_row = first["visit"].astype(str).to_numpy()
    m = len(completed)
    pooled: dict[float, list[Pooled]] = {float(delta): [] for delta in deltas}
    for visit in data.visits:
        at = visit_of_row == visit
        design = ancova_design(data, first[at])
        try:
            fit = ols_columns(design.matrix, shifted[at])
        except AnalysisError as error:
            raise AnalysisError(
                f"ANCOVA of imputed data at visit {visit}: {error.summary}", error.problems
            ) from None
        for arm in data.arms[1:]:
            row = design.contrast_row(arm, None)
            estimates = row @ fit.coefficients
            variances = fit.sigma2 * float(row @ fit.bread @ row)
            for index, delta in enumerate(deltas):
                chosen = slice(index * m, (index + 1) * m)
                pooled[float(delta)].append(
                    pool(
                        estimates[chosen].tolist(),
                        variances[chosen].tolist(),
                        float(fit.df),
                        alpha=alpha,
                        visit=visit,
                        arm=arm,
                    )
                )
    return pooled


@dataclass(frozen=True)
class TippingPointResult:
    """Pooled contrasts for each delta, and the smallest delta that changes the conclusion."""

    outcome: str
    reference: str
    direction: str
    alpha: float
    table: pd.DataFrame = field(repr=False)
    """delta, visit, arm, estimate, lower, upper, p."""
    tipping_points: dict[str, float | None]
    """'visit/arm' -> the smallest delta with p >= alpha (None: none in the range)."""
    significant_without_delta: dict[str, bool]

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "tipping_point",
            "outcome": self.outcome,
            "reference": self.reference,
            "direction": self.direction,
            "alpha": self.alpha,
            "table": self.table.to_dict(orient="records"),
            "tipping_points": self.tipping_points,
            "significant_without_delta": self.significant_without_delta,
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        return (
            "In a delta-adjusted sensitivity analysis for data missing not at random, every "
            f"imputed {self.outcome} value in the treatment arms was made worse by delta points "
            "before analysis, for increasing delta; the tipping point is the smallest delta at "
            f"which the difference from {self.reference} is no longer significant."
        )

    def __str__(self) -> str:
        lines = [f"Tipping points for {self.outcome} (worse by delta in treatment arms)"]
        for key, value in self.tipping_points.items():
            if not self.significant_without_delta[key]:
                text = "not significant even without delta"
            elif value is None:
                text = "still significant at the largest delta tried"
            else:
                text = f"delta {value:g}"
            lines.append(f"  {key}: {text}")
        return "\n".join(lines)


def tipping_point(
    data: TrialData,
    result: ImputationResult,
    deltas: Sequence[float],
    *,
    direction: Literal["higher_is_worse", "higher_is_better"] = "higher_is_worse",
) -> TippingPointResult:
    """Re-pool ``result``'s imputations with every imputed treatment value shifted by each delta."""
    sign = 1.0 if direction == "higher_is_worse" else -1.0
    rows = []
    by_delta = _pool_ancova(data, result.completed, result.alpha, deltas=deltas, direction=sign)
    for delta, results in by_delta.items():
        for pooled in results:
            rows.append(
                {
                    "delta": float(delta),
                    "visit": pooled.visit,
                    "arm": pooled.arm,
                    "estimate": pooled.estimate,
                    "lower": pooled.lower,
                    "upper": pooled.upper,
                    "p": pooled.p,
                }
            )
    table = pd.DataFrame(rows)
    tipping: dict[str, float | None] = {}
    significant: dict[str, bool] = {}
    for (visit, arm), group in table.groupby(["visit", "arm"], sort=False):
        ordered = group.sort_values("delta")
        key = f"{visit}/{arm}"
        significant[key] = bool(ordered.iloc[0]["p"] < result.alpha)
        lost = ordered[ordered["p"] >= result.alpha] if significant[key] else ordered.iloc[0:0]
        tipping[key] = float(lost["delta"].min()) if len(lost) else None
    return TippingPointResult(
        data.outcome, data.reference, direction, result.alpha, table, tipping, significant
    )
