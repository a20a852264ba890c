"""The analysis's input: long data (one row per participant and visit), checked once.

:class:`TrialData` is built from any DataFrame with a column mapping
(:meth:`TrialData.from_frame`) or from lumbar's tidy dataset with the protocol's
pre-specified settings (:meth:`TrialData.from_tidy`). Every estimator takes a
``TrialData``; none reads a database.

Checks, each a clear :class:`~lumbar.errors.AnalysisError`: a mapped column is
missing; the outcome, baseline or a numeric covariate is not numeric; the
reference arm is not in the data; an arm has no participants; a visit has no
outcome data; a participant has two rows for one visit; a participant's arm or
baseline changes between rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lumbar.errors import AnalysisError, Problem

__all__ = ["Columns", "TrialData"]


@dataclass(frozen=True)
class Columns:
    """Which columns of a long DataFrame hold what."""

    outcome: str
    participant: str = "participant"
    arm: str = "arm"
    visit: str = "visit"
    baseline: str | None = None
    covariates: tuple[str, ...] = ()
    reference: str | None = None
    """The reference (control) arm; the first arm in sorted order when not given."""
    baseline_visit: str | None = None
    """Rows of this visit are the baseline, not an outcome visit (dropped from the models)."""
    visits: tuple[str, ...] | None = None
    """The post-baseline visits in time order; the data's order of first appearance if not given."""


