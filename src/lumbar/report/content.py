"""Everything a trial report shows, gathered once: read through operations, analysed purely.

:func:`gather` is the only place the report reads a trial. It asks the open
:class:`~lumbar.operations.Trial` for the de-identified dataset, the CONSORT
records, the session and adverse-event tables (for unblinded users) and the
audit check, then runs the protocol's pre-specified analysis. What it returns
is plain data, so the report can be rendered (and tested) without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from lumbar.analysis.plan import Settings, TrialAnalysis, analyze_trial
from lumbar.analysis.treatment import (
    SafetySummary,
    TreatmentSummary,
    safety_summary,
    treatment_summary,
)
from lumbar.errors import AccessError, Problem, SynthesisError
from lumbar.operations import Trial, TrialInfo
from lumbar.protocol import Protocol
from lumbar.store.audit import AuditReport
from lumbar.synthesis import Review, review, trial_studies

__all__ = ["Evidence", "ReportContent", "gather"]


@dataclass(frozen=True)
class Evidence:
    """One outcome's published studies pooled without and with this trial's result."""

    outcome: str
    """The dataset column (``rdq_total``)."""
    name: str
    """The outcome as the studies name it (``RDQ``)."""
    review: Review
    """The review with this trial added: ``before`` is the published studies alone."""


@dataclass(frozen=True)
class ReportContent:
    """A trial's report, as data."""

    info: TrialInfo
    protocol: Protocol
    made_at: dt.datetime
    settings: Settings
    analysis: TrialAnalysis
    tidy: pd.DataFrame = field(repr=False)
    """The de-identified tidy dataset the analysis used (for the trajectory plots)."""
    treatment: TreatmentSummary | None
    """None when the reader is blinded (sessions reveal arms)."""
    safety: SafetySummary | None
    audit: AuditReport | None
    """None when the reader's role may not check the audit trail."""
    assumptions: tuple[tuple[str, str, str], ...] = ()
    """For a simulated trial: (name, value, source) of every assumption of the simulation."""
    evidence: tuple[Evidence, ...] = ()
    """Where the trial moves the published evidence, per primary outcome with studies."""

    @property
    def synthetic(self) -> bool:
        return self.info.synthetic or self.analysis.synthetic

    @property
    def labels(self) -> dict[str, str]:
        """Display label of each arm: the protocol's label, or the masked name when blinded."""
        if self.analysis.blinded:
            return {arm: arm for arm in self.analysis.arms}
        return {arm.id: arm.label for arm in self.protocol.arms}

    @property
    def visit_labels(self) -> dict[str, str]:
        return {visit.id: visit.label for visit in self.protocol.visits}

    @property
    def weeks(self) -> dict[str, float]:
        return {visit.id: visit.day / 7 for visit in self.protocol.visits}


def gather(
    trial: Trial,
    *,
    settings: Settings | None = None,
    assumptions: Sequence[tuple[str, str, str]] = (),
    made_at: dt.datetime | None = None,
    studies: pd.DataFrame | None = None,
) -> ReportContent:
    """Read ``trial`` as its user may, and analyse it as its protocol pre-specifies.

    With ``studies`` (a study table with an ``outcome`` column, e.g. the shipped
    massage trials), each primary outcome the studies report is pooled without and
    with this trial's result (unblinded readers only: a blinded reader's arms are
    masked, so they cannot be placed among treatments).
    """
    settings = settings or Settings()
    protocol = trial.protocol
    info = trial.about()
    tidy = trial.dataset()
    analysis = analyze_trial(protocol, tidy, trial.consort_records(), settings)
    treatment = safety = None
    if not analysis.blinded:
        allocated = tidy.groupby("participant")["arm"].first().astype(str)
        planned = {arm.id: arm.sessions.planned for arm in protocol.arms}
        treatment = treatment_summary(
            trial.sessions_table(), allocated, planned, arms=list(analysis.arms)
        )
        safety = safety_summary(trial.adverse_event_table(), allocated, arms=list(analysis.arms))
    evidence: list[Evidence] = []
    if studies is not None and not analysis.blinded:
        evidence = _evidence(analysis, protocol, studies)
    try:
        audit: AuditReport | None = trial.verify_audit()
    except AccessError:
        audit = None
    return ReportContent(
        info=info,
        protocol=protocol,
        made_at=made_at or trial.clock(),
        settings=settings,
        analysis=analysis,
        tidy=tidy,
        treatment=treatment,
        safety=safety,
        audit=audit,
        assumptions=tuple(assumptions),
        evidence=tuple(evidence),
    )


def _evidence(analysis: TrialAnalysis, protocol: Protocol, studies: pd.DataFrame) -> list[Evidence]:
    if "outcome" not in studies.columns:
        raise SynthesisError(
            "cannot place the trial among the studies",
            [Problem("outcome", "the studies need an outcome column (e.g. RDQ)", list(studies))],
        )
    found = []
    for result in analysis.outcomes:
        rows = trial_studies(analysis, protocol, result.outcome)
        name = str(rows["outcome"].iloc[0])
        published = studies[studies["outcome"].astype(str) == name]
        try:
            done = review(
                published,
                measure="MD",
                method="REML",
                hksj=False,
                level=0.95,
                columns={},
                trial_rows=rows,
                trial_synthetic=analysis.synthetic,
            )
        except SynthesisError:
            continue  # no published row on this outcome can be pooled
        if done.before is not None:
            found.append(Evidence(result.outcome, name, done))
    return found
