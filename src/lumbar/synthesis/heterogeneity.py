"""Explaining and probing heterogeneity: subgroups, leave-one-out, cumulative pooling,
and small-study effects.

``subgroups``
    each subgroup pooled on its own (its own tau^2), and two tests for a difference
    between subgroups: Q-between, Cochran's Q across the subgroup estimates (as
    RevMan and the Cochrane Handbook 10.11.3.1 report it), and the moderator test
    of a meta-regression on the subgroup factor (one common tau^2).
``leave_one_out``
    the model refitted without each study in turn: which study moves the result.
``cumulative``
    the model refitted as studies are added in a given order (usually by year):
    when the evidence settled.
``egger_test``
    Egger's regression test for funnel-plot asymmetry (Egger et al., BMJ
    1997;315:629): the effects regressed on their standard errors. ``model="lm"``
    is the classical weighted regression with a multiplicative error term;
    ``model="rma"`` the meta-regression on the standard error with the chosen
    tau^2 method (metafor's ``regtest`` default). Fewer than 10 studies give
    little power (Sterne et al., BMJ 2011;343:d4002), and the result says so. When
    every study has the same standard error the slope has no estimate (the design is
    singular): :func:`egger_not_estimable` says so, and the test is refused with that
    reason rather than given numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from lumbar.errors import Problem, SynthesisError
from lumbar.estimates import z_estimate
from lumbar.synthesis.effects import EffectSizes
from lumbar.synthesis.models import MetaResult, Method, meta_analysis, meta_regression

__all__ = [
    "EggerTest",
    "SubgroupAnalysis",
    "cumulative",
    "egger_not_estimable",
    "egger_test",
    "leave_one_out",
    "subgroups",
]


@dataclass(frozen=True)
class SubgroupAnalysis:
    """Each subgroup pooled on its own, and the tests for a difference between them."""

    variable: str
    results: dict[str, MetaResult] = field(repr=False)
    q_between: float
    q_between_df: int
    q_between_p: float
    moderator_test: MetaResult | None = field(repr=False)
    """The meta-regression on the subgroup factor (its ``qm`` and ``qm_p``); None when
    there are no more studies than subgroups."""

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for name, result in self.results.items():
            pooled = result.pooled
            rows.append(
                {
                    "subgroup": name,
                    "k": result.k,
                    "estimate": pooled.estimate,
                    "se": pooled.se,
                    "lower": pooled.lower,
                    "upper": pooled.upper,
                    "p": pooled.p,
                    "tau2": result.tau2,
                    "i2": result.i2,
                    "q": result.q,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "subgroups": {name: result.to_dict() for name, result in self.results.items()},
            "q_between": self.q_between,
            "q_between_df": self.q_between_df,
            "q_between_p": self.q_between_p,
            "moderator_qm": None if self.moderator_test is None else self.moderator_test.qm,
            "moderator_qm_p": None if self.moderator_test is None else self.moderator_test.qm_p,
        }


def subgroups(
    effects: EffectSizes,
    groups: Sequence[str],
    method: Method = "REML",
    *,
    variable: str = "subgroup",
    hksj: bool = False,
    alpha: float = 0.05,
) -> SubgroupAnalysis:
    """Pool each subgroup of ``effects`` (labels in ``groups``, one per study)."""
    labels = [str(group) for group in groups]
    if len(labels) != effects.k:
        raise SynthesisError(
            "cannot form the subgroups",
            [Problem(variable, f"needs one value per study ({effects.k})", len(labels))],
        )
    order = list(dict.fromkeys(labels))
    if len(order) < 2:
        raise SynthesisError(
            "cannot compare subgroups",
            [Problem(variable, "has fewer than two subgroups", order)],
        )
    results: dict[str, MetaResult] = {}
    for name in order:
        keep = np.array([label == name for label in labels])
        chosen = method if keep.sum() > 1 else "FE"
        results[name] = meta_analysis(
            effects.subset(keep), chosen, hksj=hksj and keep.sum() > 1, alpha=alpha
        )
    estimates = np.array([result.estimate for result in results.values()])
    weights = np.array([1 / result.se**2 for result in results.values()])
    pooled = float(np.sum(weights * estimates) / np.sum(weights))
    q_between = float(np.sum(weights * (estimates - pooled) ** 2))
    q_df = len(order) - 1
    moderator = None
    if effects.k > len(order):
        moderator = meta_regression(
            effects, pd.DataFrame({variable: labels}), method, hksj=hksj, alpha=alpha
        )
    return SubgroupAnalysis(
        variable,
        results,
        q_between,
        q_df,
        float(stats.chi2.sf(q_between, q_df)),
        moderator,
    )


def leave_one_out(
    effects: EffectSizes, method: Method = "REML", *, hksj: bool = False, alpha: float = 0.05
) -> pd.DataFrame:
    """The model without each study in turn: one row per study left out."""
    if effects.k < 3:
        raise SynthesisError(
            "cannot leave one out",
            [Problem("studies", "at least 3 are needed", effects.k)],
        )
    rows = []
    for index, study in enumerate(effects.studies):
        keep = np.arange(effects.k) != index
        rows.append(
            _row(study, meta_analysis(effects.subset(keep), method, hksj=hksj, alpha=alpha))
        )
    return pd.DataFrame(rows).rename(columns={"study": "left_out"})


def cumulative(
    effects: EffectSizes,
    order: Sequence[float] | None = None,
    method: Method = "REML",
    *,
    hksj: bool = False,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The model as studies are added in ``order`` (e.g. publication year; ties keep the
    given order): one row per study added, from the first study on (k = 1), as
    ``metafor::cumul`` does. The first row is that study alone: its own effect with a
    normal-theory interval (no between-study variance, tau^2 = 0, Q = 0), whatever the
    method, since neither tau^2 nor the Hartung-Knapp-Sidik-Jonkman t has degrees of
    freedom with one study."""
    positions = np.arange(effects.k) if order is None else np.argsort(order, kind="stable")
    first = int(positions[0])
    rows = [_single_row(effects.studies[first], effects.yi[first], effects.vi[first], alpha)]
    for count in range(2, effects.k + 1):
        keep = np.zeros(effects.k, dtype=bool)
        keep[positions[:count]] = True
        subset = effects.subset(keep)
        result = meta_analysis(subset, method, hksj=hksj, alpha=alpha)
        rows.append(_row(effects.studies[positions[count - 1]], result))
    return pd.DataFrame(rows).rename(columns={"study": "added"})


