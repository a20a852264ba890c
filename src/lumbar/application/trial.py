"""A trial read, analysed and written: the steps every front end shares.

``lumbar analyze --db``, ``lumbar report``, the demo and (next) the web app read a
trial here and nowhere else:

1. :func:`read_trial` reads what its user may see through
   :class:`~lumbar.operations.Trial` (the tidy dataset, the CONSORT records, the
   sessions and adverse events when the user may see arms, the audit check);
2. :func:`analyze_records` runs the protocol's pre-specified analysis on them
   (:func:`lumbar.analysis.plan.analyze_trial`): arms compared when the reader may
   see them and the trial has follow-up, all participants together otherwise;
3. :func:`report_content` adds treatment received, safety and the evidence into a
   :class:`~lumbar.report.ReportContent`;
4. :func:`write_analysis` and :func:`~lumbar.report.write_report` write the files
   through the one writer, :class:`~lumbar.report.ResultsFolder`.

:func:`run_analysis` and :func:`run_report` do the steps whole for one open trial.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lumbar.analysis.plan import (
    OutcomeAnalysis,
    Settings,
    TrialAnalysis,
    analyze_trial,
    arms_hidden,
)
from lumbar.analysis.treatment import (
    SafetySummary,
    TreatmentSummary,
    safety_summary,
    treatment_summary,
)
from lumbar.application.evidence import place_in_evidence
from lumbar.errors import AccessError, AnalysisError
from lumbar.operations import Trial, TrialInfo
from lumbar.protocol import Protocol
from lumbar.report import (
    Evidence,
    ReportContent,
    ReportFiles,
    ResultsFolder,
    write_report,
    write_results,
)

if TYPE_CHECKING:
    from lumbar.operations import AuditReport

__all__ = [
    "AnalysisRun",
    "ReportRun",
    "TrialRecords",
    "analyze_records",
    "read_trial",
    "report_content",
    "run_analysis",
    "run_report",
    "trial_report",
    "write_analysis",
    "write_outcome_analyses",
]


@dataclass(frozen=True)
class TrialRecords:
    """What one reader may see of a trial, read once through operations."""

    info: TrialInfo
    protocol: Protocol
    tidy: pd.DataFrame
    """The de-identified tidy dataset (docs/dataset.md); no arm for a blinded reader."""
    consort: pd.DataFrame
    """The CONSORT records: one row per person screened."""
    sessions: pd.DataFrame | None
    """Treatment sessions; None when the reader may not see arms."""
    adverse_events: pd.DataFrame | None
    audit: AuditReport | None
    """The audit trail's check; None when the reader's role may not check it."""
    read_at: dt.datetime

    @property
    def blinded(self) -> bool:
        return arms_hidden(self.tidy)


def read_trial(trial: Trial) -> TrialRecords:
    """Read ``trial`` as its user may see it (a blinded user gets no sessions or adverse
    events: they reveal arms)."""
    tidy = trial.dataset()
    sessions = adverse_events = None
    if not arms_hidden(tidy):
        try:
            sessions = trial.sessions_table()
            adverse_events = trial.adverse_event_table()
        except AccessError:
            sessions = adverse_events = None
    try:
        audit: AuditReport | None = trial.verify_audit()
    except AccessError:
        audit = None
    return TrialRecords(
        info=trial.about(),
        protocol=trial.protocol,
        tidy=tidy,
        consort=trial.consort_records(),
        sessions=sessions,
        adverse_events=adverse_events,
        audit=audit,
        read_at=trial.clock(),
    )


def analyze_records(
    records: TrialRecords,
    settings: Settings | None = None,
    *,
    outcome: str | None = None,
    compare: bool = True,
) -> TrialAnalysis:
    """The pre-specified analysis of ``records`` (every primary outcome, or only ``outcome``,
    a dataset column); see :func:`lumbar.analysis.plan.analyze_trial`."""
    return analyze_trial(
        records.protocol,
        records.tidy,
        records.consort,
        settings or Settings(),
        outcome=outcome,
        compare=compare,
    )


def report_content(
    records: TrialRecords,
    *,
    settings: Settings | None = None,
    studies: pd.DataFrame | None = None,
    assumptions: Sequence[tuple[str, str, str]] = (),
    made_at: dt.datetime | None = None,
) -> ReportContent:
    """Everything the report of ``records`` shows.

    When the arms cannot be compared yet (too few participants with follow-up for the
    primary models), the report describes the trial so far and says why. With
    ``studies`` (a study table with an ``outcome`` column, e.g. the shipped massage
    trials) each primary outcome the studies report is pooled without and with this
    trial's result, when the arms were compared.
    """
    settings = settings or Settings()
    notes: list[str] = []
    try:
        analysis = analyze_records(records, settings)
    except AnalysisError as error:
        analysis = analyze_records(records, settings, compare=False)
        reason = "; ".join(f"{p.where}: {p.rule}" for p in error.problems) or error.summary
        notes.append(f"The arms could not be compared yet: {error.summary} ({reason}).")
    treatment, safety = _treatment_and_safety(records, analysis)
    evidence: tuple[Evidence, ...] = ()
    if studies is not None:
        if analysis.compared:
            evidence = place_in_evidence(analysis, records.protocol, studies)
        elif analysis.blinded:
            notes.append(
                "The evidence section is left out: it needs the arms, which you may not see."
            )
        else:
            notes.append("The evidence section is left out until the arms can be compared.")
    return ReportContent(
        info=records.info,
        protocol=records.protocol,
        made_at=made_at or records.read_at,
        settings=settings,
        analysis=analysis,
        tidy=records.tidy,
        treatment=treatment,
        safety=safety,
        audit=records.audit,
        assumptions=tuple(assumptions),
        evidence=evidence,
        notes=tuple(notes),
    )


def _treatment_and_safety(
    records: TrialRecords, analysis: TrialAnalysis
) -> tuple[TreatmentSummary | None, SafetySummary | None]:
    """Sessions and adverse events by arm, for a reader who may see arms (None otherwise)."""
    if analysis.blinded or records.tidy.empty or records.sessions is None:
        return None, None
    allocated = records.tidy.groupby("participant")["arm"].first().astype(str)
    arms = [arm for arm in analysis.arms if arm in set(allocated)]
    planned = {arm.id: arm.sessions.planned for arm in records.protocol.arms}
    treatment = treatment_summary(records.sessions, allocated, planned, arms=arms)
    safety = None
    if records.adverse_events is not None:
        safety = safety_summary(records.adverse_events, allocated, arms=arms)
    return treatment, safety


def trial_report(
    trial: Trial,
    *,
    settings: Settings | None = None,
    studies: pd.DataFrame | None = None,
    assumptions: Sequence[tuple[str, str, str]] = (),
    made_at: dt.datetime | None = None,
) -> ReportContent:
    """Read ``trial`` as its user may and make its report's content (:func:`report_content`)."""
    return report_content(
        read_trial(trial),
        settings=settings,
        studies=studies,
        assumptions=assumptions,
        made_at=made_at,
    )


