"""Everything a trial report shows, as plain data: what the reader may see, analysed.

:class:`ReportContent` is made by :func:`lumbar.application.trial_report`, which
reads the trial through operations as its user may and runs the pre-specified
analysis. Holding plain data, the report is rendered (and tested) without a
database.

What a report shows depends on what its reader may see and on how far the trial
has come (:attr:`ReportContent.kind`):

- ``"comparison"``: the arms compared as the protocol pre-specifies;
- ``"pooled"``: a blinded reader's report, or an early trial's (enrolment and
  baseline, no follow-up yet). All participants together: the CONSORT flow so far,
  Table 1, follow-up by visit and what is due, the outcomes by visit, missing data.
  A blinded reader's report holds no arm and nothing per arm.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import pandas as pd

from lumbar.analysis.consort import POOLED
from lumbar.analysis.plan import Settings, TrialAnalysis
from lumbar.analysis.treatment import SafetySummary, TreatmentSummary
from lumbar.protocol import Protocol
from lumbar.synthesis import Review

if TYPE_CHECKING:
    from lumbar.operations import AuditReport, TrialInfo

__all__ = ["Evidence", "ReportContent"]

POOLED_LABEL = "all arms together"


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
    """None when the reader is blinded (sessions reveal arms) or nobody has a session yet."""
    safety: SafetySummary | None
    audit: AuditReport | None
    """None when the reader's role may not check the audit trail."""
    assumptions: tuple[tuple[str, str, str], ...] = ()
    """For a simulated trial: (name, value, source) of every assumption of the simulation."""
    evidence: tuple[Evidence, ...] = ()
    """Where the trial moves the published evidence, per primary outcome with studies."""
    notes: tuple[str, ...] = ()
    """What the report leaves out, and why (beyond the analysis' own notes)."""

    @property
    def synthetic(self) -> bool:
        return self.info.synthetic or self.analysis.synthetic

    @property
    def blinded(self) -> bool:
        return self.analysis.blinded

    @property
    def kind(self) -> Literal["comparison", "pooled"]:
        return "comparison" if self.analysis.compared else "pooled"

    @property
    def labels(self) -> dict[str, str]:
        """Display label of each arm (none for a blinded reader)."""
        if self.analysis.blinded:
            return {POOLED: POOLED_LABEL}
        return {POOLED: POOLED_LABEL, **{arm.id: arm.label for arm in self.protocol.arms}}

    @property
    def visit_labels(self) -> dict[str, str]:
        return {visit.id: visit.label for visit in self.protocol.visits}

    @property
    def weeks(self) -> dict[str, float]:
        return {visit.id: visit.day / 7 for visit in self.protocol.visits}
