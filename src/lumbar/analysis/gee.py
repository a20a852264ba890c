"""Generalised estimating equations, as the reference trial's protocol specified.

The reference trial planned "generalized estimating equations, accounting for
participant correlation and adjusted for baseline value, age, and sex"
(Cherkin et al., Trials 2009;10:96). lumbar fits, with statsmodels' GEE
(Liang & Zeger 1986), a Gaussian model with identity link and the mean

    visit + arm:visit + baseline + covariates

(one baseline slope, as the protocol's wording suggests), an exchangeable
working correlation, and robust (sandwich) standard errors; each arm is
compared with the reference at each visit with Wald z intervals. The same
model in R: ``geepack::geeglm(y ~ visit + visit:arm + baseline + ..., id,
corstr = "exchangeable")``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm

from lumbar.analysis.data import TrialData
from lumbar.analysis.design import Design, dependence_problems, gee_design
from lumbar.errors import AnalysisError, ConvergenceError, Problem
from lumbar.estimates import Estimate, frame_of, z_estimate

__all__ = ["GeeResult", "gee"]


@dataclass(frozen=True)
class GeeResult:
    outcome: str
    reference: str
    alpha: float
    working_correlation: float
    scale: float
    contrasts: tuple[Estimate, ...]
    participants: int
    observations: int

    def to_frame(self) -> pd.DataFrame:
        return frame_of(self.contrasts)

    def contrast(self, visit: str, arm: str) -> Estimate:
        for estimate in self.contrasts:
            if estimate.visit == visit and estimate.arm == arm:
                return estimate
        raise KeyError((visit, arm))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "gee",
            "outcome": self.outcome,
            "reference": self.reference,
            "alpha": self.alpha,
            "working_correlation": "exchangeable",
            "correlation": self.working_correlation,
            "scale": self.scale,
            "contrasts": [estimate.row() for estimate in self.contrasts],
            "participants": self.participants,
            "observations": self.observations,
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        return (
            f"As the trial protocol specified, {self.outcome} was also analysed with generalised "
            "estimating equations (Gaussian, identity link, exchangeable working correlation, "
            "robust standard errors) with visit, arm by visit, the baseline value and the "
            f"pre-specified covariates; each arm was compared with {self.reference} at each visit."
        )

    def __str__(self) -> str:
        lines = [f"GEE of {self.outcome} (exchangeable, rho = {self.working_correlation:.3f})"]
        for estimate in self.contrasts:
            lines.append(
                f"  {estimate.visit:>10}  {estimate.arm:<14} {estimate.estimate:8.3f} "
                f"({estimate.lower:.3f} to {estimate.upper:.3f})  p={estimate.p:.4f}"
            )
        return "\n".join(lines)


def gee(data: TrialData, *, alpha: float = 0.05, max_iterations: int = 100) -> GeeResult:
    """Fit the protocol's GEE to ``data``."""
    rows = data.complete()
    design: Design = gee_design(data, rows)
    dependent = dependence_problems(design)
    if dependent:
        raise AnalysisError("the GEE cannot be estimated", dependent)
    groups = pd.factorize(rows["participant"])[0]
    model = sm.GEE(
        rows["y"].to_numpy(dtype=float),
        design.matrix,
        groups=groups,
        family=sm.families.Gaussian(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = model.fit(maxiter=max_iterations, cov_type="robust", ddof_scale=0)
        except (ValueError, np.linalg.LinAlgError) as error:
            raise ConvergenceError(
                "the GEE could not be fitted",
                [
                    Problem(
                        "gee", str(error), hint="check the outcome varies within arms and visits"
                    )
                ],
            ) from None
    unconverged = [w for w in caught if "converge" in str(w.message).lower()]
    if unconverged:
        raise ConvergenceError(
            "the GEE did not converge",
            [
                Problem(
                    "gee",
                    str(unconverged[0].message),
                    hint="check the data for visits with few rows",
                )
            ],
        )
    params = np.asarray(fit.params)
    covariance = np.asarray(fit.cov_robust)
    contrasts = []
    counts = rows.groupby(["visit", "arm"], observed=False).size()
    for visit in data.visits:
        for arm in data.arms[1:]:
            row = design.contrast_row(arm, visit)
            estimate = float(row @ params)
            se = float(np.sqrt(row @ covariance @ row))
            contrasts.append(
                z_estimate(
                    f"{arm} - {data.reference}",
                    estimate,
                    se,
                    alpha,
                    visit=visit,
                    arm=arm,
                    n=int(counts.get((visit, arm), 0)),
                )
            )
    return GeeResult(
        outcome=data.outcome,
        reference=data.reference,
        alpha=alpha,
        working_correlation=float(model.cov_struct.dep_params),
        scale=float(fit.scale),
        contrasts=tuple(contrasts),
        participants=int(rows["participant"].nunique()),
        observations=len(rows),
    )
