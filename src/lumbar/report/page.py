"""One report page being built: its sections, the folders its files go to, and the words
shared by every section (arm and outcome names, the results at a glance).

Numbers are formatted by :mod:`lumbar.formatting`, so the page, the PDF, the CSV
side-by-side tables and the terminal summary say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lumbar._summary import SummaryTable
from lumbar.estimates import Estimate
from lumbar.formatting import interval, number, p_sentence, percent
from lumbar.instruments import INSTRUMENTS, Instrument, Score
from lumbar.report.content import ReportContent
from lumbar.report.figures import Figure
from lumbar.report.files import ResultsFolder

__all__ = [
    "Page",
    "Section",
    "axis_label",
    "ci_text",
    "count_share",
    "frame_table",
    "glance",
    "outcome_name",
    "score_direction",
    "score_of",
]


@dataclass
class Section:
    """One section of the page: paragraphs, tables and figures in reading order."""

    id: str
    title: str
    parts: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, paragraph: str) -> None:
        self.parts.append(("text", paragraph))

    def html(self, markup: str) -> None:
        """Trusted markup made here (never data)."""
        self.parts.append(("html", markup))

    def table(self, table: SummaryTable, csv: str | None = None) -> None:
        self.parts.append(("table", (table, csv)))

    def figure(self, figure: Figure, svg: str) -> None:
        self.parts.append(("figure", (figure, svg)))


class Page:
    """The report being built: what it shows, and where its figures and extra tables go."""

    def __init__(self, content: ReportContent, tables: ResultsFolder, figures: ResultsFolder):
        self.content = content
        self.tables = tables
        self.figures = figures
        analysis = content.analysis
        self.arms = list(analysis.arms)
        self.reference = analysis.reference or ""
        self.labels = content.labels
        self.visit_labels = content.visit_labels
        self.primary_visit = content.protocol.primary_outcomes[0].visit
        self.glance = glance(content)

    def label(self, arm: str) -> str:
        return self.labels.get(arm, arm)

    def show(self, section: Section, figure: Figure) -> None:
        """Write ``figure`` (SVG and PNG, marked when synthetic) and place it in ``section``."""
        drawn, svg = self.figures.figure(figure)
        section.figure(drawn, svg)

    def csv(self, name: str, frame: pd.DataFrame) -> str:
        """Write ``frame`` as tables/``name``.csv; return its link from the page."""
        self.tables.table(name, frame)
        return f"tables/{name}.csv"


def frame_table(
    frame: pd.DataFrame, title: str, note: str = "", columns: Sequence[str] | None = None
) -> SummaryTable:
    """A DataFrame of already formatted cells as a :class:`SummaryTable`."""
    names = list(columns or frame.columns)
    rows = tuple(tuple(_cell(value) for value in row) for row in frame[names].itertuples(False))
    return SummaryTable(title, tuple(names), rows, note)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return number(value)
    return str(value)


def glance(content: ReportContent) -> list[str]:
    """The results in a few sentences: each arm against the reference on each primary outcome
    at the primary visit or, when the arms are not compared, all participants together."""
    analysis = content.analysis
    primary = content.protocol.primary_outcomes[0].visit
    when = content.visit_labels[primary]
    if not analysis.compared:
        return _pooled_glance(content, primary, when)
    labels = content.labels
    reference = str(analysis.reference)
    sentences = []
    for outcome in analysis.outcomes:
        name = outcome_name(outcome.outcome)
        for arm in analysis.arms[1:]:
            estimate = outcome.ancova.contrast(primary, arm)
            direction = "lower" if estimate.estimate < 0 else "higher"
            sentences.append(
                f"{name}: {labels.get(arm, arm)} {number(abs(estimate.estimate), 1)} points "
                f"{direction} than {labels.get(reference, reference)} at {when} (95% CI "
                f"{interval(estimate.lower, estimate.upper, 1)}; {p_sentence(estimate.p)})."
            )
    return sentences


def _pooled_glance(content: ReportContent, primary: str, when: str) -> list[str]:
    summary = content.analysis.summary
    baseline = content.protocol.baseline.id
    sentences = []
    for column in summary.outcomes:
        name = outcome_name(column)
        start = summary.at(column, baseline)
        text = f"{name}, all participants: at baseline mean {number(start.mean, 1)} (SD "
        text += f"{number(start.sd, 1)}, n = {start.n})"
        at = summary.at(column, primary)
        if at.n:
            text += (
                f"; at {when} mean {number(at.mean, 1)} (SD {number(at.sd, 1)}), "
                f"{at.n} of {at.expected} expected values recorded ({percent(at.completeness)})"
            )
        else:
            text += f"; nobody has a value at {when} yet"
        pending = summary.visit(primary).pending
        sentences.append(text + (f", {pending} still to come." if pending else "."))
    return sentences


def score_of(column: str) -> tuple[Instrument, Score] | None:
    """The instrument and score behind a dataset column ``<instrument>_<score>``."""
    for instrument in INSTRUMENTS:
        for score in instrument.scores:
            if column == f"{instrument.name}_{score.id}":
                return instrument, score
    return None


def outcome_name(column: str) -> str:
    """A short name for sentences: the score's label without its range ("RDQ total")."""
    found = score_of(column)
    if found is None:
        return column
    return found[1].label.split(" (")[0]


def axis_label(column: str) -> str:
    found = score_of(column)
    return column if found is None else found[1].label


def score_direction(column: str) -> str:
    found = score_of(column)
    return "higher_is_worse" if found is None else found[1].direction


def count_share(count: int, total: int) -> str:
    return f"{count} ({percent(count / total)})" if total else str(count)


def ci_text(estimate: Estimate) -> str:
    return f"{number(estimate.estimate)} ({interval(estimate.lower, estimate.upper)})"
