"""ANCOVA at each visit: ``outcome ~ arm + baseline + covariates``, by ordinary least squares.

For each post-baseline visit, the participants observed at that visit; each
arm is compared with the reference arm. Standard errors are the classical OLS
ones, or HC3 heteroscedasticity-consistent ones (MacKinnon & White 1985) with
``robust=True``; either way tests and intervals use the t distribution on the
residual degrees of freedom (as R's ``lm`` with ``lmtest::coeftest`` and
``sandwich::vcovHC(type = "HC3")``).

Example, with ``data`` a :class:`~lumbar.analysis.TrialData`::

    result = ancova(data)
    result.to_frame()[["visit", "arm", "estimate", "lower", "upper"]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lumbar.analysis.data import TrialData
from lumbar.analysis.design import ancova_design, dependence_problems
from lumbar.errors import AnalysisError, Problem
from lumbar.estimates import Estimate, frame_of, t_estimate

__all__ = ["AncovaResult", "OlsColumns", "ancova", "ols", "ols_columns"]


@dataclass(frozen=True)
class OlsFit:
    """An ordinary least-squares fit: coefficients and their covariance."""

    coefficients: np.ndarray
    covariance: np.ndarray
    df: int
    sigma: float


def ols(matrix: np.ndarray, y: np.ndarray, *, robust: bool = False) -> OlsFit:
    """Least squares with classical or HC3 covariance. Refuses a rank-deficient design."""
    q, r = _checked_qr(matrix)
    coefficients = np.linalg.solve(r, q.T @ y)
    residuals = y - matrix @ coefficients
    df = matrix.shape[0] - matrix.shape[1]
    sigma2 = float(residuals @ residuals) / df
    r_inverse = np.linalg.inv(r)
    bread = r_inverse @ r_inverse.T  # (X'X)^-1
    if robust:
        leverage = np.einsum("ij,ij->i", q, q)
        weights = (residuals / (1.0 - leverage)) ** 2
        meat = (matrix * weights[:, None]).T @ matrix
        covariance = bread @ meat @ bread
    else:
        covariance = sigma2 * bread
    return OlsFit(coefficients, covariance, df, float(np.sqrt(sigma2)))


@dataclass(frozen=True)
class OlsColumns:
    """Least squares of many outcome columns on one design (classical covariance)."""

    coefficients: np.ndarray
    """(parameters, outcomes)."""
    bread: np.ndarray
    """(X'X)^-1: the covariance of column k is ``sigma2[k] * bread``."""
    sigma2: np.ndarray
    df: int


def ols_columns(matrix: np.ndarray, outcomes: np.ndarray) -> OlsColumns:
    """One QR for every column of ``outcomes``: what a loop of :func:`ols` gives, at once."""
    q, r = _checked_qr(matrix)
    coefficients = np.linalg.solve(r, q.T @ outcomes)
    residuals = outcomes - matrix @ coefficients
    df = matrix.shape[0] - matrix.shape[1]
    r_inverse = np.linalg.inv(r)
    return OlsColumns(
        coefficients, r_inverse @ r_inverse.T, np.einsum("ij,ij->j", residuals, residuals) / df, df
    )


def _checked_qr(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, p = matrix.shape
    if np.linalg.matrix_rank(matrix) < p:
        raise AnalysisError(
            "the model cannot be estimated",
            [
                Problem(
                    "design",
                    "its columns are not linearly independent (an arm or level without data, "
                    "or a covariate that is constant)",
                    hint="drop the covariate, or check the data at this visit",
                )
            ],
        )
    if n <= p:
        raise AnalysisError(
            "too few observations",
            [Problem("rows", f"{n} rows for {p} parameters", hint="drop covariates or visits")],
        )
    q, r = np.linalg.qr(matrix)
    return q, r


@dataclass(frozen=True)
class AncovaResult:
    """Each arm versus the reference at each visit, and LS means, by ANCOVA."""

    outcome: str
    reference: str
    robust: bool
    alpha: float
    contrasts: tuple[Estimate, ...]
    lsmeans: tuple[Estimate, ...]
    n: dict[str, dict[str, int]] = field(repr=False)
    """Participants analysed by visit and arm."""

    def to_frame(self) -> pd.DataFrame:
        """The contrasts (arm minus reference), one row per visit and arm."""
        return frame_of(self.contrasts)

    def lsmeans_frame(self) -> pd.DataFrame:
        return frame_of(self.lsmeans)

    def contrast(self, visit: str, arm: str) -> Estimate:
        for estimate in self.contrasts:
            if estimate.visit == visit and estimate.arm == arm:
                return estimate
        raise KeyError((visit, arm))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "ancova",
            "outcome": self.outcome,
            "reference": self.reference,
            "robust": self.robust,
            "alpha": self.alpha,
            "contrasts": [estimate.row() for estimate in self.contrasts],
            "lsmeans": [estimate.row() for estimate in self.lsmeans],
            "n": self.n,
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        errors = "HC3 heteroscedasticity-consistent" if self.robust else "ordinary least-squares"
        return (
            f"At each visit, {self.outcome} was compared between arms by analysis of covariance "
            f"adjusted for the baseline value and pre-specified covariates, with {errors} "
            f"standard errors; each arm is compared with {self.reference} "
            f"({100 * (1 - self.alpha):g}% confidence intervals, two-sided t tests)."
        )

    def __str__(self) -> str:
        lines = [f"ANCOVA of {self.outcome}: each arm minus {self.reference}"]
        for estimate in self.contrasts:
            lines.append(
                f"  {estimate.visit:>10}  {estimate.arm:<14} {estimate.estimate:8.3f} "
                f"({estimate.lower:.3f} to {estimate.upper:.3f})  p={estimate.p:.4f}"
            )
        return "\n".join(lines)


def ancova(data: TrialData, *, robust: bool = False, alpha: float = 0.05) -> AncovaResult:
    """Fit the ANCOVA at every visit of ``data``."""
    contrasts: list[Estimate] = []
    lsmeans: list[Estimate] = []
    counts: dict[str, dict[str, int]] = {}
    for visit in data.visits:
        rows = data.at_visit(visit)
        design = ancova_design(data, rows)
        dependent = dependence_problems(design, visit)
        if dependent:
            raise AnalysisError(
                f"ANCOVA at visit {visit}: the model cannot be estimated", dependent
            )
        try:
            fit = ols(design.matrix, rows["y"].to_numpy(dtype=float), robust=robust)
        except AnalysisError as error:
            raise AnalysisError(
                f"ANCOVA at visit {visit}: {error.summary}", error.problems
            ) from None
        arm_counts = rows["arm"].astype(str).value_counts()
        counts[visit] = {arm: int(arm_counts.get(arm, 0)) for arm in data.arms}
        for arm in data.arms:
            row = design.lsmean_row(arm, None, data.reference)
            lsmeans.append(
                _linear(
                    row,
                    fit,
                    label=f"LS mean {arm}",
                    visit=visit,
                    arm=arm,
                    n=counts[visit][arm],
                    alpha=alpha,
                )
            )
        for arm in data.arms[1:]:
            row = design.contrast_row(arm, None)
            contrasts.append(
                _linear(
                    row,
                    fit,
                    label=f"{arm} - {data.reference}",
                    visit=visit,
                    arm=arm,
                    n=counts[visit][arm],
                    alpha=alpha,
                )
            )
    return AncovaResult(
        data.outcome, data.reference, robust, alpha, tuple(contrasts), tuple(lsmeans), counts
    )


def _linear(
    row: np.ndarray, fit: OlsFit, *, label: str, visit: str, arm: str, n: int, alpha: float
) -> Estimate:
    estimate = float(row @ fit.coefficients)
    se = float(np.sqrt(row @ fit.covariance @ row))
    return t_estimate(label, estimate, se, float(fit.df), alpha, visit=visit, arm=arm, n=n)
