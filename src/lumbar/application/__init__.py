"""The application layer: a trial read, analysed, placed in the evidence, and written.

The CLI (``lumbar analyze``, ``report``, ``meta --with-trial``, ``demo``), the demo
and the web app call these functions and nothing below them, so the steps
"open trial -> tidy dataset -> analysis -> evidence -> results and figures written"
exist once:

- :mod:`lumbar.application.trial`: :func:`read_trial` (through operations, as the
  user may see it), :func:`analyze_records`, :func:`report_content` /
  :func:`trial_report`, :func:`write_analysis`, and the whole runs
  :func:`run_analysis` and :func:`run_report`;
- :mod:`lumbar.application.evidence`: :func:`trial_rows`,
  :func:`place_in_evidence`, :func:`trial_evidence`, :func:`write_review`;
- :mod:`lumbar.application.inputs`: :func:`read_table`, :func:`published_studies`.

Every file goes through one writer (:class:`lumbar.report.ResultsFolder`), every
number through one formatter (:mod:`lumbar.formatting`).
"""

from lumbar.application.evidence import (
    META_FORMAT,
    TrialEvidence,
    place_in_evidence,
    trial_evidence,
    trial_rows,
    write_review,
)
from lumbar.application.inputs import SHIPPED_SOURCE, published_studies, read_table
from lumbar.application.trial import (
    AnalysisRun,
    ReportRun,
    TrialRecords,
    analyze_records,
    read_trial,
    report_content,
    run_analysis,
    run_report,
    trial_report,
    write_analysis,
    write_outcome_analyses,
)

__all__ = [
    "META_FORMAT",
    "SHIPPED_SOURCE",
    "AnalysisRun",
    "ReportRun",
    "TrialEvidence",
    "TrialRecords",
    "analyze_records",
    "place_in_evidence",
    "published_studies",
    "read_table",
    "read_trial",
    "report_content",
    "run_analysis",
    "run_report",
    "trial_evidence",
    "trial_report",
    "trial_rows",
    "write_analysis",
    "write_outcome_analyses",
    "write_review",
]
