"""Study tables: reading a user's studies, the shipped massage dataset, and placing one more
study (a trial's own result, made into rows by :func:`lumbar.application.trial_rows`).

A study table has one row per comparison (a multi-arm trial appears once per
comparison, as in Cochrane reviews). :func:`read_studies` turns it into
:class:`EffectSizes` for one measure, from any of:

- per-arm summaries: ``n1, mean1, sd1, n2, mean2, sd2`` (MD, SMD) or
  ``events1, n1, events2, n2`` (RR, OR, RD), group 1 being the treatment;
- a published difference with its confidence interval: ``effect, lower, upper``
  (the generic inverse-variance method: SE = (upper - lower) / (2 x 1.96)), for
  MD or RD, or for RR and OR given on the ratio scale;
- a difference with its standard error: ``effect, se``.

Rows that lack what the measure needs are not guessed at: they are set aside,
each with the reason, and reported next to the result. Impossible values (text in a
column of numbers, a negative SD, n < 2, more events than participants, a value beyond
:func:`~lumbar.synthesis.effects.plausible`) are errors naming the study and the column.
An empty cell (or a marker pandas reads as missing, such as ``NA`` or ``n/a``) is a
number not published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lumbar.errors import Problem, SynthesisError
from lumbar.synthesis.effects import (
    BINARY,
    CONTINUOUS,
    MEASURES,
    EffectSizes,
    Measure,
    double_zeros,
    effect_sizes,
    plausible,
)
from lumbar.synthesis.models import MetaResult, Method, meta_analysis

__all__ = [
    "SHIPPED",
    "Placement",
    "StudyTable",
    "place_trial",
    "read_studies",
    "shipped_studies",
]

SHORT_TERM_WEEKS = 13
"""Follow-up up to three months counts as short term (the Cochrane review's split)."""
OUTCOME_NAMES = {"rdq": "RDQ", "bothersomeness": "bothersomeness"}

SHIPPED = "massage_lbp"
"""The dataset of massage-for-low-back-pain trials that ships with lumbar."""

ARM_COLUMNS: dict[str, tuple[str, ...]] = {
    "continuous": ("n1", "mean1", "sd1", "n2", "mean2", "sd2"),
    "binary": ("events1", "n1", "events2", "n2"),
}
SUMMARY_COLUMNS = ("effect", "lower", "upper", "se")


@dataclass(frozen=True)
class StudyTable:
    """Effect sizes of the usable rows, the rows themselves, and the rows set aside."""

    effects: EffectSizes
    rows: pd.DataFrame = field(repr=False)
    """The usable rows, in the order of ``effects`` (every input column kept)."""
    excluded: tuple[tuple[str, str], ...] = ()
    """(study, reason) for each row that could not be used."""

    def column(self, name: str) -> pd.Series:
        if name not in self.rows.columns:
            raise SynthesisError(
                "unknown column",
                [
                    Problem(
                        name,
                        "is not a column of the studies",
                        hint="columns: " + ", ".join(map(str, self.rows.columns)),
                    )
                ],
            )
        return self.rows[name].reset_index(drop=True)


def read_studies(
    frame: pd.DataFrame,
    measure: Measure,
    *,
    columns: Mapping[str, str] | None = None,
    level: float = 0.95,
) -> StudyTable:
    """The effect sizes of ``measure`` from a study table (see the module docstring).

    ``columns`` maps lumbar's names (``study``, ``n1``, ``mean1``, ... ``effect``,
    ``lower``, ``upper``, ``se``) to the table's own; ``level`` is the coverage of
    published intervals.
    """
    if measure not in MEASURES:
        raise SynthesisError(
            "unknown effect measure",
            [Problem("measure", f"must be one of {', '.join(MEASURES)}", measure)],
        )
    renamed = _renamed(frame, columns or {})
    kind = "continuous" if measure in CONTINUOUS else "binary"
    needed = ARM_COLUMNS[kind]
    has_arms = all(name in renamed.columns for name in needed)
    has_summary = "effect" in renamed.columns and (
        "se" in renamed.columns or {"lower", "upper"} <= set(renamed.columns)
    )
    if not has_arms and not has_summary:
        missing = [name for name in needed if name not in renamed.columns]
        raise SynthesisError(
            "the studies lack the columns this measure needs",
            [
                Problem(
                    "columns",
                    f"{measure} needs {', '.join(needed)} (or effect with lower and upper, or se)",
                    sorted(map(str, frame.columns)),
                    f"missing: {', '.join(missing)}; map your names with --column NAME=YOURS",
                )
            ],
        )
    renamed = _numbers(renamed, (*needed, *SUMMARY_COLUMNS))
    usable: list[int] = []
    from_arms: list[bool] = []
    excluded: list[tuple[str, str]] = []
    for index, (_, row) in enumerate(renamed.iterrows()):
        study = str(row["study"])
        if has_arms and all(_present(row.get(name)) for name in needed):
            if measure in ("RR", "OR") and _double_zero(row):
                excluded.append((study, f"no {measure}: no events, or only events, in both groups"))
                continue
            usable.append(index)
            from_arms.append(True)
        elif has_summary and _summary_usable(row):
            if measure == "SMD":
                excluded.append((study, "an SMD needs per-arm means, SDs and numbers"))
                continue
            usable.append(index)
            from_arms.append(False)
        else:
            excluded.append((study, _missing_reason(row, needed)))
    if not usable:
        raise SynthesisError(
            "no study can be pooled",
            [Problem("studies", f"none has what a {measure} needs", dict(excluded))],
        )
    rows = renamed.loc[usable].reset_index(drop=True)
    arms = np.array(from_arms)
    yi = np.empty(len(rows))
    vi = np.empty(len(rows))
    corrected = np.zeros(len(rows), dtype=bool)
    if arms.any():
        part = rows[arms]
        values = {name: part[name].to_numpy(dtype=float) for name in needed}
        computed = effect_sizes(measure, [str(name) for name in part["study"]], values)
        yi[arms], vi[arms] = computed.yi, computed.vi
        if computed.corrected:
            corrected[arms] = computed.corrected
    if (~arms).any():
        summary = rows[~arms]
        yi[~arms], vi[~arms] = _from_summaries(summary, measure, level)
    effects = EffectSizes(
        measure,
        tuple(str(name) for name in rows["study"]),
        yi,
        vi,
        tuple(bool(flag) for flag in corrected) if measure in BINARY else (),
    )
    return StudyTable(effects, rows, tuple(excluded))


def shipped_studies() -> pd.DataFrame:
    """The shipped dataset of massage-for-low-back-pain trials (docs: its README)."""
    source = resources.files("lumbar.synthesis").joinpath("data", f"{SHIPPED}.csv")
    with source.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle, comment="#")


