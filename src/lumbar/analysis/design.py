"""Design matrices for the trial models, and the rows that define LS means and contrasts.

Coding (the same for every model, so contrasts mean the same thing):

- arms: treatment coding, the reference arm is the baseline level;
- visits (repeated measures): one indicator per visit, no overall intercept;
- the baseline score: one slope (ANCOVA) or one slope per visit (MMRM);
- numeric covariates: as they are; categorical covariates: treatment coding
  with the first level (sorted) as reference.

LS means set numeric covariates (and the baseline) at their mean over the rows
the model used, and average categorical covariates with equal weights over
their levels. That is emmeans' default, except that emmeans treats a numeric
covariate with only two values (a 0/1 indicator) as a factor; lumbar keeps it
numeric at its mean (emmeans with ``cov.keep = character(0)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lumbar.analysis.data import TrialData
from lumbar.errors import Problem

__all__ = ["Design", "ancova_design", "dependence_problems", "gee_design", "mmrm_design"]


@dataclass(frozen=True)
class Design:
    """A design matrix with named columns, and how to build LS-mean rows for it."""

    matrix: np.ndarray
    names: tuple[str, ...]
    covariate_row: dict[str, float]
    """The value each covariate column takes in an LS-mean row."""

    def column(self, name: str) -> int:
        return self.names.index(name)

    def lsmean_row(self, arm: str, visit: str | None, reference: str) -> np.ndarray:
        """The row L with L @ beta = the LS mean of ``arm`` (at ``visit`` for MMRM)."""
        row = np.zeros(len(self.names))
        for name, value in self.covariate_row.items():
            if name in self.names:  # the MMRM's baseline slopes are per visit: set below
                row[self.column(name)] = value
        if visit is None:
            row[self.column("(intercept)")] = 1.0
            if arm != reference:
                row[self.column(f"arm[{arm}]")] = 1.0
            return row
        row[self.column(f"visit[{visit}]")] = 1.0
        if arm != reference:
            row[self.column(f"arm[{arm}]:visit[{visit}]")] = 1.0
        baseline = f"baseline:visit[{visit}]"
        if baseline in self.names:
            row[self.column(baseline)] = self.covariate_row["baseline"]
        return row

    def contrast_row(self, arm: str, visit: str | None) -> np.ndarray:
        """The row L with L @ beta = arm minus reference (at ``visit`` for MMRM)."""
        row = np.zeros(len(self.names))
        name = f"arm[{arm}]" if visit is None else f"arm[{arm}]:visit[{visit}]"
        row[self.column(name)] = 1.0
        return row


def _covariate_columns(
    data: TrialData, rows: pd.DataFrame
) -> tuple[list[np.ndarray], list[str], dict[str, float]]:
    columns: list[np.ndarray] = []
    names: list[str] = []
    averages: dict[str, float] = {}
    for name in data.numeric_covariates:
        values = rows[name].to_numpy(dtype=float)
        columns.append(values)
        names.append(name)
        averages[name] = float(values.mean())
    for name in data.categorical_covariates:
        levels = data.categories[name]
        for level in levels[1:]:
            columns.append((rows[name] == level).to_numpy(dtype=float))
            label = f"{name}[{level}]"
            names.append(label)
            averages[label] = 1.0 / len(levels)
    return columns, names, averages


def ancova_design(data: TrialData, rows: pd.DataFrame) -> Design:
    """``y ~ arm + baseline + covariates`` for the rows of one visit."""
    columns = [np.ones(len(rows))]
    names = ["(intercept)"]
    averages: dict[str, float] = {}
    arm = rows["arm"].astype(str).to_numpy()
    for level in data.arms[1:]:
        columns.append((arm == level).astype(float))
        names.append(f"arm[{level}]")
    if data.baseline:
        baseline = rows["baseline"].to_numpy(dtype=float)
        columns.append(baseline)
        names.append("baseline")
        averages["baseline"] = float(baseline.mean())
    extra, extra_names, extra_averages = _covariate_columns(data, rows)
    columns.extend(extra)
    names.extend(extra_names)
    averages.update(extra_averages)
    return Design(np.column_stack(columns), tuple(names), averages)


def mmrm_design(data: TrialData, rows: pd.DataFrame) -> Design:
    """``y ~ 0 + visit + arm:visit + baseline:visit + covariates``."""
    return _repeated_design(data, rows, baseline_by_visit=True)


def gee_design(data: TrialData, rows: pd.DataFrame) -> Design:
    """``y ~ 0 + visit + arm:visit + baseline + covariates`` (one baseline slope)."""
    return _repeated_design(data, rows, baseline_by_visit=False)


def _repeated_design(data: TrialData, rows: pd.DataFrame, *, baseline_by_visit: bool) -> Design:
    visit = rows["visit"].astype(str).to_numpy()
    arm = rows["arm"].astype(str).to_numpy()
    columns: list[np.ndarray] = []
    names: list[str] = []
    for level in data.visits:
        columns.append((visit == level).astype(float))
        names.append(f"visit[{level}]")
    for arm_level in data.arms[1:]:
        for level in data.visits:
            columns.append(((arm == arm_level) & (visit == level)).astype(float))
            names.append(f"arm[{arm_level}]:visit[{level}]")
    averages: dict[str, float] = {}
    if data.baseline:
        baseline = rows["baseline"].to_numpy(dtype=float)
        if baseline_by_visit:
            for level in data.visits:
                columns.append(baseline * (visit == level))
                names.append(f"baseline:visit[{level}]")
        else:
            columns.append(baseline)
            names.append("baseline")
        averages["baseline"] = float(baseline.mean())
    extra, extra_names, extra_averages = _covariate_columns(data, rows)
    columns.extend(extra)
    names.extend(extra_names)
    averages.update(extra_averages)
    return Design(np.column_stack(columns), tuple(names), averages)


def dependence_problems(design: Design, visit: str | None = None) -> list[Problem]:
    """Why the columns of ``design`` are not linearly independent, in the data's words:
    the first column that is a combination of the ones before it, named as the arm
    without data at a visit, the covariate (or baseline) without values or constant,
    or the covariates that are collinear. Empty when the columns are independent."""
    matrix = design.matrix
    rows, width = matrix.shape
    where = "" if visit is None else f" at visit {visit!r}"
    if rows == 0:
        return [
            Problem(
                "rows",
                f"no participant has the outcome, baseline and every covariate{where}",
                0,
                "check the data at this visit",
            )
        ]
    for index in range(width):
        if np.linalg.matrix_rank(matrix[:, : index + 1]) == index + 1:
            continue
        return [_dependent_column(design, index, where)]
    return []


def _dependent_column(design: Design, index: int, where: str) -> Problem:
    matrix, names = design.matrix, design.names
    name = names[index]
    column = matrix[:, index]
    arm, visit = _arm_and_visit(name)
    if arm is not None and not column.any():
        at = where if visit is None else f" at visit {visit!r}"
        return Problem("arm", f"{arm!r} has no participant with data{at}", arm, "check the data")
    if name.startswith("visit[") and not column.any():
        return Problem("visits", "has no data", name[6:-1], "leave the visit out")
    source, role = _source(name)
    if not column.any() and "[" in name:
        return Problem(
            role,
            f"level {name[len(source) + 1 : -1]!r} of {source!r} has no participant{where}",
            source,
            "drop the covariate or merge its levels",
        )
    if np.ptp(column) == 0:
        return Problem(
            role, f"{source!r} is constant{where}: {column[0]:g} in every row", source, "drop it"
        )
    earlier = matrix[:, :index]
    coefficients = np.linalg.lstsq(earlier, column, rcond=None)[0]
    partners = [
        _source(names[j])[0]
        for j in np.flatnonzero(np.abs(coefficients) > 1e-8 * max(1.0, np.abs(coefficients).max()))
        if names[j] != "(intercept)" and not names[j].startswith("visit[")
    ]
    partners = list(dict.fromkeys(partner for partner in partners if partner != source))
    if not partners:
        return Problem(
            role, f"{source!r} is constant{where} within the model's groups", source, "drop it"
        )
    together = " and ".join(repr(partner) for partner in [*partners, source])
    return Problem(
        "covariates",
        f"{together} are collinear{where}: {source!r} is a linear function of "
        + ", ".join(repr(partner) for partner in partners),
        source,
        "drop one of them",
    )


def _arm_and_visit(name: str) -> tuple[str | None, str | None]:
    """('A', 'V') for 'arm[A]:visit[V]', ('A', None) for 'arm[A]', else (None, None)."""
    if not name.startswith("arm["):
        return None, None
    arm, _, rest = name[4:].partition("]")
    visit = rest.removeprefix(":visit[").removesuffix("]") if rest else None
    return arm, visit


def _source(name: str) -> tuple[str, str]:
    """The data's name for a design column, and the parameter that chose it."""
    if name == "baseline" or name.startswith("baseline:"):
        return "baseline", "baseline"
    if name.startswith("arm["):
        return _arm_and_visit(name)[0] or name, "arm"
    return name.split("[", 1)[0], "covariates"