@dataclass(frozen=True)
class TrialData:
    """Checked long data: post-baseline rows only, arms and visits ordered, types known."""

    frame: pd.DataFrame = field(repr=False)
    """Columns ``participant, arm, visit, y`` (+ ``baseline``) + covariates; rows sorted."""
    arms: tuple[str, ...]
    """Arms, the reference first."""
    visits: tuple[str, ...]
    outcome: str
    baseline: str | None
    numeric_covariates: tuple[str, ...]
    categorical_covariates: tuple[str, ...]
    categories: dict[str, tuple[str, ...]] = field(repr=False)
    """Levels of each categorical covariate, the first being the reference level."""
    data_hash: str

    @property
    def reference(self) -> str:
        return self.arms[0]

    @property
    def covariates(self) -> tuple[str, ...]:
        return (*self.numeric_covariates, *self.categorical_covariates)

    @property
    def participants(self) -> int:
        return int(self.frame["participant"].nunique())

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_frame(cls, data: pd.DataFrame, columns: Columns) -> TrialData:
        """Check ``data`` against ``columns`` and keep what the models need."""
        needed = [columns.participant, columns.arm, columns.visit, columns.outcome]
        if columns.baseline:
            needed.append(columns.baseline)
        needed.extend(columns.covariates)
        missing = [name for name in needed if name not in data.columns]
        if missing:
            raise AnalysisError(
                "columns are missing",
                [
                    Problem(
                        f"column {name!r}",
                        "is not in the data",
                        hint="the columns are: " + ", ".join(map(str, data.columns)),
                    )
                    for name in missing
                ],
            )
        frame = pd.DataFrame(
            {
                "participant": data[columns.participant].astype(str),
                "arm": data[columns.arm].astype(str),
                "visit": data[columns.visit].astype(str),
            }
        )
        problems: list[Problem] = []
        frame["y"] = _numeric(data[columns.outcome], columns.outcome, "outcome", problems)
        if columns.baseline:
            frame["baseline"] = _numeric(
                data[columns.baseline], columns.baseline, "baseline", problems
            )
        numeric: list[str] = []
        categorical: list[str] = []
        categories: dict[str, tuple[str, ...]] = {}
        for name in columns.covariates:
            column = data[name]
            if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
                text = column.astype("string")
                frame[name] = text
                levels = tuple(sorted(text.dropna().unique()))
                if len(levels) < 2:
                    problems.append(
                        Problem(
                            f"covariate {name!r}",
                            "has fewer than two categories",
                            list(levels),
                            "drop the covariate",
                        )
                    )
                categorical.append(name)
                categories[name] = levels
            else:
                frame[name] = column.astype(float)
                numeric.append(name)
        if problems:
            raise AnalysisError("the data cannot be analysed", problems)
        if columns.baseline_visit is not None:
            frame = frame[frame["visit"] != columns.baseline_visit]
        visits = _visit_order(frame, columns.visits)
        frame = frame[frame["visit"].isin(visits)].copy()
        _check_not_empty(frame, columns, numeric)
        arms = _arm_order(frame, columns.reference)
        _check_consistency(frame, columns, visits, arms)
        frame["visit"] = pd.Categorical(frame["visit"], categories=list(visits), ordered=True)
        frame["arm"] = pd.Categorical(frame["arm"], categories=list(arms))
        frame = frame.sort_values(["participant", "visit"]).reset_index(drop=True)
        return cls(
            frame=frame,
            arms=arms,
            visits=visits,
            outcome=columns.outcome,
            baseline="baseline" if columns.baseline else None,
            numeric_covariates=tuple(numeric),
            categorical_covariates=tuple(categorical),
            categories=categories,
            data_hash=_hash(frame),
        )

    @classmethod
    def from_tidy(
        cls,
        tidy: pd.DataFrame,
        outcome: str,
        *,
        reference: str,
        covariates: Sequence[str] = (),
        baseline_visit: str = "baseline",
        visits: Sequence[str] | None = None,
    ) -> TrialData:
        """From lumbar's tidy dataset (docs/dataset.md): baseline from ``<outcome>_baseline``."""
        baseline = f"{outcome}_baseline"
        return cls.from_frame(
            tidy,
            Columns(
                outcome=outcome,
                baseline=baseline if baseline in tidy.columns else None,
                covariates=tuple(covariates),
                reference=reference,
                baseline_visit=baseline_visit,
                visits=tuple(visits) if visits is not None else None,
            ),
        )

    # ------------------------------------------------------------------ views

    def complete(self) -> pd.DataFrame:
        """Rows with the outcome and every model variable observed (what the models use)."""
        needed = ["y", *(["baseline"] if self.baseline else []), *self.covariates]
        return self.frame.dropna(subset=needed)

    def left_out(self) -> dict[str, tuple[str, ...]]:
        """Participants the models cannot use at all, by the variable they lack.

        A missing outcome at a visit is not here: the MMRM keeps a participant's other
        visits, and multiple imputation fills it in. A missing baseline value or
        covariate leaves the participant out of every model, which must be said.
        """
        needed = [*(["baseline"] if self.baseline else []), *self.covariates]
        gone: dict[str, tuple[str, ...]] = {}
        for name in needed:
            lacking = self.frame.loc[self.frame[name].isna(), "participant"].unique()
            if len(lacking):
                label = self.outcome + " at baseline" if name == "baseline" else name
                gone[label] = tuple(sorted(str(participant) for participant in lacking))
        return gone

    def at_visit(self, visit: str) -> pd.DataFrame:
        rows = self.complete()
        return rows[rows["visit"] == visit]


def _check_not_empty(frame: pd.DataFrame, columns: Columns, numeric: Sequence[str]) -> None:
    """A baseline or covariate column without a single value in the rows analysed would
    leave no participant in any model: name it (not a singular design later)."""
    problems = []
    if columns.baseline and frame["baseline"].isna().all():
        problems.append(
            Problem(
                "baseline",
                f"column {columns.baseline!r} has no value in any row of the visits analysed",
                columns.baseline,
                "check the column, or analyse without a baseline",
            )
        )
    for name in columns.covariates:
        if frame[name].isna().all():
            kind = "numeric" if name in numeric else "categorical"
            problems.append(
                Problem(
                    "covariates",
                    f"{kind} column {name!r} has no value in any row of the visits analysed",
                    name,
                    "check the column, or drop the covariate",
                )
            )
    if problems:
        raise AnalysisError("the data cannot be analysed", problems)


