"""Pooling effect sizes: common-effect and random-effects models, meta-regression.

Every model is the weighted least-squares fit of the effects on a design matrix
``X`` (a column of ones for plain pooling; moderators for meta-regression) with
weights :math:`w_i = 1/(v_i + \\tau^2)`; the methods differ in :math:`\\tau^2`:

``FE``
    common effect: :math:`\\tau^2 = 0`.
``DL``
    DerSimonian & Laird (Control Clin Trials 1986;7:177), the method of moments:
    :math:`\\tau^2 = \\max(0, (Q - (k-p)) / \\mathrm{tr}(P_0))`.
``PM``
    Paule & Mandel (J Res Natl Bur Stand 1982;87:377): the :math:`\\tau^2` at which the
    generalized Q statistic equals its expectation :math:`k - p`.
``ML``, ``REML``
    maximum and restricted maximum likelihood, by Fisher scoring (Viechtbauer,
    J Educ Behav Stat 2005;30:261), truncated at 0. The (restricted) likelihood of
    :math:`\\tau^2` can have more than one maximum (a few precise studies agreeing and
    a few imprecise ones far away), and Fisher scoring climbs the nearest. So the
    answer is compared with the boundary :math:`\\tau^2 = 0` (as ``metafor::rma``
    does) and with a profile of the likelihood over a grid on
    :math:`[0, \\tau^2_{\\max}]`; scoring restarts from the best grid point when that is
    higher, and the global maximum on :math:`[0, \\infty)` is returned. The grid ends at
    :math:`\\tau^2_{\\max}` = 10 (range of the effects)^2 + max v_i: for the pooled
    mean the ML equation makes any maximum a weighted mean of :math:`e_i^2 - v_i`, at
    most the squared range; the factor 10 leaves room for REML's correction. When the
    profile has more than one local maximum the result carries a note saying so. PM
    needs no such check: the generalized Q falls strictly as :math:`\\tau^2` grows, so
    its root is unique.

The Hartung-Knapp-Sidik-Jonkman adjustment (``hksj=True``; Hartung & Knapp,
Stat Med 2001;20:3875; IntHout et al., BMC Med Res Methodol 2014;14:25) scales
the covariance of the estimates by :math:`\\sum w_i e_i^2 / (k-p)` and uses t
quantiles on :math:`k-p` degrees of freedom (not truncated below at 1).

Heterogeneity: Cochran's Q with common-effect weights; :math:`I^2` and
:math:`H^2` from :math:`\\tau^2` and the typical within-study variance
(Higgins & Thompson, Stat Med 2002;21:1539) for random-effects models, and from
Q for the common-effect model; the Q-profile confidence interval for
:math:`\\tau^2` (Viechtbauer, Stat Med 2007;26:37); the prediction interval for
the effect in a new study, :math:`\\hat\\mu \\pm q\\sqrt{\\mathrm{se}^2 + \\tau^2}`
(Riley et al., BMJ 2011;342:d549), with the model's reference distribution.
These choices follow ``metafor::rma`` so the numbers agree (tests/reference/meta.R).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from lumbar.errors import Problem, SynthesisError
from lumbar.estimates import Estimate, frame_of, t_estimate, z_estimate
from lumbar.synthesis.effects import EffectSizes

__all__ = [
    "METHODS",
    "MetaResult",
    "Method",
    "meta_analysis",
    "meta_regression",
]

Method = Literal["FE", "DL", "REML", "PM", "ML"]
METHODS: tuple[Method, ...] = ("FE", "DL", "REML", "PM", "ML")

TOLERANCE = 1e-12
"""Convergence of the iterative tau^2 estimators (change in tau^2 between steps)."""
MAX_ITERATIONS = 1000


@dataclass(frozen=True)
class MetaResult:
    """A fitted meta-analysis or meta-regression, with its heterogeneity statistics."""

    measure: str
    method: Method
    hksj: bool
    alpha: float
    studies: tuple[str, ...]
    coefficients: tuple[Estimate, ...]
    covariance: np.ndarray = field(repr=False)
    df: int | None
    """Degrees of freedom of the t reference distribution (None: normal)."""
    tau2: float
    tau2_interval: tuple[float, float] | None
    i2: float
    h2: float
    q: float
    q_df: int
    q_p: float
    weights: np.ndarray = field(repr=False)
    """Each study's weight in percent."""
    prediction: tuple[float, float] | None
    """Prediction interval for the effect in a new study (random-effects pooling only)."""
    moderators: tuple[str, ...] = ()
    qm: float | None = None
    """Omnibus test of the moderators: chi-square (or F with ``hksj``) statistic."""
    qm_df: int | None = None
    qm_p: float | None = None
    r2: float | None = None
    """Share of tau^2 explained by the moderators (percent, meta-regression only)."""
    iterations: int = 0
    notes: tuple[str, ...] = ()
    """What the reader must know about the fit (e.g. a likelihood with several maxima)."""

    @property
    def k(self) -> int:
        return len(self.studies)

    @property
    def pooled(self) -> Estimate:
        return self.coefficients[0]

    @property
    def estimate(self) -> float:
        return self.pooled.estimate

    @property
    def se(self) -> float:
        return self.pooled.se

    @property
    def ratio(self) -> bool:
        return self.measure in ("RR", "OR")

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "method": self.method,
            "hksj": self.hksj,
            "alpha": self.alpha,
            "k": self.k,
            "coefficients": [c.row() for c in self.coefficients],
            "df": self.df,
            "tau2": self.tau2,
            "tau2_interval": list(self.tau2_interval) if self.tau2_interval else None,
            "i2": self.i2,
            "h2": self.h2,
            "q": self.q,
            "q_df": self.q_df,
            "q_p": self.q_p,
            "prediction": list(self.prediction) if self.prediction else None,
            "weights": dict(zip(self.studies, self.weights.tolist(), strict=True)),
            "moderators": list(self.moderators),
            "qm": self.qm,
            "qm_df": self.qm_df,
            "qm_p": self.qm_p,
            "r2": self.r2,
            "notes": list(self.notes),
        }

    def to_frame(self) -> pd.DataFrame:
        return frame_of(self.coefficients)

    @property
    def method_text(self) -> str:
        model = (
            "a common-effect (inverse-variance) model"
            if self.method == "FE"
            else f"a random-effects model with tau^2 estimated by {METHOD_NAMES[self.method]}"
        )
        adjustment = (
            " and the Hartung-Knapp-Sidik-Jonkman adjustment (t on k - 1 df)" if self.hksj else ""
        )
        return (
            f"{self.k} studies were pooled as {DESCRIPTION.get(self.measure, self.measure)} "
            f"with {model}{adjustment}. Heterogeneity: Cochran's Q, I^2, tau^2 with its "
            "Q-profile interval, and the prediction interval for a new study."
        )

    def __str__(self) -> str:
        pooled = self.pooled
        scale = math.exp if self.ratio else (lambda value: value)
        lines = [
            f"{self.method}{' + HKSJ' if self.hksj else ''} meta-analysis of {self.k} studies "
            f"({self.measure})",
            f"  pooled {scale(pooled.estimate):.4g} ({100 * (1 - self.alpha):g}% CI "
            f"{scale(pooled.lower):.4g} to {scale(pooled.upper):.4g}); p {pooled.p:.3g}",
            f"  tau^2 {self.tau2:.4g}; I^2 {self.i2:.1f}%; Q {self.q:.3f} on {self.q_df} df "
            f"(p {self.q_p:.3g})",
        ]
        if self.prediction:
            low, high = self.prediction
            lines.append(f"  prediction interval {scale(low):.4g} to {scale(high):.4g}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


METHOD_NAMES = {
    "DL": "DerSimonian-Laird",
    "REML": "restricted maximum likelihood",
    "PM": "Paule-Mandel",
    "ML": "maximum likelihood",
}
DESCRIPTION = {
    "MD": "mean differences",
    "SMD": "standardized mean differences (Hedges' g)",
    "RR": "log risk ratios",
    "OR": "log odds ratios",
    "RD": "risk differences",
}


def meta_analysis(
    effects: EffectSizes,
    method: Method = "REML",
    *,
    hksj: bool = False,
    alpha: float = 0.05,
) -> MetaResult:
    """Pool ``effects`` with one model (see the module docstring)."""
    return _fit(effects, np.ones((effects.k, 1)), ("intercept",), method, hksj, alpha)


def meta_regression(
    effects: EffectSizes,
    moderators: pd.DataFrame,
    method: Method = "REML",
    *,
    hksj: bool = False,
    alpha: float = 0.05,
) -> MetaResult:
    """Regress ``effects`` on ``moderators`` (one row per study; text columns become
    indicator columns against their first level). R^2 compares tau^2 with the model
    without moderators."""
    if len(moderators) != effects.k:
        raise SynthesisError(
            "cannot fit the meta-regression",
            [Problem("moderators", f"need one row per study ({effects.k})", len(moderators))],
        )
    design = pd.get_dummies(moderators.reset_index(drop=True), drop_first=True, dtype=float)
    if design.isna().any().any():
        missing = [name for name in design.columns if design[name].isna().any()]
        raise SynthesisError(
            "cannot fit the meta-regression",
            [Problem(f"moderator {missing[0]!r}", "has missing values", hint="drop those studies")],
        )
    names = ("intercept", *(str(name) for name in design.columns))
    matrix = np.column_stack([np.ones(effects.k), design.to_numpy(dtype=float)])
    result = _fit(effects, matrix, names, method, hksj, alpha)
    if method == "FE":
        return result
    base = _fit(effects, np.ones((effects.k, 1)), ("intercept",), method, hksj, alpha)
    r2 = 0.0 if base.tau2 <= 0 else max(0.0, 100 * (base.tau2 - result.tau2) / base.tau2)
    return replace(result, r2=r2)


# ---------------------------------------------------------------------- the fit


def _fit(
    effects: EffectSizes,
    x: np.ndarray,
    names: Sequence[str],
    method: Method,
    hksj: bool,
    alpha: float,
) -> MetaResult:
    _check(effects, x, method, alpha)
    y, v = effects.yi, effects.vi
    k, p = x.shape
    notes: tuple[str, ...] = ()
    if method in ("ML", "REML"):
        tau2, iterations, notes = _likelihood_tau2(y, v, x, restricted=method == "REML")
    else:
        tau2, iterations = _tau2(y, v, x, method)
    w = 1 / (v + tau2)
    xtwx_inv = np.linalg.inv(x.T @ (w[:, None] * x))
    b = xtwx_inv @ (x.T @ (w * y))
    covariance = xtwx_inv
    df: int | None = None
    if hksj:
        residual = y - x @ b
        covariance = covariance * float(np.sum(w * residual**2) / (k - p))
        df = k - p
    se = np.sqrt(np.diag(covariance))
    coefficients = tuple(
        z_estimate(name, float(b[index]), float(se[index]), alpha)
        if df is None
        else t_estimate(name, float(b[index]), float(se[index]), df, alpha)
        for index, name in enumerate(names)
    )
    quantile = float(
        stats.norm.ppf(1 - alpha / 2) if df is None else stats.t.ppf(1 - alpha / 2, df)
    )
    fixed = 1 / v
    q = _generalized_q(y, v, x, 0.0)
    q_df = k - p
    q_p = float(stats.chi2.sf(q, q_df)) if q_df > 0 else math.nan
    typical = _typical_variance(fixed, x)
    if method == "FE":
        i2 = max(0.0, 100 * (q - q_df) / q) if q > 0 and q_df > 0 else 0.0
        h2 = q / q_df if q_df > 0 else math.nan
        interval = None
    else:
        i2 = 100 * tau2 / (tau2 + typical)
        h2 = (tau2 + typical) / typical
        interval = _q_profile(y, v, x, alpha) if q_df > 0 else None
    prediction = None
    if p == 1 and method != "FE":  # a common-effect model has no spread of true effects
        spread = quantile * math.sqrt(float(se[0]) ** 2 + tau2)
        prediction = (float(b[0]) - spread, float(b[0]) + spread)
    qm = qm_df = qm_p = None
    if p > 1:
        slopes = b[1:]
        inner = np.linalg.inv(covariance[1:, 1:])
        qm = float(slopes @ inner @ slopes)
        qm_df = p - 1
        if df is None:
            qm_p = float(stats.chi2.sf(qm, qm_df))
        else:
            qm = qm / qm_df
            qm_p = float(stats.f.sf(qm, qm_df, df))
    return MetaResult(
        measure=effects.measure,
        method=method,
        hksj=hksj,
        alpha=alpha,
        studies=effects.studies,
        coefficients=coefficients,
        covariance=covariance,
        df=df,
        tau2=float(tau2),
        tau2_interval=interval,
        i2=float(i2),
        h2=float(h2),
        q=float(q),
        q_df=q_df,
        q_p=q_p,
        weights=100 * w / w.sum(),
        prediction=prediction,
        moderators=tuple(names[1:]),
        qm=qm,
        qm_df=qm_df,
        qm_p=qm_p,
        iterations=iterations,
        notes=notes,
    )


def _check(effects: EffectSizes, x: np.ndarray, method: str, alpha: float) -> None:
    problems = []
    if method not in METHODS:
        problems.append(Problem("method", f"must be one of {', '.join(METHODS)}", method))
    if not 0 < alpha < 1:
        problems.append(Problem("alpha", "must be between 0 and 1, e.g. 0.05", alpha))
    k, p = x.shape
    if k < p + 1:
        problems.append(
            Problem(
                "studies",
                f"at least {p + 1} are needed for this model",
                k,
                "add studies or drop moderators",
            )
        )
    elif np.linalg.matrix_rank(x) < p:
        problems.append(
            Problem("moderators", "are collinear (one is a combination of others)", hint="drop one")
        )
    if problems:
        raise SynthesisError("cannot fit the model", problems)


def _residual_projection(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P = W - W X (X'WX)^-1 X'W: residuals' weighted projection."""
    wx = w[:, None] * x
    return np.asarray(np.diag(w) - wx @ np.linalg.solve(x.T @ wx, wx.T))


def _generalized_q(y: np.ndarray, v: np.ndarray, x: np.ndarray, tau2: float) -> float:
    return float(y @ _residual_projection(1 / (v + tau2), x) @ y)


def _typical_variance(fixed: np.ndarray, x: np.ndarray) -> float:
    """(k - p) / tr(P) with common-effect weights: the typical within-study variance."""
    k, p = x.shape
    return float((k - p) / np.trace(_residual_projection(fixed, x)))


def _tau2(y: np.ndarray, v: np.ndarray, x: np.ndarray, method: Method) -> tuple[float, int]:
    k, p = x.shape
    if method == "FE":
        return 0.0, 0
    if method == "DL":
        fixed = _residual_projection(1 / v, x)
        q = float(y @ fixed @ y)
        return max(0.0, (q - (k - p)) / float(np.trace(fixed))), 0
    if method == "PM":
        target = k - p

        def excess(tau2: float) -> float:
            return float(_generalized_q(y, v, x, tau2) - target)

        if excess(0.0) <= 0:
            return 0.0, 0
        upper = max(1.0, float(np.var(y)) * 10)
        while excess(upper) > 0:
            upper *= 10
        root = optimize.brentq(excess, 0.0, upper, xtol=1e-15, rtol=1e-15, maxiter=500)
        return float(root), 0
    return _fisher_scoring(y, v, x, restricted=method == "REML")


def _fisher_scoring(
    y: np.ndarray,
    v: np.ndarray,
    x: np.ndarray,
    *,
    restricted: bool,
    start: float | None = None,
) -> tuple[float, int]:
    """ML or REML tau^2 by Fisher scoring with step halving, kept at or above 0, from
    ``start`` (default: the DerSimonian-Laird estimate)."""
    tau2 = max(0.0, _tau2(y, v, x, "DL")[0] if start is None else start)
    for iteration in range(1, MAX_ITERATIONS + 1):
        w = 1 / (v + tau2)
        projection = _residual_projection(w, x)
        residual = projection @ y
        if restricted:
            step = float((residual @ residual - np.trace(projection)) / np.sum(projection**2))
        else:
            step = float((residual @ residual - np.sum(w)) / np.sum(w**2))
        new = tau2 + step
        while new < 0:
            step /= 2
            new = tau2 + step
            if abs(step) < TOLERANCE:
                new = 0.0
                break
        if abs(new - tau2) < TOLERANCE:
            return new, iteration
        tau2 = new
    raise SynthesisError(
        "the tau^2 estimate did not converge",
        [
            Problem(
                "method",
                f"{'REML' if restricted else 'ML'} did not converge in {MAX_ITERATIONS} steps",
                hint="try method PM or DL",
            )
        ],
    )


PROFILE_POINTS = 400
"""Grid points (0 and a geometric sequence up to tau^2_max) profiling the likelihood."""
LIKELIHOOD_TOLERANCE = 1e-8
"""A log-likelihood higher by less than this is not a better maximum (rounding)."""


def log_likelihood(
    y: np.ndarray, v: np.ndarray, x: np.ndarray, tau2: float, *, restricted: bool
) -> float:
    """The (restricted) log-likelihood of tau^2 in the random-effects model, with the
    coefficients at their weighted least-squares values (Viechtbauer 2005, eq. 5 and 7):
    ML :math:`-\\frac12[k\\log 2\\pi + \\sum\\log(v_i+\\tau^2) + \\sum w_i e_i^2]`; REML
    adds :math:`\\frac12 p\\log 2\\pi + \\frac12\\log|X'X| - \\frac12\\log|X'WX|`. These
    are ``logLik()`` of ``metafor::rma`` (``method="ML"`` / ``"REML"``)."""
    return float(profile_likelihood(y, v, x, np.array([tau2]), restricted=restricted)[0])


def profile_likelihood(
    y: np.ndarray, v: np.ndarray, x: np.ndarray, tau2: np.ndarray, *, restricted: bool
) -> np.ndarray:
    """:func:`log_likelihood` at every value of ``tau2`` at once."""
    k, p = x.shape
    variance = v[None, :] + tau2[:, None]
    w = 1 / variance
    xtwx = np.einsum("gi,ia,ib->gab", w, x, x)
    xtwy = np.einsum("gi,ia,i->ga", w, x, y)
    b = np.linalg.solve(xtwx, xtwy[:, :, None])[:, :, 0]
    residual = y[None, :] - b @ x.T
    value = -0.5 * (
        k * math.log(2 * math.pi)
        + np.sum(np.log(variance), axis=1)
        + np.sum(w * residual**2, axis=1)
    )
    if restricted:
        value += 0.5 * p * math.log(2 * math.pi) + 0.5 * float(np.linalg.slogdet(x.T @ x)[1])
        value -= 0.5 * np.linalg.slogdet(xtwx)[1]
    return np.asarray(value, dtype=float)


def profile_grid(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """0 and a geometric grid up to tau^2_max = 10 (range of y)^2 + max v (see the
    module docstring: no maximum lies beyond)."""
    top = 10 * float(np.ptp(y)) ** 2 + float(np.max(v))
    return np.concatenate([[0.0], np.geomspace(top * 1e-9, top, PROFILE_POINTS - 1)])


def _likelihood_tau2(
    y: np.ndarray, v: np.ndarray, x: np.ndarray, *, restricted: bool
) -> tuple[float, int, tuple[str, ...]]:
    """ML or REML tau^2, the global maximum on [0, inf): Fisher scoring from the DL
    estimate, checked against tau^2 = 0 and the profile (see the module docstring)."""
    try:
        found: float | None
        found, iterations = _fisher_scoring(y, v, x, restricted=restricted)
    except SynthesisError:
        found, iterations = None, MAX_ITERATIONS
    tau2, notes = _global_maximum(y, v, x, found, restricted=restricted)
    if found is None:
        notes = (
            f"Fisher scoring did not converge in {MAX_ITERATIONS} steps; tau^2 is the "
            "highest point of the profile likelihood, refined.",
            *notes,
        )
    return tau2, iterations, notes


def _global_maximum(
    y: np.ndarray, v: np.ndarray, x: np.ndarray, found: float | None, *, restricted: bool
) -> tuple[float, tuple[str, ...]]:
    """The highest of: Fisher scoring's answer (``found``; None if it did not converge),
    the boundary 0, and the best point of the profile grid, refined by Fisher scoring
    from there and by Brent's method between its neighbours; with a note when the
    profile has more than one local maximum."""

    def loglik(tau2: float) -> float:
        return log_likelihood(y, v, x, tau2, restricted=restricted)

    grid = profile_grid(y, v)
    profile = profile_likelihood(y, v, x, grid, restricted=restricted)
    best = int(np.argmax(profile))
    candidates = [] if found is None else [found]
    candidates.append(0.0)
    if found is None or float(profile[best]) > loglik(found) + LIKELIHOOD_TOLERANCE:
        low, high = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, len(grid) - 1)])
        candidates.append(float(grid[best]))
        with contextlib.suppress(SynthesisError):
            candidates.append(
                _fisher_scoring(y, v, x, restricted=restricted, start=float(grid[best]))[0]
            )
        if high > low:
            refined = optimize.minimize_scalar(
                lambda tau2: -loglik(float(tau2)),
                bounds=(low, high),
                method="bounded",
                options={"xatol": TOLERANCE * max(1.0, high)},
            )
            candidates.append(float(refined.x))
    # A candidate must beat the ones before by more than rounding, so an answer that
    # was already right stays exactly as it was.
    chosen, highest = candidates[0], loglik(candidates[0])
    for candidate in candidates[1:]:
        value = loglik(candidate)
        if value > highest + LIKELIHOOD_TOLERANCE:
            chosen, highest = candidate, value
    peaks = _local_maxima(grid, profile)
    notes: tuple[str, ...] = ()
    if len(peaks) > 1:
        kind = "restricted log-likelihood" if restricted else "log-likelihood"
        where = ", ".join(f"near tau^2 = {t:.4g} ({value:.4f})" for t, value in peaks)
        notes = (
            f"The {kind} of tau^2 has {len(peaks)} local maxima ({where}); the highest, "
            f"tau^2 = {chosen:.4g}, is reported. Look at the profile, and compare with "
            "method PM or DL.",
        )
    return chosen, notes


def _local_maxima(grid: np.ndarray, profile: np.ndarray) -> list[tuple[float, float]]:
    """The grid points higher than their neighbours (the boundary 0 counts when the
    profile falls from it), with their log-likelihoods; plateaus count once."""
    peaks = []
    for index in range(len(grid)):
        left = profile[index - 1] if index > 0 else -math.inf
        right = profile[index + 1] if index + 1 < len(grid) else -math.inf
        inside = index + 1 < len(grid) or index == 0  # not the grid's cut-off end
        if inside and profile[index] > left + LIKELIHOOD_TOLERANCE and profile[index] >= right:
            peaks.append((float(grid[index]), float(profile[index])))
    return peaks


def _q_profile(y: np.ndarray, v: np.ndarray, x: np.ndarray, alpha: float) -> tuple[float, float]:
    """The Q-profile interval for tau^2: where the generalized Q meets the chi-square
    quantiles on k - p degrees of freedom (0 when Q at tau^2 = 0 is already below)."""
    k, p = x.shape
    df = k - p

    def bound(quantile: float) -> float:
        def excess(tau2: float) -> float:
            return _generalized_q(y, v, x, tau2) - quantile

        if excess(0.0) <= 0:
            return 0.0
        upper = max(1.0, float(np.var(y)) * 10)
        while excess(upper) > 0:
            upper *= 10
        return float(optimize.brentq(excess, 0.0, upper, xtol=1e-15, rtol=1e-15, maxiter=500))

    lower = bound(float(stats.chi2.ppf(1 - alpha / 2, df)))
    upper = bound(float(stats.chi2.ppf(alpha / 2, df)))
    return lower, upper
