"""Table 1: participants' characteristics at baseline, by arm and overall.

CONSORT 2010 (item 15) asks for "a table showing baseline demographic and
clinical characteristics for each group". :func:`baseline_table` builds it from
a participant-level DataFrame (one row per participant); :func:`participant_rows`
makes that frame from lumbar's tidy dataset (``docs/dataset.md``).

What each variable shows, per arm and for all participants together:

- a numeric variable: ``n`` (participants with a value), mean (SD) with the
  sample standard deviation (divisor n - 1), and median [Q1, Q3] with quantiles
  by linear interpolation between order statistics (Hyndman & Fan 1996
  definition 7, R's ``quantile()`` default and NumPy's ``"linear"`` method);
- a categorical or yes/no variable: n (%) for each level, levels in sorted
  order (a pandas ``Categorical`` keeps its own order). Percentages are of the
  participants with a value, so they add up to 100 in every column;
- missing values: always counted in :meth:`BaselineTable.to_frame`, and shown
  as a separate ``missing`` row of :meth:`BaselineTable.wide` when a variable
  has any.

No test of baseline differences is reported: in a randomized trial any
difference at baseline is by chance, and CONSORT advises against such tests
(Altman, The Statistician 1985;34:125-136; CONSORT 2010 explanation, item 15).

Example::

    >>> frame = pd.DataFrame({"arm": ["a", "a", "b"], "age": [40, 50, 60]})
    >>> print(baseline_table(frame, variables=["age"]).wide().to_string(index=False))
        variable           level                 a                 b               all
    Participants               n                 2                 1                 3
             age               n                 2                 1                 3
             age       mean (SD)        45.0 (7.1)         60.0 (NA)       50.0 (10.0)
             age median [Q1, Q3] 45.0 [42.5, 47.5] 60.0 [60.0, 60.0] 50.0 [45.0, 55.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from lumbar.errors import AnalysisError, Problem
from lumbar.formatting import number

__all__ = [
    "ALL",
    "BaselineRow",
    "BaselineTable",
    "baseline_table",
    "participant_rows",
]

ALL = "all"
"""The column for all participants together."""

Kind = Literal["numeric", "categorical"]

TIDY_PER_VISIT = (
    "visit",
    "visit_day",
    "day",
    "status",
    "window",
    "days_from_target",
    "out_of_window",
)
"""Columns of the tidy dataset that change from visit to visit (docs/dataset.md)."""

_NOT_AVAILABLE = "NA"


@dataclass(frozen=True)
class BaselineRow:
    """One number of the table: a statistic of a variable (and level) in one column."""

    variable: str
    level: str | None
    """The category for a categorical variable; None for a numeric one and for counts."""
    statistic: str
    """``n``, ``mean``, ``sd``, ``median``, ``q1``, ``q3``, ``percent`` or ``missing``."""
    arm: str
    """An arm, or :data:`ALL`."""
    value: float
    text: str

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BaselineTable:
    """Baseline characteristics by arm and overall (CONSORT's Table 1)."""

    arm_column: str | None
    """The column of the arms; None for a table of all participants together."""
    arms: tuple[str, ...]
    variables: tuple[str, ...]
    labels: dict[str, str] = field(repr=False)
    kinds: dict[str, Kind] = field(repr=False)
    counts: dict[str, int]
    """Participants per arm and in :data:`ALL`."""
    rows: tuple[BaselineRow, ...] = field(repr=False)
    digits: int = 1

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns: each arm, then all participants."""
        return (*self.arms, ALL)

    def to_frame(self) -> pd.DataFrame:
        """Tidy: one row per variable, level, statistic and column (arm or ``all``)."""
        names = ["variable", "level", "statistic", "arm", "value", "text"]
        return pd.DataFrame([row.row() for row in self.rows], columns=names)

    def wide(self) -> pd.DataFrame:
        """The table as printed: one row per variable and line, one column per arm and ``all``.

        Numeric variables take the lines ``n``, ``mean (SD)`` and ``median [Q1, Q3]``;
        categorical ones a line per level, ``n (%)``; either adds ``missing`` when a
        value is missing anywhere. The first line counts the participants.
        """
        lookup = {(r.variable, r.level, r.statistic, r.arm): r for r in self.rows}
        lines: list[dict[str, str]] = [
            {
                "variable": "Participants",
                "level": "n",
                **{column: str(self.counts[column]) for column in self.columns},
            }
        ]

        def line(variable: str, level: str, texts: Mapping[str, str]) -> None:
            lines.append({"variable": self.labels[variable], "level": level, **texts})

        for variable in self.variables:
            if self.kinds[variable] == "numeric":
                line(variable, "n", {c: lookup[variable, None, "n", c].text for c in self.columns})
                line(
                    variable,
                    "mean (SD)",
                    {c: self._pair(variable, "mean", "sd", c, lookup) for c in self.columns},
                )
                line(
                    variable,
                    "median [Q1, Q3]",
                    {c: self._quartiles(variable, c, lookup) for c in self.columns},
                )
            else:
                for level in self._levels(variable):
                    line(
                        variable,
                        level,
                        {c: self._share(variable, level, c, lookup) for c in self.columns},
                    )
            if lookup[variable, None, "missing", ALL].value > 0:
                line(
                    variable,
                    "missing",
                    {c: lookup[variable, None, "missing", c].text for c in self.columns},
                )
        return pd.DataFrame(lines, columns=["variable", "level", *self.columns])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "baseline_table",
            "arm_column": self.arm_column,
            "arms": list(self.arms),
            "variables": [
                {"variable": v, "label": self.labels[v], "kind": self.kinds[v]}
                for v in self.variables
            ],
            "counts": dict(self.counts),
            "rows": [_json_row(row) for row in self.rows],
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        grouping = "by arm and overall" if self.arms else "for all participants together"
        return (
            f"Baseline characteristics are summarised {grouping}: numeric variables "
            "as mean (SD) and median [first quartile, third quartile] (quantiles by linear "
            "interpolation, Hyndman-Fan type 7), categorical variables as number (percentage) "
            "of the participants with a recorded value; missing values are counted "
            "separately. Baseline differences were not tested."
        )

    def __str__(self) -> str:
        frame = self.wide()
        text = frame.to_string(index=False)
        grouping = f"by {self.arm_column}" if self.arms else "of all participants"
        return f"Baseline characteristics {grouping}\n{text}"

    # ------------------------------------------------------------------ helpers

    def _levels(self, variable: str) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            if row.variable == variable and row.level is not None:
                seen[row.level] = None
        return list(seen)

    def _pair(
        self,
        variable: str,
        first: str,
        second: str,
        column: str,
        lookup: Mapping[tuple[str, str | None, str, str], BaselineRow],
    ) -> str:
        one, two = lookup[variable, None, first, column], lookup[variable, None, second, column]
        if math.isnan(one.value):
            return _NOT_AVAILABLE
        return f"{one.text} ({two.text})"

    def _quartiles(
        self,
        variable: str,
        column: str,
        lookup: Mapping[tuple[str, str | None, str, str], BaselineRow],
    ) -> str:
        median, q1, q3 = (lookup[variable, None, s, column] for s in ("median", "q1", "q3"))
        if math.isnan(median.value):
            return _NOT_AVAILABLE
        return f"{median.text} [{q1.text}, {q3.text}]"

    def _share(
        self,
        variable: str,
        level: str,
        column: str,
        lookup: Mapping[tuple[str, str | None, str, str], BaselineRow],
    ) -> str:
        count, percent = (
            lookup[variable, level, "n", column],
            lookup[variable, level, "percent", column],
        )
        if math.isnan(percent.value):
            return count.text
        return f"{count.text} ({percent.text}%)"


def baseline_table(
    participants: pd.DataFrame,
    *,
    arm: str | None = "arm",
    variables: Sequence[str],
    labels: Mapping[str, str] | None = None,
    arms: Sequence[str] | None = None,
    digits: int = 1,
) -> BaselineTable:
    """Summarise ``variables`` of ``participants`` (one row each) by ``arm`` and overall.

    ``arms`` orders the columns (the sorted arms of the data by default) and must
    name every arm in the data; ``labels`` gives a variable's name in the printed
    table (its column name by default); ``digits`` is the number of decimals of
    means, SDs, quantiles and percentages. With ``arm=None`` the table has one column,
    all participants together (what a blinded reader may see).

    A numeric column is summarised as numbers; a boolean, text or ``Categorical``
    column as categories. Raises :class:`AnalysisError` for a column that is not
    in the data, an empty list of variables or arms, an arm listed but absent from
    the data (or present but not listed), or a participant without an arm.
    """
    labels = dict(labels or {})
    problems = _check_request(participants, arm, variables, labels, arms, digits)
    if problems:
        raise AnalysisError("the baseline table cannot be made", problems)
    ordered: tuple[str, ...] = ()
    columns: dict[str, pd.Series] = {}
    if arm is not None:
        groups = participants[arm]
        ordered = tuple(arms) if arms is not None else tuple(sorted(groups.astype(str).unique()))
        columns = {name: groups.astype(str) == name for name in ordered}
    rows: list[BaselineRow] = []
    kinds: dict[str, Kind] = {}
    columns[ALL] = pd.Series(True, index=participants.index)
    for variable in variables:
        values = participants[variable]
        if _is_numeric(values):
            kinds[variable] = "numeric"
            numbers = values.astype("Float64")
            for column, chosen in columns.items():
                rows.extend(_numeric_rows(variable, column, numbers[chosen], digits))
        else:
            kinds[variable] = "categorical"
            levels = _levels(values)
            text = _as_text(values)
            for column, chosen in columns.items():
                rows.extend(_categorical_rows(variable, column, text[chosen], levels, digits))
    counts = {column: int(chosen.sum()) for column, chosen in columns.items()}
    return BaselineTable(
        arm_column=arm,
        arms=ordered,
        variables=tuple(variables),
        labels={v: labels.get(v, v) for v in variables},
        kinds=kinds,
        counts=counts,
        rows=tuple(rows),
        digits=digits,
    )


def participant_rows(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per participant from lumbar's tidy dataset (one row per participant and visit).

    Keeps the columns that describe a participant rather than a visit:
    ``participant``, ``site``, ``arm``, ``stratum``, every ``stratum_<factor>``, the
    covariates (the columns the schema places between the strata and ``visit``),
    every ``<instrument>_<score>_baseline`` column under its own name, and
    ``synthetic``. Participants keep their order of first appearance.

    Raises :class:`AnalysisError` when ``participant``, ``arm`` or ``visit`` is
    missing, or when a kept column changes between one participant's rows (the
    frame is then not the tidy dataset).
    """
    required = ("participant", "arm", "visit")
    missing = [name for name in required if name not in tidy.columns]
    if missing:
        raise AnalysisError(
            "not lumbar's tidy dataset",
            [
                Problem(
                    f"column {name!r}",
                    "is not in the data",
                    hint="pass the frame Trial.dataset() or 'lumbar export' produced "
                    "(docs/dataset.md)",
                )
                for name in missing
            ],
        )
    names = [str(name) for name in tidy.columns]
    before_visit = names[: names.index("visit")]
    kept = [
        name
        for name in names
        if name in before_visit or name.endswith("_baseline") or name == "synthetic"
    ]
    kept = [name for name in kept if name not in TIDY_PER_VISIT]
    frame = tidy[kept]
    varying = frame.groupby("participant", sort=False, dropna=False).nunique(dropna=False)
    problems = [
        Problem(
            f"column {column!r}",
            "changes between the rows of one participant",
            str(participant),
            "a participant's arm, site, covariates and baseline scores are the same "
            "on every visit's row",
        )
        for column in varying.columns
        for participant in varying.index[varying[column] > 1][:1]
    ]
    if problems:
        raise AnalysisError("not one value per participant", problems)
    return frame.drop_duplicates("participant", keep="first").reset_index(drop=True)


# ---------------------------------------------------------------------- checks


def _check_request(
    participants: pd.DataFrame,
    arm: str | None,
    variables: Sequence[str],
    labels: Mapping[str, str],
    arms: Sequence[str] | None,
    digits: int,
) -> list[Problem]:
    columns = ", ".join(map(str, participants.columns))
    problems: list[Problem] = []
    if isinstance(variables, str):
        problems.append(
            Problem("variables", "must be a list of column names", variables, f"[{variables!r}]")
        )
        return problems
    if not variables:
        problems.append(Problem("variables", "must name at least one column", [], columns))
    for name in [*([] if arm is None else [arm]), *variables]:
        if name not in participants.columns:
            problems.append(
                Problem(
                    f"column {name!r}", "is not in the data", hint="the columns are: " + columns
                )
            )
    repeated = sorted({name for name in variables if list(variables).count(name) > 1})
    if repeated:
        problems.append(Problem("variables", "lists a column twice", repeated, "list each once"))
    if arm is not None and arm in variables:
        problems.append(
            Problem("variables", "includes the arm column", arm, "the arms are the table's columns")
        )
    unknown_labels = sorted(set(labels) - set(variables))
    if unknown_labels:
        problems.append(
            Problem("labels", "names columns that are not variables", unknown_labels, "drop them")
        )
    if digits < 0:
        problems.append(Problem("digits", "must be 0 or more", digits))
    if arms is not None and not arms:
        problems.append(
            Problem("arms", "is empty", [], "list the arms in the order of the columns, or omit it")
        )
    if arm is None:
        if arms:
            problems.append(Problem("arms", "needs an arm column", list(arms), "give arm"))
        return problems
    if arm not in participants.columns:
        return problems
    groups = participants[arm]
    if groups.isna().any():
        problems.append(
            Problem(
                f"column {arm!r}",
                "is empty for some participants",
                int(groups.isna().sum()),
                "give every participant an arm, or drop those rows",
            )
        )
    present = sorted(groups.dropna().astype(str).unique())
    if ALL in present or (arms is not None and ALL in arms):
        problems.append(
            Problem(f"column {arm!r}", f"has an arm named {ALL!r}, the overall column", ALL)
        )
    if arms:
        absent = [name for name in arms if name not in present]
        if absent:
            problems.append(
                Problem(
                    "arms",
                    "names arms with no participants in the data",
                    absent,
                    "the arms in the data are: " + ", ".join(present),
                )
            )
        unlisted = [name for name in present if name not in arms]
        if unlisted:
            problems.append(
                Problem(
                    "arms",
                    "leaves out arms that are in the data",
                    unlisted,
                    "list every arm, or drop those participants first",
                )
            )
        if len(set(arms)) != len(arms):
            problems.append(Problem("arms", "lists an arm twice", list(arms), "list each once"))
    return problems


# ---------------------------------------------------------------------- summaries


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _levels(values: pd.Series) -> list[str]:
    """The categories in order: a Categorical's own order, otherwise sorted."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(level) for level in values.cat.categories]
    present = values.dropna().unique().tolist()
    try:
        present = sorted(present)
    except TypeError:  # mixed types: sort by their text
        present = sorted(present, key=str)
    return list(dict.fromkeys(_text(value) for value in present))


def _text(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return str(value)


def _as_text(values: pd.Series) -> pd.Series:
    return values.map(lambda value: None if _missing(value) else _text(value))


def _missing(value: object) -> bool:
    """None, NaN, pd.NA or NaT: pandas' missing-value markers."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _numeric_rows(variable: str, column: str, values: pd.Series, digits: int) -> list[BaselineRow]:
    present = values.dropna().to_numpy(dtype=float)
    missing = int(values.isna().sum())
    count = len(present)
    mean = float(np.mean(present)) if count else math.nan
    sd = float(np.std(present, ddof=1)) if count > 1 else math.nan
    if count:
        q1, median, q3 = (float(q) for q in np.quantile(present, [0.25, 0.5, 0.75]))
    else:
        q1 = median = q3 = math.nan
    numbers = (
        ("n", float(count), str(count)),
        ("mean", mean, _number(mean, digits)),
        ("sd", sd, _number(sd, digits)),
        ("median", median, _number(median, digits)),
        ("q1", q1, _number(q1, digits)),
        ("q3", q3, _number(q3, digits)),
        ("missing", float(missing), str(missing)),
    )
    return [BaselineRow(variable, None, name, column, value, text) for name, value, text in numbers]


def _categorical_rows(
    variable: str, column: str, values: pd.Series, levels: Sequence[str], digits: int
) -> list[BaselineRow]:
    missing = int(values.isna().sum())
    present = values.dropna()
    count = len(present)
    tallies = present.value_counts()
    rows = [BaselineRow(variable, None, "n", column, float(count), str(count))]
    for level in levels:
        number = int(tallies.get(level, 0))
        percent = 100.0 * number / count if count else math.nan
        rows.append(BaselineRow(variable, level, "n", column, float(number), str(number)))
        rows.append(
            BaselineRow(variable, level, "percent", column, percent, _number(percent, digits))
        )
    rows.append(BaselineRow(variable, None, "missing", column, float(missing), str(missing)))
    return rows


def _number(value: float, digits: int) -> str:
    """The one number format (lumbar.formatting); "NA" for a statistic that cannot be had
    (the SD of one value), as Table 1 conventionally prints it."""
    if math.isnan(value):
        return _NOT_AVAILABLE
    return number(value, digits)


def _json_row(row: BaselineRow) -> dict[str, Any]:
    data = row.row()
    if math.isnan(row.value):
        data["value"] = None
    return data
