"""The pre-specified analysis of one outcome, run whole, and written to results.json and CSVs.

:func:`analyze` runs every estimator on one :class:`TrialData`: ANCOVA at each
visit, the MMRM, the protocol's GEE (when there is a baseline), multiple
imputation with its tipping-point analysis, and the responder analyses under
every definition. :func:`write_results` writes ``results.json`` (schema:
docs/analysis.md) and one CSV per table, each stamped with its provenance in
leading ``#`` lines (read them with ``pandas.read_csv(path, comment="#")`` or
R's ``read.csv(path, comment.char = "#")``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from lumbar import __version__
from lumbar.analysis.ancova import AncovaResult, ancova
from lumbar.analysis.baseline import BaselineTable, baseline_table, participant_rows
from lumbar.analysis.consort import ConsortFlow, consort_counts
from lumbar.analysis.data import TrialData
from lumbar.analysis.gee import GeeResult, gee
from lumbar.analysis.imputation import (
    ImputationResult,
    TippingPointResult,
    multiple_imputation,
    tipping_point,
)
from lumbar.analysis.mmrm import MmrmResult, mmrm
from lumbar.analysis.responders import (
    Definition,
    ResponderResult,
    definitions_from,
    responders,
)
from lumbar.analysis.results import Provenance
from lumbar.errors import AnalysisError, ConvergenceError, Problem
from lumbar.instruments import INSTRUMENTS
from lumbar.protocol import Protocol

__all__ = [
    "RESULTS_FORMAT",
    "SYNTHETIC_STAMP",
    "OutcomeAnalysis",
    "Settings",
    "TrialAnalysis",
    "analyze",
    "analyze_trial",
    "json_ready",
    "primary_outcome_columns",
    "write_csv",
    "write_results",
]

_T = TypeVar("_T")

SYNTHETIC_STAMP = "# SYNTHETIC DATA: simulated participants, not a real trial"

RESULTS_FORMAT = 1
"""Version of the results.json schema (docs/analysis.md, "results.json")."""


@dataclass(frozen=True)
class Settings:
    """Options of the pre-specified analysis (every one recorded in the provenance)."""

    alpha: float = 0.05
    covariance: str = "unstructured"
    robust: bool = False
    direction: Literal["higher_is_worse", "higher_is_better"] = "higher_is_worse"
    imputations: int = 20
    imputation_method: Literal["pmm", "norm"] = "pmm"
    seed: int = 20110705
    """Default seed: the reference trial's publication date (Ann Intern Med, 5 July 2011)."""
    deltas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    definitions: tuple[Definition, ...] = ()
    include_gee: bool = True
    include_imputation: bool = True


