"""The trial report: gathered through operations, analysed as pre-specified, written as HTML.

:func:`gather` reads a trial as its user may and runs the analysis;
:func:`write_report` writes ``report.html`` (self-contained), every figure as SVG
and PNG, every table as CSV and, with the ``pdf`` extra, ``report.pdf``.
"""

from lumbar.report.content import ReportContent, gather
from lumbar.report.render import ReportError, ReportFiles, write_report

__all__ = ["ReportContent", "ReportError", "ReportFiles", "gather", "write_report"]
