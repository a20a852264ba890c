"""The pre-specified analysis: of one outcome, run whole, and of a trial as its protocol says.

:func:`analyze` runs every estimator on one :class:`TrialData`: ANCOVA at each
visit, the MMRM, the protocol's GEE (when there is a baseline), multiple
imputation with its tipping-point analysis, and the responder analyses under
every definition. :func:`analyze_trial` does it for each primary outcome of a
trial's tidy dataset, with Table 1, the CONSORT flow and the outcomes by visit;
a blinded reader's data and an early trial are described, not compared. The
results are written to results.json and CSVs by :mod:`lumbar.application`
(schema: docs/analysis.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

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
from lumbar.analysis.pooled import PooledSummary, pooled_summary
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
    "BLINDED_NOTE",
    "NO_FOLLOW_UP_NOTE",
    "RESULTS_FORMAT",
    "OutcomeAnalysis",
    "Settings",
    "TrialAnalysis",
    "WindowHandling",
    "WindowSensitivity",
    "analyze",
    "analyze_trial",
    "arms_hidden",
    "outside_window",
    "primary_outcome_columns",
    "without_values",
]

_T = TypeVar("_T")

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
class WindowSensitivity:
    """The primary models (ANCOVA and MMRM) again, without the outcome values completed
    outside their visit's window."""

    ancova: AncovaResult
    mmrm: MmrmResult

    def to_dict(self) -> dict[str, Any]:
        return {"ancova": self.ancova.to_dict(), "mmrm": self.mmrm.to_dict()}


@dataclass(frozen=True)
class WindowHandling:
    """How the protocol's rule (``analysis.out_of_window``) treated an outcome's values
    completed outside their visit's window.

    ``exclude``: left out of every model of the analysis (they stay in the database and the
    dataset, flagged). ``include``: kept in the primary analysis, and ``sensitivity`` holds
    the primary models without them (None when there were none, or the models could not be
    fitted without them: the notes say why).
    """

    rule: str
    out_of_window: int
    """Follow-up values of the outcome completed outside their visit's window."""
    sensitivity: WindowSensitivity | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "out_of_window": self.out_of_window,
            "sensitivity": None if self.sensitivity is None else self.sensitivity.to_dict(),
        }


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
    window: WindowHandling | None = None
    """What was done with outcome values completed outside their visit's window, when the
    data say (the tidy dataset's ``out_of_window`` column); None otherwise."""

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
        if self.window is not None and self.window.sensitivity is not None:
            tables["window_sensitivity_ancova"] = self.window.sensitivity.ancova.to_frame()
            tables["window_sensitivity_mmrm"] = self.window.sensitivity.mmrm.to_frame()
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
        for name in ("gee", "imputation", "tipping_point", "responders", "window"):
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
    left_out = data.left_out()
    if left_out:
        everyone = {participant for group in left_out.values() for participant in group}
        reasons = "; ".join(
            f"{name} missing for {len(group)} ({', '.join(group)})"
            for name, group in left_out.items()
        )
        notes.append(
            f"{len(everyone)} of {data.frame['participant'].nunique()} participants are left "
            f"out of the models because a value the analysis adjusts for is missing: {reasons}."
        )
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
    """A trial analysed as its protocol pre-specifies: every primary outcome, Table 1, CONSORT.

    A blinded reader's data (no arm) and an early trial (no follow-up yet) are
    described but not compared: ``outcomes`` is empty, ``notes`` say why, and
    ``summary`` holds the outcomes by visit for all participants together.
    """

    trial: str
    protocol_version: str
    protocol_hash: str
    reference: str | None
    """The reference (control) arm; None for a blinded reader, who sees no arm."""
    arms: tuple[str, ...]
    """Reference first; empty for a blinded reader."""
    blinded: bool
    synthetic: bool
    outcomes: tuple[OutcomeAnalysis, ...]
    """The comparisons between arms, one per primary outcome; empty when none can be made."""
    baseline: BaselineTable | None
    """Table 1 (by arm, or of all participants when blinded); None before anyone is randomized."""
    consort: ConsortFlow
    """The participant flow (every arm counted together for a blinded reader)."""
    summary: PooledSummary
    """Follow-up and the primary outcomes by visit, all participants together."""
    notes: tuple[str, ...] = ()
    """Why the arms were not compared, when they were not."""

    @property
    def compared(self) -> bool:
        """Whether the arms were compared (unblinded, with follow-up to analyse)."""
        return bool(self.outcomes)

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
            "compared": self.compared,
            "notes": list(self.notes),
            "baseline_table": None if self.baseline is None else self.baseline.to_dict(),
            "consort": self.consort.to_dict(),
            "pooled_summary": self.summary.to_dict(),
        }

    def extra_tables(self) -> dict[str, pd.DataFrame]:
        tables = {
            "consort": self.consort.to_frame(),
            "follow_up": self.summary.follow_up_frame(),
            "outcomes_by_visit": self.summary.to_frame(),
        }
        if self.baseline is not None:
            tables["baseline_table"] = self.baseline.wide()
        return tables


