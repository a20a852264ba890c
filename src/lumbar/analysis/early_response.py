"""Early non-response: does "no meaningful relief by session k" predict not responding later?

Input is one row per participant: the session rating before session 1 (the
baseline), the rating before session k (k >= 2), and whether the participant
responded at the primary timepoint (a boolean the caller computes, e.g. with
:func:`lumbar.analysis.responders`). Higher ratings are worse (bothersomeness,
pain), so the improvement by session k is ``baseline - rating``.

**The rule.** Under a relief definition with threshold c, a participant had
relief by session k when

- *points*: improvement >= c;
- *percent*: 100 * improvement >= c * baseline, with baseline > 0 (a baseline of
  0 cannot improve).

The rule "no relief by session k" is the test; the condition it predicts is
NON-response. So, with a = no relief and non-responder, b = no relief and
responder, c = relief and non-responder, d = relief and responder:
sensitivity = a / (a + c), specificity = d / (b + d), PPV = a / (a + b),
NPV = d / (c + d). Each has a 95% **Wilson score interval** (Wilson, JASA
1927;22:209; Newcombe, Stat Med 1998;17:857, method 3), without continuity
correction: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n). A proportion
with denominator 0 is NaN.

**ROC.** The improvement in points at session k as a continuous predictor of
non-response (smaller improvement, more likely a non-responder). The AUC is
the Mann-Whitney form, AUC = mean over pairs (non-responder i, responder j) of
psi, psi = 1 when responder j improved more than non-responder i, 1/2 on a tie,
0 otherwise. Its variance is DeLong's (DeLong, DeLong & Clarke-Pearson,
Biometrics 1988;44:837): with the structural components V10_i (the mean of psi
over responders for non-responder i) and V01_j (over non-responders for
responder j), var = var(V10)/m + var(V01)/n (sample variances, m
non-responders, n responders); the 95% CI is AUC ± z sqrt(var), clipped to
[0, 1] (as pROC's ``ci.auc(method = "delong")`` does).

**Out of sample.** In-sample, the relief threshold (points) that maximizes
Youden's J = sensitivity + specificity - 1 is chosen and evaluated on the same
participants, which flatters it. Stratified k-fold cross-validation (folds
drawn with a seed, non-responders and responders dealt out separately) chooses
the threshold on the training folds and counts the held-out fold; the held-out
2x2 tables are pooled. Candidate thresholds are the distinct observed
improvements of the training set (relief = improvement >= threshold); ties in J
go to the smallest threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from lumbar.errors import AnalysisError, Problem
from lumbar.estimates import wilson_interval

__all__ = [
    "CrossValidation",
    "EarlyResponseResult",
    "Proportion",
    "Relief",
    "RuleAccuracy",
    "auc_delong",
    "early_response",
    "session_changes",
]

LEVEL = 0.95
"""Confidence level of every interval here (the convention of diagnostic accuracy reporting,
STARD 2015)."""

REQUIRED = ("participant", "baseline", "rating", "responder")


@dataclass(frozen=True)
class Relief:
    """One definition of meaningful relief by session k: improvement of at least
    ``threshold`` points, or ``threshold`` percent of the baseline rating."""

    name: str
    kind: Literal["points", "percent"]
    threshold: float


@dataclass(frozen=True)
class Proportion:
    """A proportion with its Wilson score interval."""

    numerator: int
    denominator: int
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class RuleAccuracy:
    """The 2x2 table of "no relief" against non-response, and what it gives."""

    relief: Relief
    no_relief_non_responder: int
    no_relief_responder: int
    relief_non_responder: int
    relief_responder: int
    sensitivity: Proportion
    specificity: Proportion
    ppv: Proportion
    npv: Proportion


@dataclass(frozen=True)
class CrossValidation:
    """Youden-optimal threshold (points) chosen in-sample and out of sample."""

    folds: int
    seed: int
    in_sample_threshold: float
    in_sample_sensitivity: Proportion
    in_sample_specificity: Proportion
    fold_thresholds: tuple[float, ...]
    out_of_sample_sensitivity: Proportion
    out_of_sample_specificity: Proportion

    @property
    def optimism(self) -> float:
        """In-sample minus out-of-sample Youden's J."""
        inside = self.in_sample_sensitivity.estimate + self.in_sample_specificity.estimate
        outside = self.out_of_sample_sensitivity.estimate + self.out_of_sample_specificity.estimate
        return inside - outside


