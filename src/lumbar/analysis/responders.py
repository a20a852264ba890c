"""Responder analyses: how many participants improved, under every definition, side by side.

Readers of the reference trial argued over what counts as improving: a 2-point
change on the Roland-Morris scale is inside its measurement error (SEM about
3.7 points), the minimal important change is 5 points or 30% (Ostelo 2008), and
reliable change (Jacobson & Truax 1991) asks that the change exceed what
measurement error would produce 95% of the time. This module reports each
definition with the same data, so the debate is visible.

For each participant with the outcome at a visit, the improvement is
``baseline - follow-up`` when higher scores are worse (the other way round
otherwise). Under a definition with threshold c:

- *points*: improved if improvement >= c, deteriorated if improvement <= -c;
- *percent*: improved if improvement >= c% of the baseline score
  (deteriorated if worse by c% of baseline); a baseline of 0 cannot improve;
- *reliable change*: RCI = improvement / S_diff with S_diff = sqrt(2) SEM and
  SEM = SD sqrt(1 - r); improved if RCI >= 1.96, deteriorated if <= -1.96. SD is
  the reference SD when given, otherwise the SD of the baseline scores analysed.

Each arm is compared with the reference arm by the risk difference (Wald
interval), the risk ratio (log interval, Katz et al. 1978; 0.5 added to every
cell when one is empty) and the number needed to treat, 1/RD, with the
interval from inverting the RD interval (Altman, BMJ 1998;317:1309): when the
RD interval includes 0, the NNT interval runs from NNT-benefit through
infinity to NNT-harm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from lumbar.analysis.data import TrialData
from lumbar.errors import AnalysisError, Problem
from lumbar.instruments import MeasurementProperties

__all__ = [
    "RELIABLE_CHANGE_Z",
    "Definition",
    "ResponderResult",
    "definitions_from",
    "nnt_interval",
    "responders",
]

RELIABLE_CHANGE_Z = 1.96
"""Jacobson & Truax, J Consult Clin Psychol 1991;59:12: |RCI| > 1.96 is reliable at 95%."""

Kind = Literal["points", "percent", "reliable"]


@dataclass(frozen=True)
class Definition:
    """One definition of improvement."""

    name: str
    label: str
    kind: Kind
    threshold: float
    source: str = ""
    reliability: float | None = None
    reference_sd: float | None = None


def definitions_from(properties: MeasurementProperties) -> tuple[Definition, ...]:
    """Every definition the instrument's (or protocol's) thresholds allow, in a fixed order."""
    found: list[Definition] = []
    if properties.minimal_important_percent is not None:
        value = properties.minimal_important_percent
        found.append(
            Definition(
                "percent", f">= {value.value:g}% improvement", "percent", value.value, value.source
            )
        )
    if properties.minimal_important_change is not None:
        value = properties.minimal_important_change
        found.append(
            Definition(
                "mic",
                f">= {value.value:g} points (minimal important change)",
                "points",
                value.value,
                value.source,
            )
        )
    if properties.small_change is not None:
        value = properties.small_change
        found.append(
            Definition("small", f">= {value.value:g} points", "points", value.value, value.source)
        )
    if properties.reliability is not None:
        value = properties.reliability
        sd = properties.reference_sd.value if properties.reference_sd is not None else None
        found.append(
            Definition(
                "reliable",
                "reliable change (RCI >= 1.96)",
                "reliable",
                RELIABLE_CHANGE_Z,
                value.source,
                reliability=value.value,
                reference_sd=sd,
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class Comparison:
    """One arm against the reference under one definition at one visit."""

    definition: str
    visit: str
    arm: str
    risk_difference: float
    rd_lower: float
    rd_upper: float
    risk_ratio: float
    rr_lower: float
    rr_upper: float
    nnt: float
    nnt_interval: str


@dataclass(frozen=True)
class ResponderResult:
    """Counts per arm under every definition, comparisons, and the cumulative curve."""

    outcome: str
    reference: str
    direction: str
    alpha: float
    missing: str
    definitions: tuple[Definition, ...]
    counts: pd.DataFrame = field(repr=False)
    """definition, visit, arm, n, improved, unchanged, deteriorated, share_improved."""
    comparisons: tuple[Comparison, ...]
    curve: pd.DataFrame = field(repr=False)
    """visit, arm, threshold, share improving by at least the threshold (points)."""
    sem_used: dict[str, float]

    def to_frame(self) -> pd.DataFrame:
        return self.counts.copy()

    def comparisons_frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(comparison) for comparison in self.comparisons])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "responders",
            "outcome": self.outcome,
            "reference": self.reference,
            "direction": self.direction,
            "missing": self.missing,
            "definitions": [vars(definition) for definition in self.definitions],
            "counts": self.counts.to_dict(orient="records"),
            "comparisons": [vars(comparison) for comparison in self.comparisons],
            "sem_used": self.sem_used,
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        names = "; ".join(definition.label for definition in self.definitions)
        return (
            f"Participants were classed as improved, unchanged or deteriorated in {self.outcome} "
            f"under each definition ({names}). Each arm was compared with {self.reference} by "
            "the risk difference (Wald interval), the risk ratio (log interval) and the number "
            "needed to treat (Altman's interval). "
            + (
                "Participants without the outcome were counted as not improved."
                if self.missing == "non_responder"
                else "Participants without the outcome at a visit were left out at that visit."
            )
        )

    def __str__(self) -> str:
        lines = [f"Responders in {self.outcome} (vs {self.reference})"]
        for row in self.counts.to_dict(orient="records"):
            lines.append(
                f"  {row['visit']:>10} {row['definition']:<9} {row['arm']:<14} "
                f"{row['improved']}/{row['n']} improved ({100 * float(row['share_improved']):.1f}%)"
            )
        return "\n".join(lines)


def responders(
    data: TrialData,
    definitions: Sequence[Definition],
    *,
    direction: Literal["higher_is_worse", "higher_is_better"] = "higher_is_worse",
    alpha: float = 0.05,
    missing: Literal["exclude", "non_responder"] = "exclude",
    curve_step: float = 0.5,
) -> ResponderResult:
    """Classify every participant at every visit under each definition; compare the arms."""
    if data.baseline is None:
        raise AnalysisError(
            "responder analysis needs a baseline",
            [Problem("baseline", "is required to measure change", hint="name the baseline column")],
        )
    if not definitions:
        raise AnalysisError(
            "no responder definition",
            [
                Problem(
                    "definitions",
                    "at least one is needed",
                    hint="give thresholds for the instrument",
                )
            ],
        )
    frame = data.frame.dropna(subset=["baseline"])
    sign = 1.0 if direction == "higher_is_worse" else -1.0
    baseline_sd = float(frame.groupby("participant")["baseline"].first().std(ddof=1))
    sems: dict[str, float] = {}
    count_rows: list[dict[str, Any]] = []
    comparisons: list[Comparison] = []
    curve_rows: list[dict[str, Any]] = []
    for visit in data.visits:
        rows = frame[frame["visit"] == visit]
        improvement = sign * (rows["baseline"] - rows["y"]).to_numpy(dtype=float)
        baseline = rows["baseline"].to_numpy(dtype=float)
        arm = rows["arm"].astype(str).to_numpy()
        observed = ~np.isnan(improvement)
        for definition in definitions:
            state = _classify(definition, improvement, baseline, baseline_sd, sems)
            for arm_name in data.arms:
                in_arm = arm == arm_name
                counted = in_arm if missing == "non_responder" else in_arm & observed
                n = int(counted.sum())
                improved = int((state[counted] == 1).sum())
                deteriorated = int((state[counted] == -1).sum())
                count_rows.append(
                    {
                        "definition": definition.name,
                        "visit": visit,
                        "arm": arm_name,
                        "n": n,
                        "improved": improved,
                        "unchanged": n - improved - deteriorated,
                        "deteriorated": deteriorated,
                        "share_improved": improved / n if n else math.nan,
                    }
                )
            reference = count_rows[-len(data.arms)]
            for row in count_rows[-len(data.arms) + 1 :]:
                comparisons.append(_compare(definition.name, visit, row, reference, alpha))
        curve_rows.extend(_curve(visit, improvement, observed, arm, data.arms, curve_step))
    return ResponderResult(
        outcome=data.outcome,
        reference=data.reference,
        direction=direction,
        alpha=alpha,
        missing=missing,
        definitions=tuple(definitions),
        counts=pd.DataFrame(count_rows),
        comparisons=tuple(comparisons),
        curve=pd.DataFrame(curve_rows),
        sem_used=sems,
    )


def _classify(
    definition: Definition,
    improvement: np.ndarray,
    baseline: np.ndarray,
    baseline_sd: float,
    sems: dict[str, float],
) -> np.ndarray:
    """+1 improved, -1 deteriorated, 0 unchanged (missing counts as unchanged)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if definition.kind == "points":
            score = improvement / definition.threshold
        elif definition.kind == "percent":
            score = np.where(
                baseline > 0, 100.0 * improvement / baseline / definition.threshold, 0.0
            )
        else:
            assert definition.reliability is not None
            sd = definition.reference_sd if definition.reference_sd is not None else baseline_sd
            sem = sd * math.sqrt(1 - definition.reliability)
            sems[definition.name] = sem
            score = improvement / (math.sqrt(2) * sem) / definition.threshold
    state = np.zeros(len(improvement), dtype=int)
    state[np.nan_to_num(score, nan=0.0) >= 1] = 1
    state[np.nan_to_num(score, nan=0.0) <= -1] = -1
    return state