def primary_outcome_columns(protocol: Protocol) -> list[tuple[str, str, str]]:
    """(dataset column, instrument, direction) of each primary outcome, in protocol order."""
    found: list[tuple[str, str, str]] = []
    for item in protocol.primary_outcomes:
        score = INSTRUMENTS.get(item.instrument).score(item.score)
        found.append((f"{item.instrument}_{score.id}", item.instrument, score.direction))
    return found


def arms_hidden(tidy: pd.DataFrame) -> bool:
    """Whether ``tidy`` is a blinded reader's dataset: participants, and no arm for any."""
    return not tidy.empty and "arm" in tidy.columns and bool(tidy["arm"].isna().all())


BLINDED_NOTE = (
    "You are blinded: the arms are not shown, so this report describes all participants "
    "together and compares no arms."
)
NO_FOLLOW_UP_NOTE = (
    "No primary outcome has been recorded at a follow-up visit yet: this is an enrolment and "
    "baseline report (the flow so far, Table 1, and the visits due)."
)


def analyze_trial(
    protocol: Protocol,
    tidy: pd.DataFrame,
    consort_records: pd.DataFrame,
    settings: Settings = Settings(),
    *,
    outcome: str | None = None,
    compare: bool = True,
) -> TrialAnalysis:
    """Analyse a trial's tidy dataset (docs/dataset.md) as ``protocol`` pre-specifies.

    Each primary outcome (or only ``outcome``, a dataset column) gets :func:`analyze`
    with the protocol's covariates, visits and thresholds for meaningful change;
    Table 1, the CONSORT counts and the outcomes by visit for all participants come
    with them. The arms are not compared (and ``notes`` say why) when the data are a
    blinded reader's (the ``arm`` column is empty: Table 1 and the CONSORT flow then
    count everyone together), when no primary outcome has a follow-up value yet, or
    when ``compare`` is False.
    """
    columns = primary_outcome_columns(protocol)
    targets = [item for item in columns if outcome is None or outcome == item[0]]
    if not targets:
        raise AnalysisError(
            "unknown outcome",
            [
                Problem(
                    "outcome",
                    "is not a primary outcome score of the protocol",
                    outcome,
                    "primary outcomes: " + ", ".join(item[0] for item in columns),
                )
            ],
        )
    blinded = arms_hidden(tidy)
    follow_up = [visit.id for visit in protocol.follow_up_visits]
    summary = pooled_summary(
        tidy,
        [column for column, _, _ in targets],
        visits=[protocol.baseline.id, *follow_up],
        baseline_visit=protocol.baseline.id,
    )
    reference: str | None = None
    arms: tuple[str, ...] = ()
    if not blinded:
        reference = protocol.analysis.reference_arm
        present = {str(arm) for arm in tidy["arm"].dropna().unique()} if "arm" in tidy else set()
        arms = (reference, *sorted(present - {reference}))
    notes: list[str] = []
    if blinded:
        notes.append(BLINDED_NOTE)
    if not summary.follow_up_observed:
        notes.append(NO_FOLLOW_UP_NOTE)
    analyses = []
    if compare and not notes:
        analyses = _compare(protocol, tidy, targets, settings, reference=str(reference))
    return TrialAnalysis(
        trial=protocol.id,
        protocol_version=protocol.version,
        protocol_hash=protocol.content_hash,
        reference=reference,
        arms=arms,
        blinded=blinded,
        synthetic=bool(tidy["synthetic"].any()) if "synthetic" in tidy else False,
        outcomes=tuple(analyses),
        baseline=_table_one(protocol, tidy, arms, blinded),
        consort=consort_counts(
            consort_records,
            arms=None if blinded else list(_consort_arms(protocol, consort_records, arms)),
            visits=follow_up,
            primary_visit=protocol.primary_outcomes[0].visit,
            pooled=blinded,
        ),
        summary=summary,
        notes=tuple(notes),
    )


def _compare(
    protocol: Protocol,
    tidy: pd.DataFrame,
    targets: Sequence[tuple[str, str, str]],
    settings: Settings,
    *,
    reference: str,
) -> list[OutcomeAnalysis]:
    """The pre-specified analysis of each target outcome, arm by arm against ``reference``."""
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

        def data_of(
            frame: pd.DataFrame, kept_visits: Sequence[str], column: str = column
        ) -> TrialData:
            return TrialData.from_tidy(
                frame,
                column,
                reference=reference,
                covariates=covariates,
                baseline_visit=protocol.baseline.id,
                visits=kept_visits,
            )

        analyses.append(
            _by_window_rule(
                protocol, tidy, column, chosen, visits=visits, notes=dropped, data_of=data_of
            )
        )
    return analyses