@dataclass(frozen=True)
class EarlyResponseResult:
    """Accuracy of every "no relief by session k" rule, the ROC and its AUC, and the CV."""

    session: int
    n: int
    non_responders: int
    rules: tuple[RuleAccuracy, ...]
    auc: float
    auc_variance: float
    auc_lower: float
    auc_upper: float
    roc: pd.DataFrame = field(repr=False)
    """threshold, sensitivity, specificity: "no relief" = improvement < threshold."""
    cross_validation: CrossValidation | None

    def to_frame(self) -> pd.DataFrame:
        """One row per relief definition and measure (sensitivity, specificity, PPV, NPV)."""
        rows: list[dict[str, Any]] = []
        for rule in self.rules:
            for measure in ("sensitivity", "specificity", "ppv", "npv"):
                value: Proportion = getattr(rule, measure)
                rows.append(
                    {
                        "session": self.session,
                        "relief": rule.relief.name,
                        "measure": measure,
                        **vars(value),
                    }
                )
        return pd.DataFrame(rows)

    def cross_validation_frame(self) -> pd.DataFrame:
        """In-sample and pooled out-of-sample sensitivity and specificity, side by side."""
        cv = self.cross_validation
        if cv is None:
            return pd.DataFrame()
        rows = []
        for sample, sensitivity, specificity in (
            ("in_sample", cv.in_sample_sensitivity, cv.in_sample_specificity),
            ("out_of_sample", cv.out_of_sample_sensitivity, cv.out_of_sample_specificity),
        ):
            for measure, value in (("sensitivity", sensitivity), ("specificity", specificity)):
                rows.append({"sample": sample, "measure": measure, **vars(value)})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "early_response",
            "session": self.session,
            "n": self.n,
            "non_responders": self.non_responders,
            "rules": self.to_frame().to_dict(orient="records"),
            "auc": self.auc,
            "auc_variance": self.auc_variance,
            "auc_lower": self.auc_lower,
            "auc_upper": self.auc_upper,
            "cross_validation": self.cross_validation_frame().to_dict(orient="records"),
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        names = "; ".join(
            f"{rule.relief.threshold:g}{' points' if rule.relief.kind == 'points' else '%'}"
            for rule in self.rules
        )
        text = (
            f"No meaningful relief by session {self.session} (improvement from the rating "
            f"before session 1 of less than {names}) was assessed as a predictor of "
            "non-response: sensitivity, specificity and predictive values with 95% Wilson "
            "score intervals; the improvement as a continuous predictor by the ROC curve, "
            "with the Mann-Whitney AUC and DeLong's 95% interval."
        )
        if self.cross_validation is not None:
            text += (
                " The relief threshold maximizing Youden's J was chosen in-sample and by "
                f"{self.cross_validation.folds}-fold stratified cross-validation "
                f"(seed {self.cross_validation.seed}), held-out counts pooled."
            )
        return text

    def __str__(self) -> str:
        lines = [
            f"No relief by session {self.session} as a predictor of non-response "
            f"({self.non_responders} of {self.n} non-responders)",
            f"  AUC {self.auc:.3f} (95% CI {self.auc_lower:.3f} to {self.auc_upper:.3f}, DeLong)",
        ]
        for rule in self.rules:
            lines.append(
                f"  {rule.relief.name:<12} sensitivity {rule.sensitivity.estimate:.2f} "
                f"specificity {rule.specificity.estimate:.2f} "
                f"PPV {rule.ppv.estimate:.2f} NPV {rule.npv.estimate:.2f}"
            )
        return "\n".join(lines)


def _proportion(numerator: int, denominator: int) -> Proportion:
    lower, upper = wilson_interval(numerator, denominator)
    estimate = numerator / denominator if denominator else math.nan
    return Proportion(numerator, denominator, estimate, lower, upper)


def auc_delong(
    non_responders: np.ndarray, responders: np.ndarray, level: float = LEVEL
) -> tuple[float, float, float, float]:
    """AUC (Mann-Whitney, ties 1/2) of improvement separating responders from
    non-responders, DeLong's variance and CI: (auc, variance, lower, upper)."""
    x = np.asarray(non_responders, dtype=float)
    y = np.asarray(responders, dtype=float)
    # psi[i, j] = 1 when responder j improved more than non-responder i, 1/2 on a tie.
    psi = (y[None, :] > x[:, None]).astype(float) + 0.5 * (y[None, :] == x[:, None])
    auc = float(psi.mean())
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    m, n = len(x), len(y)
    s10 = float(np.var(v10, ddof=1)) if m > 1 else math.nan
    s01 = float(np.var(v01, ddof=1)) if n > 1 else math.nan
    variance = s10 / m + s01 / n
    z = float(stats.norm.ppf(0.5 + level / 2))
    if math.isnan(variance):  # one participant in a group: no variance estimate
        return auc, variance, math.nan, math.nan
    half = z * math.sqrt(variance)
    return auc, variance, max(0.0, auc - half), min(1.0, auc + half)


