"""Effect sizes from study-level summaries, with their sampling variances.

Each function takes one value per study (scalars or arrays) and returns an
:class:`EffectSizes`: one effect ``yi`` and sampling variance ``vi`` per study, on
the scale the models pool (log scale for ratios). Group 1 is the treatment and
group 2 the comparison, so a negative mean difference means lower scores with
treatment. The formulas are the usual large-sample ones (Borenstein et al.,
*Introduction to Meta-Analysis*, Wiley 2009, chapters 4-5), chosen to agree with
``metafor::escalc`` (Viechtbauer, J Stat Softw 2010;36(3)):

``MD``
    :math:`m_1 - m_2`, variance :math:`s_1^2/n_1 + s_2^2/n_2`.
``SMD``
    Hedges' *g*: the difference over the pooled SD, times the exact small-sample
    correction :math:`J(m) = \\Gamma(m/2) / (\\sqrt{m/2}\\,\\Gamma((m-1)/2))`,
    :math:`m = n_1 + n_2 - 2` (Hedges, J Educ Stat 1981;6:107); variance
    :math:`1/n_1 + 1/n_2 + g^2 / (2(n_1 + n_2))`.
``RR``, ``OR``
    log risk ratio and log odds ratio; variances :math:`1/a - 1/n_1 + 1/c - 1/n_2` and
    :math:`1/a + 1/b + 1/c + 1/d`.
``RD``
    :math:`p_1 - p_2`, variance :math:`p_1(1-p_1)/n_1 + p_2(1-p_2)/n_2`.

For the binary measures a study with a zero cell gets 1/2 added to each of its
four cells (the usual continuity correction, and metafor's default); a study
with no events or only events in both groups has no log ratio, and is refused
with the reason rather than given an arbitrary value.

Every number is checked before it is used (:func:`plausible`): a mean, SD, effect,
standard error or interval limit beyond :data:`PLAUSIBLE_LIMIT` in magnitude (an SD or
SE below its inverse), or a group larger than :data:`PLAUSIBLE_N`, is refused naming the
study and the column, so no effect, variance or weight computed from it overflows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from lumbar.errors import Problem, SynthesisError

__all__ = [
    "BINARY",
    "CONTINUOUS",
    "MEASURES",
    "EffectSizes",
    "Measure",
    "double_zeros",
    "effect_sizes",
    "hedges_correction",
    "plausible",
    "sd_from_ci",
    "sd_from_se",
]

Measure = Literal["MD", "SMD", "RR", "OR", "RD"]
CONTINUOUS: tuple[Measure, ...] = ("MD", "SMD")
BINARY: tuple[Measure, ...] = ("RR", "OR", "RD")
MEASURES: tuple[Measure, ...] = (*CONTINUOUS, *BINARY)

PLAUSIBLE_LIMIT = 1e12
"""The largest magnitude of a mean, SD, effect, standard error or interval limit, and the
inverse of the smallest SD or SE. No trial summary is beyond a trillion in its units (a
cost in cents of a currency included), and within these limits, with groups of at most
:data:`PLAUSIBLE_N`, every effect, variance, weight and likelihood the models compute stays
far inside floating-point range: variances from 1e-34 to 1e24, weighted squared effects
below 1e59, while doubles reach 1.8e308 (tests/synthesis: the extreme plausible studies
pool to numbers)."""
PLAUSIBLE_N = 1e10
"""The largest number of participants (or events) in one group: more than the world's
population."""

_LOCATIONS = frozenset({"mean1", "mean2", "effect", "lower", "upper"})
_SPREADS = frozenset({"sd1", "sd2", "se"})
_COUNTS = frozenset({"n1", "n2", "events1", "events2"})
_IMPLAUSIBLE = "is not a plausible summary: check the value and its units"

DESCRIPTIONS: dict[str, str] = {
    "MD": "mean difference",
    "SMD": "standardized mean difference (Hedges' g)",
    "RR": "log risk ratio",
    "OR": "log odds ratio",
    "RD": "risk difference",
}


@dataclass(frozen=True)
class EffectSizes:
    """One effect and its sampling variance per study, ready to pool."""

    measure: Measure
    studies: tuple[str, ...]
    yi: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    corrected: tuple[bool, ...] = ()
    """For binary measures: whether 1/2 was added to the study's cells."""

    def __post_init__(self) -> None:
        problems = []
        if len(self.studies) != len(self.yi) or len(self.yi) != len(self.vi):
            problems.append(Problem("studies", "need one effect and one variance per study"))
        if len(self.studies) != len(set(self.studies)):
            seen = [name for name in self.studies if self.studies.count(name) > 1]
            problems.append(
                Problem("study", "each study needs its own label", seen[0], "number repeats")
            )
        bad = ~np.isfinite(self.yi) | ~np.isfinite(self.vi) | (self.vi <= 0)
        for index in np.flatnonzero(bad):
            problems.append(
                Problem(
                    f"study {self.studies[index]!r}",
                    "needs a finite effect and a positive sampling variance",
                    (float(self.yi[index]), float(self.vi[index])),
                )
            )
        if problems:
            raise SynthesisError("these effect sizes cannot be pooled", problems)

    @property
    def k(self) -> int:
        return len(self.studies)

    @property
    def sei(self) -> np.ndarray:
        return np.asarray(np.sqrt(self.vi))

    @property
    def ratio(self) -> bool:
        """Whether the effects are log ratios (shown exponentiated)."""
        return self.measure in ("RR", "OR")

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.measure]

    def subset(self, keep: np.ndarray | Sequence[bool]) -> EffectSizes:
        mask = np.asarray(keep, dtype=bool)
        return EffectSizes(
            self.measure,
            tuple(name for name, kept in zip(self.studies, mask, strict=True) if kept),
            self.yi[mask],
            self.vi[mask],
            tuple(c for c, kept in zip(self.corrected, mask, strict=False) if kept),
        )

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({"study": self.studies, "yi": self.yi, "vi": self.vi})
        frame["sei"] = self.sei
        if self.corrected:
            frame["continuity_correction"] = self.corrected
        return frame