def _compare(
    definition: str, visit: str, arm: dict[str, Any], reference: dict[str, Any], alpha: float
) -> Comparison:
    z = float(stats.norm.ppf(1 - alpha / 2))
    a, n1 = arm["improved"], arm["n"]
    c, n0 = reference["improved"], reference["n"]
    p1, p0 = a / n1, c / n0
    rd = p1 - p0
    rd_se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    rd_lower, rd_upper = rd - z * rd_se, rd + z * rd_se
    if a == 0 or c == 0 or a == n1 or c == n0:
        a_, c_, n1_, n0_ = a + 0.5, c + 0.5, n1 + 1, n0 + 1  # Haldane-Anscombe correction
    else:
        a_, c_, n1_, n0_ = a, c, n1, n0
    rr = (a_ / n1_) / (c_ / n0_)
    log_se = math.sqrt(1 / a_ - 1 / n1_ + 1 / c_ - 1 / n0_)
    nnt = 1 / rd if rd != 0 else math.inf
    return Comparison(
        definition,
        visit,
        arm["arm"],
        rd,
        rd_lower,
        rd_upper,
        rr,
        rr * math.exp(-z * log_se),
        rr * math.exp(z * log_se),
        nnt,
        nnt_interval(rd_lower, rd_upper),
    )