@dataclass(frozen=True)
class OutcomeAnalysis:
    """Every result for one outcome, with where it came from."""

    outcome: str
    provenance: Provenance
    ancova: AncovaResult
    mmrm: MmrmResult
    gee: GeeResult | None
    imputation: ImputationResult | None
    tipping_point: TippingPointResult | None
    responders: ResponderResult | None
    participants: int
    arms: tuple[str, ...]
    visits: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table, by the name of its CSV file (without .csv)."""
        tables = {
            "ancova": self.ancova.to_frame(),
            "ancova_lsmeans": self.ancova.lsmeans_frame(),
            "mmrm": self.mmrm.to_frame(),
            "mmrm_lsmeans": self.mmrm.lsmeans_frame(),
            "mmrm_covariance": self.mmrm.covariance_frame().reset_index(names="visit"),
        }
        if self.gee is not None:
            tables["gee"] = self.gee.to_frame()
        if self.imputation is not None:
            tables["imputation"] = self.imputation.to_frame()
        if self.tipping_point is not None:
            tables["tipping_point"] = self.tipping_point.to_frame()
        if self.responders is not None:
            tables["responders"] = self.responders.to_frame()
            tables["responder_comparisons"] = self.responders.comparisons_frame()
            tables["responder_curve"] = self.responders.curve
        return {f"{self.outcome}_{name}": table for name, table in tables.items()}

    def to_dict(self) -> dict[str, Any]:
        parts: dict[str, Any] = {
            "outcome": self.outcome,
            "participants": self.participants,
            "arms": list(self.arms),
            "visits": list(self.visits),
            "provenance": self.provenance.to_dict(),
            "ancova": self.ancova.to_dict(),
            "mmrm": self.mmrm.to_dict(),
            "notes": list(self.notes),
        }
        for name in ("gee", "imputation", "tipping_point", "responders"):
            result = getattr(self, name)
            parts[name] = None if result is None else result.to_dict()
        return parts

    def method_text(self) -> str:
        parts = [self.ancova.method_text, self.mmrm.method_text]
        for name in ("gee", "imputation", "tipping_point", "responders"):
            result = getattr(self, name)
            if result is not None:
                parts.append(result.method_text)
        return " ".join(parts)

    def __str__(self) -> str:
        parts = [str(self.ancova), str(self.mmrm)]
        for name in ("gee", "imputation", "tipping_point"):
            result = getattr(self, name)
            if result is not None:
                parts.append(str(result))
        return "\n\n".join(parts)


def analyze(
    data: TrialData,
    settings: Settings = Settings(),
    *,
    protocol_hash: str | None = None,
    notes: Sequence[str] = (),
) -> OutcomeAnalysis:
    """Run the whole pre-specified analysis of ``data``'s outcome (``notes`` are carried into
    the result, for what the caller changed)."""
    options = _options(settings)
    notes = list(notes)
    # The main models first: their errors say most plainly what is wrong with the data.
    ancova_result = ancova(data, robust=settings.robust, alpha=settings.alpha)
    mmrm_result = _mmrm_with_fallback(data, settings, notes)
    gee_result = None
    if settings.include_gee and data.baseline is not None:
        gee_result = _secondary("GEE", notes, lambda: gee(data, alpha=settings.alpha))
    imputation = tipping = None
    if settings.include_imputation and data.baseline is not None:
        if data.frame["y"].isna().any() or _absent_rows(data):
            imputation = _secondary(
                "Multiple imputation",
                notes,
                lambda: multiple_imputation(
                    data,
                    m=settings.imputations,
                    method=settings.imputation_method,
                    seed=settings.seed,
                    alpha=settings.alpha,
                ),
            )
            if imputation is not None:
                done = imputation
                tipping = _secondary(
                    "The tipping-point analysis",
                    notes,
                    lambda: tipping_point(
                        data, done, settings.deltas, direction=settings.direction
                    ),
                )
        else:
            notes.append("No outcome values are missing: multiple imputation was not needed.")
    responder_result = None
    if settings.definitions and data.baseline is not None:
        responder_result = _secondary(
            "The responder analysis",
            notes,
            lambda: responders(
                data, settings.definitions, direction=settings.direction, alpha=settings.alpha
            ),
        )
    elif not settings.definitions:
        notes.append("No thresholds for meaningful change were given: no responder analysis.")
    return OutcomeAnalysis(
        outcome=data.outcome,
        provenance=Provenance(__version__, data.data_hash, protocol_hash, options, settings.seed),
        ancova=ancova_result,
        mmrm=mmrm_result,
        gee=gee_result,
        imputation=imputation,
        tipping_point=tipping,
        responders=responder_result,
        participants=data.participants,
        arms=data.arms,
        visits=data.visits,
        notes=tuple(notes),
    )


FALLBACK_COVARIANCES = ("toeplitz", "ar1", "compound_symmetry")
"""Simpler structures tried in turn when the pre-specified MMRM covariance does not converge
(the usual pre-specified fallback order: fewer parameters each step)."""


def _mmrm_with_fallback(data: TrialData, settings: Settings, notes: list[str]) -> MmrmResult:
    """The MMRM with the pre-specified covariance, or, when it does not converge, the first
    simpler structure that does, with a note saying so. Other errors are raised as they are."""
    try:
        return mmrm(data, covariance=settings.covariance, alpha=settings.alpha)
    except ConvergenceError as first:
        for structure_name in FALLBACK_COVARIANCES:
            if structure_name == settings.covariance:
                continue
            try:
                result = mmrm(data, covariance=structure_name, alpha=settings.alpha)
            except ConvergenceError:
                continue
            notes.append(
                f"The MMRM with {settings.covariance} covariance did not converge "
                f"({first.problems[0].rule if first.problems else first.summary}); "
                f"it was fitted with {structure_name.replace('_', ' ')} covariance instead."
            )
            return result
        raise


def _secondary(name: str, notes: list[str], run: Callable[[], _T]) -> _T | None:
    """Run a supporting analysis; when the data cannot support it, say why in ``notes``.

    The primary models (ANCOVA and MMRM) raise: without them there is no result. A
    sensitivity or secondary analysis that the data cannot support (too few observed values
    to impute in an arm early in a trial, say) is left out with the reason, so the rest of
    the analysis and the report still stand.
    """
    try:
        return run()
    except AnalysisError as error:
        reason = "; ".join(f"{p.where}: {p.rule}" for p in error.problems) or error.summary
        notes.append(f"{name} was not done: {error.summary} ({reason}).")
        return None


@dataclass(frozen=True)
class TrialAnalysis:
    """A trial analysed as its protocol pre-specifies: every primary outcome, Table 1, CONSORT."""

    trial: str
    protocol_version: str
    protocol_hash: str
    reference: str
    arms: tuple[str, ...]
    """Reference first; masked ("group A"...) when the data came to a blinded user."""
    blinded: bool
    synthetic: bool
    outcomes: tuple[OutcomeAnalysis, ...]
    baseline: BaselineTable
    consort: ConsortFlow

    def outcome(self, name: str) -> OutcomeAnalysis:
        for analysis in self.outcomes:
            if analysis.outcome == name:
                return analysis
        raise KeyError(name)

    def extra(self) -> dict[str, Any]:
        """What results.json holds beside the outcomes."""
        return {
            "source": {"trial": self.trial, "protocol_version": self.protocol_version},
            "blinded": self.blinded,
            "synthetic": self.synthetic,
            "baseline_table": self.baseline.to_dict(),
            "consort": self.consort.to_dict(),
        }

    def extra_tables(self) -> dict[str, pd.DataFrame]:
        return {
            "baseline_table": self.baseline.wide(),
            "consort": self.consort.to_frame(),
        }

    def write(self, out: Path) -> list[Path]:
        """results.json and every table as CSV, into ``out``."""
        return write_results(
            self.outcomes,
            out,
            extra=self.extra(),
            extra_tables=self.extra_tables(),
            synthetic=self.synthetic,
        )


def primary_outcome_columns(protocol: Protocol) -> list[tuple[str, str, str]]:
    """(dataset column, instrument, direction) of each primary outcome, in protocol order."""
    found: list[tuple[str, str, str]] = []
    for item in protocol.primary_outcomes:
        score = INSTRUMENTS.get(item.instrument).score(item.score)
        found.append((f"{item.instrument}_{score.id}", item.instrument, score.direction))
    return found


def analyze_trial(
    protocol: Protocol,
    tidy: pd.DataFrame,
    consort_records: pd.DataFrame,
    settings: Settings = Settings(),
    *,
    outcome: str | None = None,
) -> TrialAnalysis:
    """Analyse a trial's tidy dataset (docs/dataset.md) as ``protocol`` pre-specifies.

    Each primary outcome (or only ``outcome``, a dataset column) gets :func:`analyze`
    with the protocol's covariates, visits and thresholds for meaningful change;
    Table 1 and the CONSORT counts come with them. When the arms are masked (the
    data of a blinded user) the reference is the first masked group, and says so.
    """
    blinded = not tidy.empty and tidy["arm"].astype(str).str.startswith("group ").all()
    reference = sorted(tidy["arm"].unique())[0] if blinded else protocol.analysis.reference_arm
    arms = (reference, *sorted(a for a in tidy["arm"].astype(str).unique() if a != reference))
    columns = primary_outcome_columns(protocol)
    targets = [item for item in columns if outcome is None or outcome == item[0]]
    if not targets:
        raise AnalysisError(
            "unknown outcome",
            [
                Problem(
                    "--outcome",
                    "is not a primary outcome score of the protocol",
                    outcome,
                    "primary outcomes: " + ", ".join(item[0] for item in columns),
                )
            ],
        )
    visits = [visit.id for visit in protocol.follow_up_visits]
    covariates, dropped = _estimable(tidy, protocol.analysis.covariates)
    analyses = []
    for column, instrument, direction in targets:
        chosen = Settings(
            **{
                **settings.__dict__,
                "direction": "higher_is_better"
                if direction == "higher_is_better"
                else "higher_is_worse",
                "definitions": definitions_from(protocol.thresholds_for(instrument)),
            }
        )
        data = TrialData.from_tidy(
            tidy,
            column,
            reference=reference,
            covariates=covariates,
            baseline_visit=protocol.baseline.id,
            visits=visits,
        )
        analyses.append(analyze(data, chosen, protocol_hash=protocol.content_hash, notes=dropped))
    participants = participant_rows(tidy)
    variables = [
        *protocol.analysis.covariates,
        *(name for name in participants.columns if name.endswith("_baseline")),
    ]
    questions = {question.id: question for question in protocol.eligibility.questions}
    labels = {}
    for name in variables:
        if name in questions:
            labels[name] = questions[name].label
        elif name.endswith("_baseline"):
            labels[name] = _score_label(name.removesuffix("_baseline"))
    return TrialAnalysis(
        trial=protocol.id,
        protocol_version=protocol.version,
        protocol_hash=protocol.content_hash,
        reference=reference,
        arms=arms,
        blinded=bool(blinded),
        synthetic=bool(tidy["synthetic"].any()) if "synthetic" in tidy else False,
        outcomes=tuple(analyses),
        baseline=baseline_table(participants, variables=variables, arms=list(arms), labels=labels),
        consort=consort_counts(
            consort_records,
            arms=list(arms),
            visits=visits,
            primary_visit=protocol.primary_outcomes[0].visit,
        ),
    )


def _estimable(tidy: pd.DataFrame, covariates: Sequence[str]) -> tuple[list[str], list[str]]:
    """The pre-specified covariates that vary in ``tidy``, and a note for each that does not.

    A covariate with one value among the participants (every one female, say, early in a
    trial) cannot be estimated; the models leave it out and the results say so.
    """
    kept: list[str] = []
    notes: list[str] = []
    for name in covariates:
        if name not in tidy.columns:
            kept.append(name)  # the model's own check names the missing column
            continue
        values = list(tidy[name].dropna().unique())
        if len(values) < 2:
            shown = ", ".join(str(value) for value in values) or "no value"
            notes.append(
                f"Pre-specified covariate {name!r} was left out of the models: every "
                f"participant has the same value ({shown}), so its effect cannot be estimated."
            )
        else:
            kept.append(name)
    return kept, notes


def _score_label(column: str) -> str:
    """The label of the score behind a dataset column ``<instrument>_<score>``."""
    for instrument in INSTRUMENTS:
        for score in instrument.scores:
            if column == f"{instrument.name}_{score.id}":
                return score.label
    return column


def _absent_rows(data: TrialData) -> bool:
    return len(data.frame) < data.participants * len(data.visits)


def _options(settings: Settings) -> dict[str, Any]:
    options = asdict(settings)
    options["definitions"] = [asdict(definition) for definition in settings.definitions]
    options["deltas"] = list(settings.deltas)
    return options


def write_results(
    analyses: Sequence[OutcomeAnalysis],
    out: Path,
    *,
    extra: Mapping[str, Any] | None = None,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    synthetic: bool = False,
) -> list[Path]:
    """Write results.json and one CSV per table into ``out``; return the files written.

    With ``synthetic``, every CSV's first line says the data are synthetic.
    """
    label = [SYNTHETIC_STAMP] if synthetic else []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    document: dict[str, Any] = {
        "lumbar_results": RESULTS_FORMAT,
        "lumbar_version": __version__,
        "outcomes": {analysis.outcome: analysis.to_dict() for analysis in analyses},
    }
    if extra:
        document.update(extra)
    path = out / "results.json"
    path.write_text(
        json.dumps(json_ready(document), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    written.append(path)
    for analysis in analyses:
        stamp = [*label, *_stamp(analysis.provenance)]
        for name, table in analysis.tables().items():
            written.append(write_csv(out / f"{name}.csv", table, stamp))
    for name, table in (extra_tables or {}).items():
        written.append(write_csv(out / f"{name}.csv", table, [*label, f"# lumbar {__version__}"]))
    return written


def _stamp(provenance: Provenance) -> list[str]:
    options = json.dumps(json_ready(provenance.options), sort_keys=True)
    return [
        f"# lumbar {provenance.lumbar_version}",
        f"# data sha256 {provenance.data_hash}",
        f"# protocol sha256 {provenance.protocol_hash or '-'}",
        f"# seed {provenance.seed}",
        f"# options {options}",
    ]


def write_csv(path: Path, table: pd.DataFrame, stamp: Sequence[str]) -> Path:
    """``table`` as CSV after ``stamp``'s comment lines (read with comment="#")."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(stamp) + "\n")
        table.to_csv(handle, index=False)
    return path


def json_ready(value: Any) -> Any:
    """JSON-ready: numpy numbers to Python, NaN, infinity and missing to None, tuples to
    lists (every results.json lumbar writes goes through it)."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value