def _single_row(study: str, effect: float, variance: float, alpha: float) -> dict[str, Any]:
    """One study on its own (metafor's k = 1 fit): its effect, z test, no heterogeneity."""
    alone = z_estimate("intercept", float(effect), math.sqrt(float(variance)), alpha)
    return {
        "study": study,
        "k": 1,
        "estimate": alone.estimate,
        "se": alone.se,
        "statistic": alone.statistic,
        "p": alone.p,
        "lower": alone.lower,
        "upper": alone.upper,
        "q": 0.0,
        "q_p": 1.0,
        "tau2": 0.0,
        "i2": 0.0,
        "h2": 1.0,
        # No spread of true effects can be estimated from one study.
        "prediction_lower": math.nan,
        "prediction_upper": math.nan,
    }


def _row(study: str, result: MetaResult) -> dict[str, Any]:
    pooled = result.pooled
    low, high = result.prediction or (math.nan, math.nan)
    return {
        "study": study,
        "k": result.k,
        "estimate": pooled.estimate,
        "se": pooled.se,
        "statistic": pooled.statistic,
        "p": pooled.p,
        "lower": pooled.lower,
        "upper": pooled.upper,
        "q": result.q,
        "q_p": result.q_p,
        "tau2": result.tau2,
        "i2": result.i2,
        "h2": result.h2,
        "prediction_lower": low,
        "prediction_upper": high,
    }


@dataclass(frozen=True)
class EggerTest:
    """Egger's regression test: the slope on the standard error and its test."""

    model: Literal["lm", "rma"]
    k: int
    slope: float
    se: float
    statistic: float
    df: int | None
    p: float
    limit_estimate: float
    """The intercept: the effect predicted for a study of infinite size."""
    note: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


EQUAL_SE_TOLERANCE = 1e-7
"""Standard errors count as all equal when, in Egger's weighted regression (columns 1/SE
and 1 once weighted), the part of the second column the first does not explain is below
this share of its length: the rule (and tolerance) by which R's ``lm.fit`` drops a
collinear column (``tol = 1e-07``). It also catches SEs equal but for rounding, as from
intervals of one width, which would give a slope of pure rounding noise."""


def egger_not_estimable(effects: EffectSizes) -> str:
    """Why Egger's test cannot be estimated on ``effects`` (all standard errors equal),
    or "" when it can."""
    precision = 1 / effects.sei
    ones = np.ones(effects.k)
    unexplained = ones - precision * float(precision @ ones) / float(precision @ precision)
    if float(np.linalg.norm(unexplained)) >= EQUAL_SE_TOLERANCE * math.sqrt(effects.k):
        return ""
    return (
        f"all {effects.k} standard errors are equal ({float(np.median(effects.sei)):.4g}), "
        "so the effects cannot be regressed on them"
    )


def egger_test(
    effects: EffectSizes,
    model: Literal["lm", "rma"] = "lm",
    method: Method = "REML",
    *,
    hksj: bool = False,
) -> EggerTest:
    """Regress the effects on their standard errors and test the slope (asymmetry)."""
    if effects.k < 3:
        raise SynthesisError(
            "cannot test for small-study effects",
            [Problem("studies", "at least 3 are needed", effects.k)],
        )
    reason = egger_not_estimable(effects)
    if reason:
        raise SynthesisError(
            "Egger's test is not estimable",
            [
                Problem(
                    "standard errors",
                    "are all equal, so the effects cannot be regressed on them",
                    float(np.median(effects.sei)),
                    "the test needs studies of different precision",
                )
            ],
        )
    note = (
        "fewer than 10 studies: the test has little power to detect asymmetry"
        if effects.k < 10
        else ""
    )
    sei = effects.sei
    if model == "rma":
        result = meta_regression(effects, pd.DataFrame({"sei": sei}), method, hksj=hksj)
        slope = result.coefficients[1]
        return EggerTest(
            "rma",
            effects.k,
            slope.estimate,
            slope.se,
            slope.statistic,
            result.df,
            slope.p,
            result.coefficients[0].estimate,
            note,
        )
    weights = 1 / effects.vi
    x = np.column_stack([np.ones(effects.k), sei])
    xtwx = x.T @ (weights[:, None] * x)
    beta = np.linalg.solve(xtwx, x.T @ (weights * effects.yi))
    residual = effects.yi - x @ beta
    df = effects.k - 2
    sigma2 = float(np.sum(weights * residual**2) / df)
    covariance = sigma2 * np.linalg.inv(xtwx)
    se = math.sqrt(float(covariance[1, 1]))
    statistic = float(beta[1]) / se
    return EggerTest(
        "lm",
        effects.k,
        float(beta[1]),
        se,
        statistic,
        df,
        float(2 * stats.t.sf(abs(statistic), df)),
        float(beta[0]),
        note,
    )