def _relief(relief: Relief, improvement: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    if relief.kind == "points":
        return improvement >= relief.threshold
    return (baseline > 0) & (100.0 * improvement >= relief.threshold * baseline)


def _table(no_relief: np.ndarray, non_responder: np.ndarray) -> tuple[int, int, int, int]:
    a = int(np.sum(no_relief & non_responder))
    b = int(np.sum(no_relief & ~non_responder))
    c = int(np.sum(~no_relief & non_responder))
    d = int(np.sum(~no_relief & ~non_responder))
    return a, b, c, d


def _accuracy(relief: Relief, no_relief: np.ndarray, non_responder: np.ndarray) -> RuleAccuracy:
    a, b, c, d = _table(no_relief, non_responder)
    return RuleAccuracy(
        relief,
        a,
        b,
        c,
        d,
        sensitivity=_proportion(a, a + c),
        specificity=_proportion(d, b + d),
        ppv=_proportion(a, a + b),
        npv=_proportion(d, c + d),
    )


def _roc(improvement: np.ndarray, non_responder: np.ndarray) -> pd.DataFrame:
    thresholds = np.concatenate([np.unique(improvement), [np.inf]])
    rows = []
    for threshold in thresholds:
        a, b, c, d = _table(improvement < threshold, non_responder)
        rows.append(
            {
                "threshold": float(threshold),
                "sensitivity": a / (a + c),
                "specificity": d / (b + d),
            }
        )
    return pd.DataFrame(rows)


def _youden_threshold(improvement: np.ndarray, non_responder: np.ndarray) -> float:
    """The relief threshold (improvement >= threshold) maximizing J; ties to the smallest."""
    best, best_j = math.nan, -math.inf
    for threshold in np.unique(improvement):
        a, b, c, d = _table(improvement < threshold, non_responder)
        j = a / (a + c) + d / (b + d) - 1
        if j > best_j + 1e-12:
            best, best_j = float(threshold), j
    return best


def _folds(non_responder: np.ndarray, folds: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    assigned = np.empty(len(non_responder), dtype=int)
    offset = 0
    for group in (True, False):
        members = np.flatnonzero(non_responder == group)
        members = members[rng.permutation(len(members))]
        assigned[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return assigned


def _cross_validate(
    improvement: np.ndarray, non_responder: np.ndarray, folds: int, seed: int, fold: np.ndarray
) -> CrossValidation:
    chosen = _youden_threshold(improvement, non_responder)
    inside = _table(improvement < chosen, non_responder)
    pooled = np.zeros(4, dtype=int)
    thresholds = []
    for held_out in range(folds):
        test = fold == held_out
        train = ~test
        threshold = _youden_threshold(improvement[train], non_responder[train])
        thresholds.append(threshold)
        pooled += np.array(_table(improvement[test] < threshold, non_responder[test]))
    a, b, c, d = (int(value) for value in pooled)
    return CrossValidation(
        folds=folds,
        seed=seed,
        in_sample_threshold=chosen,
        in_sample_sensitivity=_proportion(inside[0], inside[0] + inside[2]),
        in_sample_specificity=_proportion(inside[3], inside[1] + inside[3]),
        fold_thresholds=tuple(thresholds),
        out_of_sample_sensitivity=_proportion(a, a + c),
        out_of_sample_specificity=_proportion(d, b + d),
    )


def _refuse(problems: list[Problem], session: int) -> None:
    if problems:
        raise AnalysisError(
            f"cannot assess early non-response by session {session}: bad input", problems
        )


def early_response(
    data: pd.DataFrame,
    reliefs: Sequence[Relief],
    *,
    session: int,
    folds: int = 5,
    seed: int = 0,
    fold: Sequence[int] | None = None,
) -> EarlyResponseResult:
    """How well "no relief by ``session``" predicts non-response (module docstring).

    ``data``: one row per participant with ``participant``, ``baseline`` (rating
    before session 1), ``rating`` (before ``session``) and ``responder`` (bool).
    ``fold`` (0 .. folds-1 per row) replaces the seeded stratified folds, so that
    another implementation can reproduce the cross-validation exactly.
    """
    problems: list[Problem] = []
    if isinstance(session, bool) or not isinstance(session, int) or session < 2:
        problems.append(
            Problem(
                "session",
                "must be a whole number >= 2 (session 1's rating is the baseline)",
                session,
            )
        )
    missing_columns = [name for name in REQUIRED if name not in data.columns]
    for name in missing_columns:
        problems.append(Problem(name, "is a required column", hint=f"columns: {REQUIRED}"))
    if not reliefs:
        problems.append(Problem("reliefs", "must name at least one relief definition"))
    for relief in reliefs:
        if relief.kind not in ("points", "percent"):
            problems.append(
                Problem(f"relief {relief.name}.kind", "must be 'points' or 'percent'", relief.kind)
            )
        if not (math.isfinite(relief.threshold) and relief.threshold > 0):
            problems.append(
                Problem(
                    f"relief {relief.name}.threshold", "must be a positive number", relief.threshold
                )
            )
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        problems.append(Problem("folds", "must be a whole number >= 2", folds))
    _refuse(problems, session)

    for name in ("baseline", "rating"):
        values = pd.to_numeric(data[name], errors="coerce")
        bad = data.loc[values.isna() | ~np.isfinite(values.fillna(0)), "participant"]
        if len(bad):
            problems.append(
                Problem(
                    name,
                    "must be a number for every participant (no missing ratings)",
                    list(bad)[:5],
                    hint="leave out participants without both ratings before calling",
                )
            )
    responder = data["responder"]
    if not (pd.api.types.is_bool_dtype(responder) and not responder.isna().any()):
        problems.append(
            Problem(
                "responder",
                "must be a boolean column (True/False) with no missing values",
                str(responder.dtype),
                hint="compute responder status at the primary timepoint first",
            )
        )
    if data["participant"].duplicated().any():
        problems.append(
            Problem(
                "participant",
                "must appear once (one row per participant)",
                list(data.loc[data["participant"].duplicated(), "participant"])[:5],
            )
        )
    _refuse(problems, session)

    baseline = data["baseline"].to_numpy(dtype=float)
    improvement = baseline - data["rating"].to_numpy(dtype=float)
    non_responder = ~data["responder"].to_numpy(dtype=bool)
    m = int(non_responder.sum())
    n = len(non_responder) - m
    if m < folds or n < folds:
        problems.append(
            Problem(
                "responder",
                f"needs at least {folds} non-responders and {folds} responders "
                "(one of each per fold)",
                {"non_responders": m, "responders": n},
            )
        )
    if fold is not None:
        given = np.asarray(fold)
        if given.shape != (len(data),) or not np.isin(given, np.arange(folds)).all():
            problems.append(
                Problem("fold", f"must give each row a fold 0..{folds - 1}", list(given)[:5])
            )
        else:
            for held_out in range(folds):
                train = non_responder[given != held_out]
                if train.all() or not train.any():
                    problems.append(
                        Problem(
                            "fold",
                            "must leave non-responders and responders in every training set",
                            f"fold {held_out} holds out every participant of one group",
                        )
                    )
    _refuse(problems, session)

    rules = tuple(
        _accuracy(relief, ~_relief(relief, improvement, baseline), non_responder)
        for relief in reliefs
    )
    auc, variance, lower, upper = auc_delong(
        improvement[non_responder], improvement[~non_responder]
    )
    assignment = (
        np.asarray(fold, dtype=int) if fold is not None else _folds(non_responder, folds, seed)
    )
    return EarlyResponseResult(
        session=session,
        n=len(data),
        non_responders=m,
        rules=rules,
        auc=auc,
        auc_variance=variance,
        auc_lower=lower,
        auc_upper=upper,
        roc=_roc(improvement, non_responder),
        cross_validation=_cross_validate(improvement, non_responder, folds, seed, assignment),
    )


def session_changes(ratings: pd.DataFrame, responder: pd.Series, session: int) -> pd.DataFrame:
    """The per-participant frame :func:`early_response` takes, from tidy session ratings.

    ``ratings``: columns ``participant``, ``session`` (1, 2, ...), ``rating``.
    ``responder``: boolean, indexed by participant. Participants without both the
    session 1 and the session ``session`` rating, or without a responder status,
    are left out.
    """
    problems = [
        Problem(name, "is a required column of the session ratings")
        for name in ("participant", "session", "rating")
        if name not in ratings.columns
    ]
    if isinstance(session, bool) or not isinstance(session, int) or session < 2:
        problems.append(Problem("session", "must be a whole number >= 2", session))
    _refuse(problems, session)
    wide = ratings.pivot_table(
        index="participant", columns="session", values="rating", aggfunc="first"
    )
    if 1 not in wide.columns or session not in wide.columns:
        return pd.DataFrame(columns=list(REQUIRED))
    frame = pd.DataFrame({"baseline": wide[1], "rating": wide[session]}).dropna()
    frame = frame.join(responder.rename("responder"), how="inner").dropna()
    frame["responder"] = frame["responder"].astype(bool)
    return frame.reset_index(names="participant")[list(REQUIRED)]