@dataclass(frozen=True)
class Placement:
    """Where a trial moves the evidence: the published studies pooled without it and with it."""

    before: MetaResult
    after: MetaResult
    published: StudyTable = field(repr=False)
    combined: StudyTable = field(repr=False)
    trial_studies: tuple[str, ...]

    @property
    def shift(self) -> float:
        """How far the pooled estimate moved (after minus before, on the pooled scale)."""
        return self.after.estimate - self.before.estimate

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_studies": list(self.trial_studies),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "shift": self.shift,
            "set_aside": [list(item) for item in self.combined.excluded],
        }


def place_trial(
    published: pd.DataFrame,
    trial: pd.DataFrame,
    measure: Measure = "MD",
    method: Method = "REML",
    *,
    hksj: bool = False,
    alpha: float = 0.05,
) -> Placement:
    """Pool ``published`` studies, then pool them again with ``trial``'s rows added
    (from :func:`lumbar.application.trial_rows`): the pooled estimate before and after."""
    before_table = read_studies(published, measure)
    combined = pd.concat([published, trial], ignore_index=True)
    after_table = read_studies(combined, measure)
    return Placement(
        before=meta_analysis(before_table.effects, method, hksj=hksj, alpha=alpha),
        after=meta_analysis(after_table.effects, method, hksj=hksj, alpha=alpha),
        published=before_table,
        combined=after_table,
        trial_studies=tuple(str(name) for name in trial["study"]),
    )