def plausible(name: str, value: float) -> str:
    """The plausibility rule ``value`` of column ``name`` breaks, or "" (see
    :data:`PLAUSIBLE_LIMIT`). A negative SD or n is left to the column's own rule."""
    if name in _LOCATIONS and not -PLAUSIBLE_LIMIT <= value <= PLAUSIBLE_LIMIT:
        return (
            f"must be between {-PLAUSIBLE_LIMIT:g} and {PLAUSIBLE_LIMIT:g}: beyond " + _IMPLAUSIBLE
        )
    if name in _SPREADS and value > 0 and not 1 / PLAUSIBLE_LIMIT <= value <= PLAUSIBLE_LIMIT:
        return (
            f"must be between {1 / PLAUSIBLE_LIMIT:g} and {PLAUSIBLE_LIMIT:g}: beyond "
            + _IMPLAUSIBLE
        )
    if name in _COUNTS and value > PLAUSIBLE_N:
        return f"must be at most {PLAUSIBLE_N:g} (more than the world's population)"
    return ""


def hedges_correction(df: np.ndarray) -> np.ndarray:
    """The exact small-sample correction J of Hedges' g for ``df`` degrees of freedom."""
    half = np.asarray(df, dtype=float) / 2
    return np.asarray(
        np.exp(special.gammaln(half) - 0.5 * np.log(half) - special.gammaln(half - 0.5))
    )


Column = Sequence[float] | np.ndarray


def effect_sizes(
    measure: Measure,
    studies: Sequence[str],
    columns: Mapping[str, Column],
    *,
    double_zero: Literal["refuse", "correct"] = "refuse",
) -> EffectSizes:
    """Effect sizes of ``measure`` from per-arm summaries (group 1 = treatment).

    ``columns`` maps names to one value per study: continuous measures need
    ``mean1, sd1, n1, mean2, sd2, n2``; binary ones ``events1, n1, events2, n2``.
    Every impossible value is reported at once, naming the study and the column.
    A study with no events (or only events) in both groups has no ratio:
    ``double_zero="refuse"`` says so (the Cochrane Handbook leaves such studies
    out; :func:`~lumbar.synthesis.read_studies` sets them aside), and
    ``"correct"`` adds 1/2 to its cells like any zero cell (metafor's default).
    """
    if measure not in MEASURES:
        raise SynthesisError(
            "unknown effect measure",
            [Problem("measure", f"must be one of {', '.join(MEASURES)}", measure)],
        )
    labels = tuple(str(name) for name in studies)
    problems: list[Problem] = []
    first = _column("n1", columns.get("n1"), labels, problems, minimum=2, whole=True)
    second = _column("n2", columns.get("n2"), labels, problems, minimum=2, whole=True)
    if measure in CONTINUOUS:
        m1 = _column("mean1", columns.get("mean1"), labels, problems)
        m2 = _column("mean2", columns.get("mean2"), labels, problems)
        s1 = _column("sd1", columns.get("sd1"), labels, problems, positive=True)
        s2 = _column("sd2", columns.get("sd2"), labels, problems, positive=True)
        if problems:
            raise SynthesisError("cannot compute the effect sizes", problems)
        if measure == "MD":
            return EffectSizes(measure, labels, m1 - m2, s1**2 / first + s2**2 / second)
        df = first + second - 2
        pooled = np.sqrt(((first - 1) * s1**2 + (second - 1) * s2**2) / df)
        g = hedges_correction(df) * (m1 - m2) / pooled
        return EffectSizes(
            measure, labels, g, 1 / first + 1 / second + g**2 / (2 * (first + second))
        )
    a = _column("events1", columns.get("events1"), labels, problems, minimum=0, whole=True)
    c = _column("events2", columns.get("events2"), labels, problems, minimum=0, whole=True)
    # Every row breaking this rule is named, whatever else is wrong with it or others.
    for name, events, total in (("events1", a, first), ("events2", c, second)):
        with np.errstate(invalid="ignore"):
            more = np.isfinite(events) & np.isfinite(total) & (events > total)
        for index in np.flatnonzero(more):
            problems.append(
                Problem(
                    f"study {labels[index]!r}: {name}",
                    f"cannot exceed the group's n ({total[index]:g})",
                    float(events[index]),
                )
            )
    if problems:
        raise SynthesisError("cannot compute the effect sizes", problems)
    b, d = first - a, second - c
    cells = np.stack([a, b, c, d])
    zero = (cells == 0).any(axis=0)
    if measure != "RD" and double_zero == "refuse":
        empty = double_zeros(a, first, c, second)
        if empty.any():
            names = ", ".join(labels[index] for index in np.flatnonzero(empty))
            raise SynthesisError(
                "cannot compute the effect sizes",
                [
                    Problem(
                        "events1, events2",
                        f"a {measure} needs events in some but not all participants",
                        names,
                        "leave such studies out, or pool them as a risk difference (RD)",
                    )
                ],
            )
    cells = cells + 0.5 * zero
    a, b, c, d = cells
    first, second = a + b, c + d
    if measure == "RR":
        yi = np.log(a / first) - np.log(c / second)
        vi = 1 / a - 1 / first + 1 / c - 1 / second
    elif measure == "OR":
        yi = np.log(a * d / (b * c))
        vi = 1 / a + 1 / b + 1 / c + 1 / d
    else:
        p1, p2 = a / first, c / second
        yi = p1 - p2
        vi = p1 * (1 - p1) / first + p2 * (1 - p2) / second
    return EffectSizes(measure, labels, yi, vi, tuple(bool(z) for z in zero))