def _by_window_rule(
    protocol: Protocol,
    tidy: pd.DataFrame,
    column: str,
    settings: Settings,
    *,
    visits: Sequence[str],
    notes: Sequence[str],
    data_of: Callable[[pd.DataFrame, Sequence[str]], TrialData],
) -> OutcomeAnalysis:
    """:func:`analyze` of one outcome, its values completed outside their visit's window
    treated by the protocol's rule (``analysis.out_of_window``), never silently.

    ``exclude``: they are excluded from every model, and a note says how many and why.
    ``include``: the analysis keeps them, a note says how many, and the primary models are
    fitted again without them (:class:`WindowSensitivity`). Data with no such value are
    analysed exactly as they would be without the rule.
    """
    rule = protocol.analysis.out_of_window
    outside = outside_window(tidy, column, visits)
    count = int(outside.sum())
    if not count:
        result = analyze(
            data_of(tidy, visits), settings, protocol_hash=protocol.content_hash, notes=notes
        )
        if "out_of_window" not in tidy.columns:
            return result  # data from elsewhere that do not say
        return replace(result, window=WindowHandling(rule, 0))
    kept = without_values(tidy, column, outside)
    emptied = [
        visit
        for visit in visits
        if tidy.loc[tidy["visit"] == visit, column].notna().any()
        and not kept.loc[kept["visit"] == visit, column].notna().any()
    ]
    kept_visits = [visit for visit in visits if visit not in emptied]
    said = f"{_values(count)} of {column} completed outside their visit's window"
    gone = ""
    if emptied:
        gone = (
            f"; without them {', '.join(emptied)} {'has' if len(emptied) == 1 else 'have'} "
            f"no value and {'is' if len(emptied) == 1 else 'are'} not analysed"
        )
    if rule == "exclude":
        note = (
            f"{said} {_were(count)} excluded from the analysis (the protocol's rule, "
            "analysis.out_of_window: exclude); they stay in the database and the dataset, "
            f"flagged{gone}."
        )
        result = analyze(
            data_of(kept, kept_visits),
            settings,
            protocol_hash=protocol.content_hash,
            notes=[*notes, note],
        )
        return replace(result, window=WindowHandling(rule, count))
    result = analyze(
        data_of(tidy, visits), settings, protocol_hash=protocol.content_hash, notes=notes
    )
    extra = [
        f"{said} {_were(count)} included in the primary analysis (the protocol's rule, "
        "analysis.out_of_window: include); a sensitivity analysis fits the ANCOVA and the "
        f"MMRM again without them{gone}."
    ]
    sensitivity = _secondary(
        "The sensitivity analysis without out-of-window values",
        extra,
        lambda: _window_sensitivity(data_of(kept, kept_visits), settings),
    )
    return replace(
        result,
        notes=(*result.notes, *extra),
        window=WindowHandling(rule, count, sensitivity),
    )


def outside_window(tidy: pd.DataFrame, column: str, visits: Sequence[str]) -> pd.Series:
    """Rows of ``tidy`` holding a value of ``column`` at one of ``visits`` (the follow-up
    visits) completed outside the visit's window; none when the data have no
    ``out_of_window`` column."""
    if "out_of_window" not in tidy.columns or column not in tidy.columns:
        return pd.Series(False, index=tidy.index)
    flagged = tidy["out_of_window"].astype("boolean").fillna(False).astype(bool)
    return flagged & tidy["visit"].isin(list(visits)) & tidy[column].notna()


def without_values(tidy: pd.DataFrame, column: str, rows: pd.Series) -> pd.DataFrame:
    """``tidy`` with ``column`` emptied on ``rows`` (the models then treat them as missing)."""
    if not rows.any():
        return tidy
    kept = tidy.copy()
    kept.loc[rows, column] = pd.NA
    return kept


def _window_sensitivity(data: TrialData, settings: Settings) -> WindowSensitivity:
    """The primary models on data without the out-of-window values."""
    return WindowSensitivity(
        ancova=ancova(data, robust=settings.robust, alpha=settings.alpha),
        mmrm=_mmrm_with_fallback(data, settings, []),
    )


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def _table_one(
    protocol: Protocol, tidy: pd.DataFrame, arms: Sequence[str], blinded: bool
) -> BaselineTable | None:
    """Table 1 by arm (all participants together when blinded); None with nobody randomized."""
    if tidy.empty:
        return None
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
    present = {str(arm) for arm in participants["arm"].dropna().unique()}
    return baseline_table(
        participants,
        arm=None if blinded else "arm",
        variables=variables,
        arms=None if blinded else [arm for arm in arms if arm in present],
        labels=labels,
    )


def _consort_arms(
    protocol: Protocol, records: pd.DataFrame, arms: Sequence[str]
) -> tuple[str, ...]:
    """The arms of the CONSORT flow: the analysis arms, then any other arm of the protocol
    or the records (an arm nobody is in yet still gets its column)."""
    randomized = records[records["randomized"].astype("boolean").fillna(False).astype(bool)]
    present = {str(arm) for arm in randomized["arm"].dropna().unique()}
    ordered = list(arms)
    ordered += [arm.id for arm in protocol.arms if arm.id not in ordered]
    ordered += sorted(present - set(ordered))
    return tuple(ordered)


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