def _numeric(column: pd.Series, name: str, role: str, problems: list[Problem]) -> pd.Series:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        converted = pd.to_numeric(column, errors="coerce")
        bad = column[converted.isna() & column.notna()]
        if len(bad):
            problems.append(
                Problem(
                    f"{role} column {name!r}",
                    "must be numeric",
                    bad.iloc[0],
                    f"{len(bad)} value(s) are not numbers; clean them or choose another column",
                )
            )
        return converted.astype(float)
    values = column.astype(float)
    if np.isinf(values).any():
        problems.append(
            Problem(f"{role} column {name!r}", "must be finite", hint="remove infinite values")
        )
    return values


def _visit_order(frame: pd.DataFrame, declared: tuple[str, ...] | None) -> tuple[str, ...]:
    present = list(dict.fromkeys(frame["visit"]))
    if declared is None:
        visits = tuple(present)
    else:
        unknown = [visit for visit in declared if visit not in present]
        if unknown:
            raise AnalysisError(
                "a visit has no data",
                [
                    Problem(
                        f"visit {visit!r}",
                        "has no rows",
                        hint="the visits in the data are: " + ", ".join(present),
                    )
                    for visit in unknown
                ],
            )
        visits = declared
    empty = [
        visit for visit in visits if frame.loc[frame["visit"] == visit, "y"].notna().sum() == 0
    ]
    constant = [
        visit
        for visit in visits
        if visit not in empty and frame.loc[frame["visit"] == visit, "y"].nunique(dropna=True) < 2
    ]
    if constant:
        raise AnalysisError(
            "the outcome does not vary",
            [
                Problem(
                    f"visit {visit!r}",
                    "every observed outcome value is the same: there is nothing to compare",
                    hint="check the outcome column",
                )
                for visit in constant
            ],
        )
    if empty:
        raise AnalysisError(
            "a visit has no data",
            [
                Problem(
                    f"visit {visit!r}",
                    "has no outcome values",
                    hint="drop the visit, or check the data",
                )
                for visit in empty
            ],
        )
    if not visits:
        raise AnalysisError(
            "no outcome visits",
            [Problem("visit", "no rows after the baseline", hint="check --visit")],
        )
    return visits


def _arm_order(frame: pd.DataFrame, reference: str | None) -> tuple[str, ...]:
    observed = frame.dropna(subset=["y"])
    present = sorted(frame["arm"].unique())
    with_data = set(observed["arm"].unique())
    empty = [arm for arm in present if arm not in with_data]
    if empty:
        raise AnalysisError(
            "an arm has no participants with outcome data",
            [
                Problem(f"arm {arm!r}", "has no outcome values", hint="check the arm column")
                for arm in empty
            ],
        )
    if len(present) < 2:
        raise AnalysisError(
            "fewer than two arms",
            [Problem("arm", "needs at least two arms", present, "check the arm column")],
        )
    if reference is None:
        return tuple(present)
    if reference not in present:
        raise AnalysisError(
            "unknown reference arm",
            [
                Problem(
                    "reference",
                    "is not an arm in the data",
                    reference,
                    "arms: " + ", ".join(present),
                )
            ],
        )
    return (reference, *(arm for arm in present if arm != reference))


def _check_consistency(
    frame: pd.DataFrame, columns: Columns, visits: tuple[str, ...], arms: tuple[str, ...]
) -> None:
    problems = []
    duplicated = frame.duplicated(subset=["participant", "visit"])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        problems.append(
            Problem(
                "rows",
                "each participant has at most one row per visit",
                f"{row['participant']} at {row['visit']}",
                "remove duplicate rows",
            )
        )
    for name in ("arm", *(["baseline"] if columns.baseline else [])):
        varying = frame.groupby("participant")[name].nunique(dropna=True)
        if (varying > 1).any():
            problems.append(
                Problem(
                    f"column {name!r}",
                    "must not change between a participant's rows",
                    varying[varying > 1].index[0],
                    "fix the participant's rows",
                )
            )
    if problems:
        raise AnalysisError("the data cannot be analysed", problems)


def _hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the analysed data in a canonical CSV form (provenance)."""
    text = frame.to_csv(index=False, float_format="%.17g", lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