# ---------------------------------------------------------------------- writing


def write_analysis(analysis: TrialAnalysis, out: Path) -> list[Path]:
    """results.json and every table of a trial's analysis as CSV, into ``out``."""
    folder = ResultsFolder(out, synthetic=analysis.synthetic)
    write_results(
        folder, analysis.outcomes, extra=analysis.extra(), extra_tables=analysis.extra_tables()
    )
    return folder.written


def write_outcome_analyses(
    analyses: Sequence[OutcomeAnalysis], out: Path, *, source: Mapping[str, Any]
) -> list[Path]:
    """results.json and the CSV tables of analyses of any long data (``source`` names it)."""
    folder = ResultsFolder(out, synthetic=False)
    write_results(folder, analyses, extra={"source": dict(source)})
    return folder.written


# ---------------------------------------------------------------------- whole runs


@dataclass(frozen=True)
class AnalysisRun:
    """A trial analysed and its results written."""

    analysis: TrialAnalysis
    files: list[Path]


def run_analysis(
    trial: Trial, out: Path, settings: Settings | None = None, *, outcome: str | None = None
) -> AnalysisRun:
    """Read ``trial``, analyse it as pre-specified and write results.json and the CSVs."""
    analysis = analyze_records(read_trial(trial), settings, outcome=outcome)
    return AnalysisRun(analysis, write_analysis(analysis, out))


@dataclass(frozen=True)
class ReportRun:
    """A trial's report made and written."""

    content: ReportContent
    files: ReportFiles


def run_report(
    trial: Trial,
    out: Path,
    *,
    settings: Settings | None = None,
    studies: pd.DataFrame | None = None,
    assumptions: Sequence[tuple[str, str, str]] = (),
    pdf: bool = False,
) -> ReportRun:
    """Read ``trial``, make its report and write it into ``out``."""
    content = trial_report(trial, settings=settings, studies=studies, assumptions=assumptions)
    return ReportRun(content, write_report(content, out, pdf=pdf))