def double_zeros(
    events1: np.ndarray, n1: np.ndarray, events2: np.ndarray, n2: np.ndarray
) -> np.ndarray:
    """Studies with no events in either group, or only events in both: no ratio exists."""
    return np.asarray(
        ((events1 == 0) & (events2 == 0)) | ((events1 == n1) & (events2 == n2)), dtype=bool
    )


def sd_from_se(se: float, n: int) -> float:
    """A group's SD from the standard error of its mean: SE x sqrt(n)."""
    _check_conversion(se=se, n=n)
    return se * math.sqrt(n)


def sd_from_ci(lower: float, upper: float, n: int, level: float = 0.95) -> float:
    """A group's SD from a confidence interval for its mean (t quantile on n - 1 df;
    Cochrane Handbook 6.5.2.2)."""
    _check_conversion(n=n)
    problems = []
    if not upper > lower:
        problems.append(Problem("upper", "must be above the lower limit", (lower, upper)))
    if not 0 < level < 1:
        problems.append(Problem("level", "must be between 0 and 1, e.g. 0.95", level))
    if problems:
        raise SynthesisError("cannot convert the interval to an SD", problems)
    quantile = float(stats.t.ppf(0.5 + level / 2, n - 1))
    return (upper - lower) / (2 * quantile) * math.sqrt(n)


def _check_conversion(*, n: int, se: float | None = None) -> None:
    problems = []
    if not (isinstance(n, int | np.integer) and n >= 2):
        problems.append(Problem("n", "must be a whole number of at least 2", n))
    if se is not None and not (math.isfinite(se) and se > 0):
        problems.append(Problem("se", "must be a positive number", se))
    if problems:
        raise SynthesisError("cannot convert to an SD", problems)


def _column(
    name: str,
    values: Sequence[float] | np.ndarray | None,
    studies: tuple[str, ...],
    problems: list[Problem],
    *,
    minimum: float | None = None,
    positive: bool = False,
    whole: bool = False,
) -> np.ndarray:
    if values is None:
        problems.append(Problem(name, "is required for this measure"))
        return np.full(len(studies), np.nan)
    array = np.asarray(pd.to_numeric(pd.Series(list(values)), errors="coerce"), dtype=float)
    if len(array) != len(studies):
        problems.append(Problem(name, f"needs one value per study ({len(studies)})", len(array)))
        return np.full(len(studies), np.nan)
    for index, value in enumerate(array.tolist()):  # Python floats: plain in messages
        where = f"study {studies[index]!r}: {name}"
        if math.isnan(value):
            problems.append(Problem(where, "must be a number", list(values)[index]))
            continue
        implausible = plausible(name, value)
        if implausible:  # before anything is computed from it
            problems.append(Problem(where, implausible, value))
            continue
        # Every rule the value breaks, not only the first.
        if positive and value <= 0:
            problems.append(Problem(where, "must be greater than 0", value))
        if minimum is not None and value < minimum:
            problems.append(Problem(where, f"must be at least {minimum:g}", value))
        if whole and value != round(value):
            problems.append(Problem(where, "must be a whole number", value))
    return array
