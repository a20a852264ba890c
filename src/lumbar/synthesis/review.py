"""Reviewing a study table: pool it, set aside what cannot be pooled, and probe the result.

:func:`review` is what ``lumbar meta`` runs, and what a report can run: read the
table (:func:`~lumbar.synthesis.studies.read_studies`), pool it (with a trial's
own rows added, before and after: :func:`~lumbar.synthesis.studies.place_trial`),
then the subgroups, leave-one-out, cumulative pooling and Egger's test. An
analysis the data cannot support becomes a note with its reason, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
from scipy import stats

from lumbar.errors import Problem, SynthesisError
from lumbar.formatting import SYNTHETIC
from lumbar.synthesis.effects import Measure
from lumbar.synthesis.heterogeneity import (
    EggerTest,
    SubgroupAnalysis,
    cumulative,
    egger_not_estimable,
    egger_test,
    leave_one_out,
    subgroups,
)
from lumbar.synthesis.models import MetaResult, Method, meta_analysis
from lumbar.synthesis.studies import StudyTable, place_trial, read_studies

__all__ = ["MISSING_GROUP", "MODEL_NAMES", "Review", "review"]

MODEL_NAMES = {
    "FE": "Common effect",
    "DL": "Random effects, DL",
    "REML": "Random effects, REML",
    "PM": "Random effects, PM",
    "ML": "Random effects, ML",
}
MISSING_GROUP = "not given"


@dataclass
class Review:
    """Everything one review of a study table computed: the model, the studies set aside,
    and the probes (subgroups, leave-one-out, cumulative pooling, Egger's test)."""

    measure: str
    method: str
    hksj: bool
    level: float
    table: StudyTable
    model: MetaResult
    excluded: list[tuple[str, str]]
    trial_rows: pd.DataFrame | None = None
    trial_synthetic: bool = False
    before: MetaResult | None = None
    subgroup: SubgroupAnalysis | None = None
    groups: list[str] | None = None
    order: np.ndarray | None = None
    leave_one_out: pd.DataFrame | None = None
    cumulative: pd.DataFrame | None = None
    egger: EggerTest | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> bool:
        return self.measure in ("RR", "OR")

    @property
    def synthetic(self) -> bool:
        """A synthetic trial added, or rows it once wrote (read back from a studies.csv)."""
        if self.trial_rows is not None and self.trial_synthetic:
            return True
        return any(name.startswith("SYNTHETIC") for name in self.table.effects.studies)

    @property
    def digits(self) -> int:
        """Decimals shown: risks differ in the second or third decimal."""
        return 3 if self.measure == "RD" else 2

    @property
    def alpha(self) -> float:
        return 1 - self.level

    def shown(self, value: float) -> float:
        return math.exp(value) if self.ratio and math.isfinite(value) else value

    def this_trial(self) -> np.ndarray:
        if "this_trial" not in self.table.rows.columns:
            return np.zeros(self.table.effects.k, dtype=bool)
        return np.array(
            [
                str(value).strip().lower() in ("true", "1", "yes")
                for value in self.table.rows["this_trial"]
            ]
        )

    def display_order(self) -> np.ndarray:
        count = self.table.effects.k
        return np.arange(count) if self.order is None else np.argsort(self.order, kind="stable")

    def studies_frame(self) -> pd.DataFrame:
        """studies.csv: the pooled scale, the scale shown, weights, then the input columns."""
        effects = self.table.effects
        z = float(stats.norm.ppf(1 - self.alpha / 2))
        frame = pd.DataFrame(
            {
                "study": effects.studies,
                "this_trial": self.this_trial(),
                "yi": effects.yi,
                "vi": effects.vi,
                "sei": effects.sei,
                "estimate": [self.shown(v) for v in effects.yi],
                "ci_lower": [self.shown(v) for v in effects.yi - z * effects.sei],
                "ci_upper": [self.shown(v) for v in effects.yi + z * effects.sei],
                "weight": self.model.weights,
            }
        )
        if self.groups is not None:
            frame.insert(2, "subgroup", self.groups)
        if self.before is not None:
            published = dict(zip(self.before.studies, self.before.weights, strict=True))
            frame["weight_published_only"] = [published.get(name) for name in effects.studies]
        if effects.corrected:
            frame["continuity_correction"] = effects.corrected
        inputs = self.table.rows.drop(columns=[c for c in frame.columns if c in self.table.rows])
        frame = pd.concat([frame, inputs.reset_index(drop=True)], axis=1)
        return frame.iloc[self.display_order()].reset_index(drop=True)

    def with_ratios(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` with exponentiated ``exp_*`` columns beside log-ratio estimates."""
        if not self.ratio:
            return table
        table = table.copy()
        for name in ("estimate", "lower", "upper", "prediction_lower", "prediction_upper"):
            if name in table.columns:
                table[f"exp_{name}"] = np.exp(table[name].astype(float))
        return table

    @property
    def model_label(self) -> str:
        if self.trial_rows is not None:
            return "with this trial" + (f", {SYNTHETIC}" if self.trial_synthetic else "")
        return MODEL_NAMES[self.model.method] + (" + HKSJ" if self.model.hksj else "")

    def pooled_frame(self) -> pd.DataFrame:
        rows = [(self.model_label, self.model)]
        if self.before is not None:
            rows.insert(0, ("published studies only", self.before))
        records = []
        for label, result in rows:
            low, high = result.prediction or (math.nan, math.nan)
            records.append(
                {
                    "model": label,
                    "k": result.k,
                    **{
                        k: v
                        for k, v in result.pooled.row().items()
                        if k not in ("label", "visit", "arm", "n", "df")
                    },
                    "df": result.df,
                    "tau2": result.tau2,
                    "i2": result.i2,
                    "h2": result.h2,
                    "q": result.q,
                    "q_df": result.q_df,
                    "q_p": result.q_p,
                    "prediction_lower": low,
                    "prediction_upper": high,
                }
            )
        return self.with_ratios(pd.DataFrame(records))


def _probes(run: Review, order_values: pd.Series | None) -> None:
    """Leave-one-out, cumulative pooling and Egger's test; what cannot be done becomes a note."""
    effects = run.table.effects
    method = cast(Method, run.method)
    try:
        run.leave_one_out = leave_one_out(effects, method, hksj=run.hksj, alpha=run.alpha)
    except SynthesisError as error:
        run.notes.append(f"Leave-one-out was not done: {_reason(error)}.")
    if order_values is not None:
        try:
            order = None if run.order is None else run.order.tolist()
            run.cumulative = cumulative(effects, order, method, hksj=run.hksj, alpha=run.alpha)
        except SynthesisError as error:
            run.notes.append(f"Cumulative pooling was not done: {_reason(error)}.")
    reason = egger_not_estimable(effects) if effects.k >= 3 else ""
    if reason:
        run.notes.append(f"Egger's test is not estimable: {reason}.")
        return
    try:
        run.egger = egger_test(effects, "lm", method)
        if run.egger.note:
            run.notes.append(f"Egger's test: {run.egger.note}.")
    except SynthesisError as error:
        run.notes.append(f"Egger's test was not done: {_reason(error)}.")


def _check_poolable(table: StudyTable, aside: Sequence[tuple[str, str]] = ()) -> None:
    """Fewer than two usable studies: say which one is left and why each other study
    was set aside, rather than only that two are needed."""
    if table.effects.k >= 2:
        return
    excluded = list(dict.fromkeys([*aside, *table.excluded]))
    problems = [
        Problem(
            "studies",
            f"only {table.effects.k} can be pooled, at least 2 are needed; "
            f"{len(excluded)} set aside (below)",
            list(table.effects.studies),
            "complete the set-aside studies' numbers, or add studies",
        ),
        *(Problem(f"study {study!r}", f"set aside: {reason}") for study, reason in excluded),
    ]
    raise SynthesisError("cannot pool the studies", problems)


def _reason(error: SynthesisError) -> str:
    parts = [
        f"{p.rule} ({p.where}: {p.received})" if p.has_value else f"{p.rule} ({p.where})"
        for p in error.problems
    ]
    return f"{error.summary}: " + "; ".join(parts) if parts else error.summary


def _ordering(values: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    """Numbers to sort by (years); text sorts alphabetically; rows without a value go last."""
    numbers = pd.to_numeric(values, errors="coerce")
    present = values.notna()
    notes = []
    if numbers[present].isna().any():
        text = values.astype(str).where(present)
        numbers = text.rank(method="first")
    if not present.all():
        notes.append(f"Studies without a value of {name!r} come last in the cumulative pooling.")
    return numbers.fillna(np.inf).to_numpy(dtype=float), notes


def review(
    frame: pd.DataFrame,
    *,
    measure: str,
    method: str,
    hksj: bool,
    level: float,
    columns: dict[str, str],
    trial_rows: pd.DataFrame | None = None,
    trial_synthetic: bool = False,
    subgroup: str | None = None,
    order_by: str | None = None,
) -> Review:
    """Review a study table: pool it (with ``trial_rows`` added, before and after: a trial's
    own result, from :func:`lumbar.application.trial_rows`), and probe the result.
    ``columns`` maps lumbar's names to the table's; ``subgroup`` and ``order_by`` name the
    table's own columns."""
    effect, chosen, alpha = cast(Measure, measure), cast(Method, method), 1 - level
    published = read_studies(frame, effect, columns=columns)
    before = None
    notes = []
    if trial_rows is None:
        table = published
        _check_poolable(table)
        model = meta_analysis(table.effects, chosen, hksj=hksj, alpha=alpha)
    elif published.effects.k >= 2:
        placement = place_trial(published.rows, trial_rows, effect, chosen, hksj=hksj, alpha=alpha)
        table, model, before = placement.combined, placement.after, placement.before
    else:
        table = read_studies(pd.concat([published.rows, trial_rows], ignore_index=True), effect)
        _check_poolable(table, published.excluded)
        model = meta_analysis(table.effects, chosen, hksj=hksj, alpha=alpha)
        notes.append(
            f"The published studies alone were not pooled: {published.effects.k} can be used."
        )
    excluded = list(dict.fromkeys([*published.excluded, *table.excluded]))
    run = Review(
        measure,
        method,
        hksj,
        level,
        table,
        model,
        excluded,
        trial_rows,
        trial_synthetic,
        before,
        notes=[*notes, *model.notes],
    )
    own = {theirs: ours for ours, theirs in columns.items()}  # names after --column
    if subgroup is not None:
        values = table.column(own.get(subgroup, subgroup))
        run.groups = [MISSING_GROUP if pd.isna(v) else str(v) for v in values]
        run.subgroup = subgroups(
            table.effects, run.groups, chosen, variable=subgroup, hksj=hksj, alpha=alpha
        )
    order_values = None
    if order_by is not None:
        order_values = table.column(own.get(order_by, order_by))
        run.order, ordering = _ordering(order_values, order_by)
        run.notes += ordering
    _probes(run, order_values)
    return run
