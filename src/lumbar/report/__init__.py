"""The trial report and every results file: HTML (and PDF), figures, stamped CSVs, JSON.

:class:`ReportContent` is a trial's report as data (made by
:func:`lumbar.application.trial_report`); :func:`write_report` writes
``report.html`` (self-contained), every figure as SVG and PNG, every table as
CSV and, with the ``pdf`` extra, ``report.pdf``. :class:`ResultsFolder` is the
one writer of results files, shared by ``lumbar analyze``, ``meta`` and ``power``.
"""

from lumbar.report.content import Evidence, ReportContent
from lumbar.report.files import ResultsFolder, json_ready, write_results
from lumbar.report.page import glance
from lumbar.report.render import ReportError, ReportFiles, write_report

__all__ = [
    "Evidence",
    "ReportContent",
    "ReportError",
    "ReportFiles",
    "ResultsFolder",
    "glance",
    "json_ready",
    "write_report",
    "write_results",
]