def nnt_interval(rd_lower: float, rd_upper: float) -> str:
    """Altman's NNT interval from a risk-difference interval, in words.

    >>> nnt_interval(0.1, 0.25)
    'NNT (benefit) 4.0 to 10.0'
    >>> nnt_interval(-0.05, 0.2)
    'NNT (benefit) 5.0 to infinity to NNT (harm) 20.0'
    """
    if rd_lower > 0:
        return f"NNT (benefit) {1 / rd_upper:.1f} to {1 / rd_lower:.1f}"
    if rd_upper < 0:
        return f"NNT (harm) {1 / -rd_lower:.1f} to {1 / -rd_upper:.1f}"
    benefit = f"{1 / rd_upper:.1f}" if rd_upper > 0 else "infinity"
    harm = f"{1 / -rd_lower:.1f}" if rd_lower < 0 else "infinity"
    return f"NNT (benefit) {benefit} to infinity to NNT (harm) {harm}"


def _curve(
    visit: str,
    improvement: np.ndarray,
    observed: np.ndarray,
    arm: np.ndarray,
    arms: Sequence[str],
    step: float,
) -> list[dict[str, Any]]:
    """Share of each arm improving by at least x, for x over the observed range."""
    values = improvement[observed]
    if not len(values):
        return []
    low = math.floor(float(values.min()) / step) * step
    high = math.ceil(float(values.max()) / step) * step
    grid = np.arange(low, high + step / 2, step)
    rows = []
    for arm_name in arms:
        mine = improvement[observed & (arm == arm_name)]
        for threshold in grid:
            share = float((mine >= threshold - 1e-12).mean()) if len(mine) else math.nan
            rows.append(
                {"visit": visit, "arm": arm_name, "threshold": float(threshold), "share": share}
            )
    return rows