def _renamed(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    problems = [
        Problem(f"columns.{ours}", "names no column of the file", theirs)
        for ours, theirs in columns.items()
        if theirs not in frame.columns
    ]
    if problems:
        raise SynthesisError("cannot read the studies", problems)
    renamed = frame.rename(columns={theirs: ours for ours, theirs in columns.items()})
    if "study" not in renamed.columns:
        raise SynthesisError(
            "cannot read the studies",
            [Problem("study", "a column naming each study is required", list(frame.columns))],
        )
    renamed = renamed.reset_index(drop=True)
    duplicated = renamed["study"].astype(str).duplicated(keep=False)
    if duplicated.any():
        raise SynthesisError(
            "cannot read the studies",
            [
                Problem(
                    "study",
                    "each row needs its own label (a multi-arm trial: one label per comparison)",
                    sorted(set(renamed.loc[duplicated, "study"].astype(str))),
                )
            ],
        )
    return renamed


def _numbers(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with the columns ``names`` it has as floats; text in them, or a number
    beyond plausibility, is refused naming the study and the column, before any row is
    used (or set aside)."""
    frame = frame.copy()
    problems: list[Problem] = []
    for name in dict.fromkeys(names):
        if name not in frame.columns:
            continue
        column = frame[name]
        numbers = pd.to_numeric(column, errors="coerce").astype(float).to_numpy(copy=True)
        for index in np.flatnonzero(column.notna().to_numpy() & np.isnan(numbers)):
            value = column.iloc[index]
            where = f"study {str(frame['study'].iloc[index])!r}: {name}"
            number = _as_number(value)
            if number is None:
                problems.append(Problem(where, "must be a number", value))
            else:  # text pandas would not convert, such as 1e400
                numbers[index] = number
        for index in np.flatnonzero(~np.isnan(numbers)):
            rule = plausible(name, float(numbers[index]))
            if rule:
                where = f"study {str(frame['study'].iloc[index])!r}: {name}"
                value = column.iloc[index]
                shown = value.item() if isinstance(value, np.generic) else value
                problems.append(Problem(where, rule, shown))
        if not pd.api.types.is_numeric_dtype(column):  # numbers stay as given (50, not 50.0)
            frame[name] = numbers
    if problems:
        raise SynthesisError("cannot read the studies", problems)
    return frame


def _as_number(value: Any) -> float | None:
    """A number written as text (" 12 ", "1e400"), or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | np.number):
        return None
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):
        return True


def _double_zero(row: pd.Series) -> bool:
    values = [float(row[name]) for name in ("events1", "n1", "events2", "n2")]
    return bool(double_zeros(*(np.array([value]) for value in values))[0])


def _summary_usable(row: pd.Series) -> bool:
    if not _present(row.get("effect")):
        return False
    return _present(row.get("se")) or (_present(row.get("lower")) and _present(row.get("upper")))


def _missing_reason(row: pd.Series, needed: tuple[str, ...]) -> str:
    missing = [name for name in needed if not _present(row.get(name))]
    return f"not published: {', '.join(missing)}" if missing else "incomplete"


def _from_summaries(
    rows: pd.DataFrame, measure: Measure, level: float
) -> tuple[np.ndarray, np.ndarray]:
    quantile = float(stats.norm.ppf(0.5 + level / 2))
    yi = np.empty(len(rows))
    vi = np.empty(len(rows))
    problems: list[Problem] = []
    ratio = measure in ("RR", "OR")
    for position, (_, row) in enumerate(rows.iterrows()):
        study = str(row["study"])
        effect = float(row["effect"])
        if _present(row.get("se")):
            se = float(row["se"])
            if ratio:
                effect = math.log(effect) if effect > 0 else math.nan
        else:
            lower, upper = float(row["lower"]), float(row["upper"])
            if not lower <= effect <= upper:
                problems.append(
                    Problem(
                        f"study {study!r}: lower, upper",
                        "must bracket the effect",
                        (lower, effect, upper),
                    )
                )
                continue
            if ratio:
                if min(lower, effect) <= 0:
                    problems.append(
                        Problem(f"study {study!r}: effect", "a ratio must be above 0", effect)
                    )
                    continue
                effect, lower, upper = math.log(effect), math.log(lower), math.log(upper)
            se = (upper - lower) / (2 * quantile)
        if not se > 0 or not math.isfinite(effect):
            problems.append(Problem(f"study {study!r}: se", "must be greater than 0", se))
            continue
        yi[position] = effect
        vi[position] = se**2
    if problems:
        raise SynthesisError("cannot use the published summaries", problems)
    return yi, vi
