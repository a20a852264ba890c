"""Turn a :class:`ReportContent` into the report's files: HTML (and PDF), CSV tables, figures.

:func:`write_report` writes, into one folder::

    report.html        self-contained: styles and figures inline, opens offline
    report.pdf         with the optional ``pdf`` extra (WeasyPrint), when asked
    figures/*.svg|png  every figure, both formats
    tables/*.csv       every table, stamped; tables/results.json holds every result

Numbers are formatted here and nowhere else, so the page, the PDF and the
printed summary say the same thing.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import scipy

from lumbar import __version__
from lumbar._summary import SummaryTable
from lumbar.analysis.plan import SYNTHETIC_STAMP, OutcomeAnalysis, write_csv
from lumbar.analysis.responders import Definition
from lumbar.errors import LumbarError, Problem
from lumbar.instruments import INSTRUMENTS, Instrument, Score
from lumbar.protocol.summary import summarize_protocol
from lumbar.report.content import ReportContent
from lumbar.report.figures import (
    Figure,
    attendance_figure,
    consort_figure,
    contrast_figure,
    responder_curve_figure,
    tipping_point_figure,
    trajectory_figure,
)
from lumbar.report.forest import review_forest

__all__ = ["ReportError", "ReportFiles", "Section", "glance", "write_report"]


class ReportError(LumbarError):
    """The report could not be written (for instance the PDF extra is not installed)."""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    pdf: Path | None
    figures: tuple[Path, ...]
    tables: tuple[Path, ...]


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


# ---------------------------------------------------------------------- number formats


def number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}".replace("-", "\u2212")


def interval(lower: float, upper: float, digits: int = 2) -> str:
    return f"{number(lower, digits)} to {number(upper, digits)}"


def p_value(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "-"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def percent(share: float, digits: int = 0) -> str:
    if share is None or math.isnan(share):
        return "-"
    return f"{100 * share:.{digits}f}%"


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


# ---------------------------------------------------------------------- writing


def write_report(content: ReportContent, out: Path, *, pdf: bool = False) -> ReportFiles:
    """Write the report of ``content`` into ``out`` (created if needed)."""
    figures_dir = out / "figures"
    tables_dir = out / "tables"
    figures_dir.mkdir(parents=True, exist_ok=True)
    tables_dir.mkdir(parents=True, exist_ok=True)
    tables = list(content.analysis.write(tables_dir))
    builder = _Builder(content, tables_dir, figures_dir)
    sections = builder.sections()
    tables += builder.csvs
    html = _template().render(
        content=content,
        sections=sections,
        title=content.info.title,
        synthetic=content.synthetic,
        blinded=content.analysis.blinded,
        made_at=content.made_at.strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        glance=builder.glance,
    )
    html_path = out / "report.html"
    html_path.write_text(html, encoding="utf-8")
    pdf_path = _write_pdf(html, out / "report.pdf") if pdf else None
    return ReportFiles(html_path, pdf_path, tuple(builder.figure_files), tuple(tables))


def _template() -> jinja2.Template:
    source = resources.files("lumbar.report").joinpath("report.html.j2").read_text("utf-8")
    environment = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(source)


def _write_pdf(html: str, path: Path) -> Path:
    try:
        import weasyprint  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: PLC0415
    except (ImportError, OSError) as error:
        raise ReportError(
            "cannot write the PDF",
            [
                Problem(
                    "--pdf",
                    "needs the optional 'pdf' extra (WeasyPrint and the Pango library)",
                    str(error).splitlines()[0] if str(error) else None,
                    "pip install 'lumbar[pdf]' (and apt-get install libpango-1.0-0 "
                    "libpangoft2-1.0-0), or print report.html from a browser",
                )
            ],
        ) from None
    weasyprint.HTML(string=html, base_url=str(path.parent)).write_pdf(path)
    return path


# ---------------------------------------------------------------------- sections


class _Builder:
    """Builds the sections of one report, saving each figure and extra table as it goes."""

    def __init__(self, content: ReportContent, tables_dir: Path, figures_dir: Path):
        self.content = content
        self.tables_dir = tables_dir
        self.figures_dir = figures_dir
        self.figure_files: list[Path] = []
        self.csvs: list[Path] = []
        self.glance: list[str] = []
        analysis = content.analysis
        self.arms = list(analysis.arms)
        self.reference = analysis.reference
        self.labels = content.labels
        self.visit_labels = content.visit_labels
        self.primary_visit = content.protocol.primary_outcomes[0].visit
        self.stamp = [SYNTHETIC_STAMP] if content.synthetic else []
        self.stamp.append(f"# lumbar {__version__}")

    def label(self, arm: str) -> str:
        return self.labels.get(arm, arm)

    def save(self, figure: Figure) -> str:
        if self.content.synthetic:
            figure.figure.text(
                0.995,
                0.005,
                "SYNTHETIC DATA",
                ha="right",
                va="bottom",
                fontsize=7.5,
                fontweight="bold",
                color="#b3261e",
            )
        svg = figure.svg()
        svg_path = self.figures_dir / f"{figure.name}.svg"
        svg_path.write_text(svg, encoding="utf-8")
        png_path = self.figures_dir / f"{figure.name}.png"
        png_path.write_bytes(figure.png())
        figure.close()
        self.figure_files += [svg_path, png_path]
        return svg

    def csv(self, name: str, frame: pd.DataFrame) -> str:
        path = write_csv(self.tables_dir / f"{name}.csv", frame, self.stamp)
        self.csvs.append(path)
        return f"tables/{name}.csv"

    def sections(self) -> list[Section]:
        parts = [
            self.overview(),
            self.protocol_section(),
            self.flow_section(),
            self.baseline_section(),
        ]
        for outcome in self.content.analysis.outcomes:
            parts.append(self.outcome_section(outcome))
        for outcome in self.content.analysis.outcomes:
            if outcome.responders is not None:
                parts.append(self.responder_section(outcome))
        parts.append(self.treatment_section())
        parts.append(self.safety_section())
        parts.append(self.sensitivity_section())
        if self.content.evidence:
            parts.append(self.evidence_section())
        parts.append(self.methods_section())
        if self.content.assumptions:
            parts.append(self.assumptions_section())
        parts.append(self.provenance_section())
        return parts

    # ------------------------------------------------------------------ overview

    def overview(self) -> Section:
        content = self.content
        flow = content.analysis.consort
        section = Section("overview", "At a glance")
        arms = ", ".join(f"{self.label(arm.arm)} {arm.allocated}" for arm in flow.arms)
        section.text(
            f"{flow.assessed} people were screened and {flow.randomized} randomized ({arms}). "
            f"The primary outcomes were measured at {self.visit_labels[self.primary_visit]}."
        )
        self.glance = glance(content)
        for sentence in self.glance:
            section.text(sentence)
        if content.analysis.blinded:
            section.text(
                "You are blinded: arms are shown as masked groups, and the reference is the "
                "first group, not necessarily the control arm."
            )
        return section

    # ------------------------------------------------------------------ protocol

    def protocol_section(self) -> Section:
        section = Section("protocol", "Protocol")
        section.text(
            "The trial as its protocol declares it (lumbar reads the protocol as data; every "
            "rule below is the one screening applied)."
        )
        for table in summarize_protocol(self.content.protocol):
            if table.title in ("Trial", "Analysis"):
                continue
            section.table(table)
        return section

    # ------------------------------------------------------------------ CONSORT

    def flow_section(self) -> Section:
        flow = self.content.analysis.consort
        section = Section("consort", "Participant flow")
        figure = consort_figure(flow, labels=self.labels, visit_labels=self.visit_labels)
        section.figure(figure, self.save(figure))
        section.text(flow.method_text)
        return section

    # ------------------------------------------------------------------ Table 1

    def baseline_section(self) -> Section:
        table = self.content.analysis.baseline
        wide = table.wide().rename(columns={**self.labels, "all": "All"})
        repeated = wide["variable"] == wide["variable"].shift()
        wide.loc[repeated, "variable"] = ""
        section = Section("baseline", "Baseline characteristics (Table 1)")
        section.table(
            frame_table(wide, "Table 1. Baseline characteristics by arm", table.method_text),
            "tables/baseline_table.csv",
        )
        return section

    # ------------------------------------------------------------------ outcomes

    def outcome_section(self, outcome: OutcomeAnalysis) -> Section:
        name = _outcome_name(outcome.outcome)
        found = _score_of(outcome.outcome)
        instrument = found[0].name if found else outcome.outcome
        section = Section(
            f"outcome-{outcome.outcome}", found[0].title if found else outcome.outcome
        )
        primary = self.primary_visit
        rows = []
        for arm in self.arms:
            lsmean = next(e for e in outcome.ancova.lsmeans if e.visit == primary and e.arm == arm)
            row = {
                "arm": self.label(arm),
                "n": str(lsmean.n),
                "adjusted mean (SE)": f"{number(lsmean.estimate)} ({number(lsmean.se)})",
                "difference (95% CI)": "reference",
                "p": "",
            }
            if arm != self.reference:
                contrast = outcome.ancova.contrast(primary, arm)
                row["difference (95% CI)"] = (
                    f"{number(contrast.estimate)} ({interval(contrast.lower, contrast.upper)})"
                )
                row["p"] = p_value(contrast.p)
            rows.append(row)
        section.table(
            frame_table(
                pd.DataFrame(rows),
                f"Primary analysis: {name} at {self.visit_labels[primary]} (ANCOVA)",
                outcome.ancova.method_text,
            ),
            f"tables/{outcome.outcome}_ancova.csv",
        )
        for note in outcome.notes:
            section.text(f"Note: {note}")
        mmrm_rows = []
        for estimate in outcome.mmrm.contrasts:
            mmrm_rows.append(
                {
                    "visit": self.visit_labels.get(str(estimate.visit), estimate.visit),
                    "arm": self.label(str(estimate.arm)),
                    "difference": number(estimate.estimate),
                    "95% CI": interval(estimate.lower, estimate.upper),
                    "df": number(estimate.df, 1),
                    "p": p_value(estimate.p),
                }
            )
        section.table(
            frame_table(
                pd.DataFrame(mmrm_rows),
                f"{name} at every visit (MMRM): each arm minus {self.label(self.reference)}",
                outcome.mmrm.method_text,
            ),
            f"tables/{outcome.outcome}_mmrm.csv",
        )
        properties = self.content.protocol.thresholds_for(instrument)
        meaningful = properties.meaningful_group_difference
        lower_is_better = _direction(outcome.outcome) == "higher_is_worse"
        forest = contrast_figure(
            outcome.mmrm.to_frame(),
            arms=self.arms,
            reference=self.reference,
            labels=self.labels,
            visit_labels={v: self.visit_labels[v] for v in outcome.visits},
            meaningful=None if meaningful is None else meaningful.value,
            lower_is_better=lower_is_better,
            title=f"{name}: differences from {self.label(self.reference)} (MMRM)",
            name=f"{outcome.outcome}_differences",
        )
        section.figure(forest, self.save(forest))
        trajectory = trajectory_figure(
            self.content.tidy,
            outcome.outcome,
            arms=self.arms,
            reference=self.reference,
            labels=self.labels,
            weeks=self.content.weeks,
            title=f"{name} by week",
            axis_label=_axis_label(outcome.outcome),
            name=f"{outcome.outcome}_trajectory",
        )
        section.figure(trajectory, self.save(trajectory))
        return section

    # ------------------------------------------------------------------ responders

    def responder_section(self, outcome: OutcomeAnalysis) -> Section:
        result = outcome.responders
        assert result is not None
        name = _outcome_name(outcome.outcome)
        found = _score_of(outcome.outcome)
        instrument = found[0].name if found else outcome.outcome
        primary = self.primary_visit
        section = Section(
            f"responders-{outcome.outcome}", f"{name}: who improved by an amount that matters?"
        )
        properties = self.content.protocol.thresholds_for(instrument)
        reliable_points = None
        if "reliable" in result.sem_used:
            reliable_points = 1.96 * math.sqrt(2) * result.sem_used["reliable"]
        section.text(self.debate(outcome, properties, reliable_points))
        counts = result.counts[result.counts["visit"] == primary]
        comparisons = {(c.definition, c.arm): c for c in result.comparisons if c.visit == primary}
        rows = []
        for definition in result.definitions:
            row: dict[str, str] = {"definition of improved": definition.label}
            for arm in self.arms:
                record = counts[(counts["definition"] == definition.name) & (counts["arm"] == arm)]
                if record.empty:
                    row[self.label(arm)] = "-"
                    continue
                item = record.iloc[0]
                row[self.label(arm)] = (
                    f"{int(item['improved'])}/{int(item['n'])} ({percent(item['share_improved'])})"
                )
            for arm in self.arms[1:]:
                comparison = comparisons.get((definition.name, arm))
                if comparison is None:
                    continue
                nnt = comparison.nnt_interval.replace("NNT (benefit) ", "").replace(
                    "NNT (harm) ", "harm "
                )
                row[f"{self.label(arm)} vs {self.label(self.reference)}"] = (
                    f"{percent(comparison.risk_difference)} "
                    f"({percent(comparison.rd_lower)} to {percent(comparison.rd_upper)}); "
                    f"NNT {nnt}"
                )
            rows.append(row)
        frame = pd.DataFrame(rows)
        section.table(
            frame_table(
                frame,
                f"Improved at {self.visit_labels[primary]}, under each definition",
                "Each arm: improved / with the visit (%). Each comparison: difference in the "
                "share improved (95% CI); number needed to treat (95% CI). " + result.method_text,
            ),
            self.csv(f"{outcome.outcome}_responders_side_by_side", frame),
        )
        thresholds = _curve_thresholds(result.definitions, properties, reliable_points)
        curve = result.curve[result.curve["visit"] == primary]
        figure = responder_curve_figure(
            curve,
            arms=self.arms,
            reference=self.reference,
            labels=self.labels,
            thresholds=thresholds,
            title=f"{name}: cumulative improvement at {self.visit_labels[primary]}",
            axis_label=f"improvement from baseline in {_axis_label(outcome.outcome)}",
            name=f"{outcome.outcome}_responder_curve",
        )
        section.figure(figure, self.save(figure))
        return section

    def debate(
        self, outcome: OutcomeAnalysis, properties: Any, reliable_points: float | None
    ) -> str:
        """The "group difference vs measurement error" explanation, with this trial's numbers."""
        primary = self.primary_visit
        explanation = []
        group = properties.meaningful_group_difference
        if group is not None and len(self.arms) > 1:
            differences = ", ".join(
                f"{self.label(arm)} by {abs(outcome.ancova.contrast(primary, arm).estimate):.1f}"
                for arm in self.arms[1:]
            )
            explanation.append(
                f"The protocol calls a difference of {group.value:g} points between the arms' "
                f"means meaningful ({group.source}). Here the arms differed from "
                f"{self.label(self.reference)} at {self.visit_labels[primary]} as follows: "
                f"{differences} points."
            )
        if properties.sem is not None:
            detectable = properties.minimal_detectable_change
            explanation.append(
                "But a difference between group means is not a change in one person. One "
                "person's score has a standard error of measurement of about "
                f"{properties.sem.value:g} points ({properties.sem.source})"
                + (
                    f", so a change smaller than about {detectable.value:g} points cannot be "
                    f"told apart from measurement error ({detectable.source})"
                    if detectable is not None
                    else ""
                )
                + "."
            )
        if reliable_points is not None:
            explanation.append(
                "A reliable change (Jacobson and Truax) needs an improvement of at least "
                f"{reliable_points:.1f} points with the reliability used here."
            )
        explanation.append(
            "The table counts each arm's participants as improved under every definition side "
            "by side, and the curve shows the whole distribution: read the share of each arm "
            "at any threshold you prefer."
        )
        return " ".join(explanation)

    # ------------------------------------------------------------------ treatment

    def treatment_section(self) -> Section:
        section = Section("treatment", "Treatment received")
        treatment = self.content.treatment
        if treatment is None:
            section.text(
                "Hidden: session records reveal arms, and this report was made by a blinded "
                "user. An unblinded statistician's report includes adherence and techniques."
            )
            return section
        rows = []
        for arm, item in treatment.adherence.iterrows():
            planned = int(item["planned"])
            rows.append(
                {
                    "arm": self.label(str(arm)),
                    "allocated": str(int(item["allocated"])),
                    "planned sessions": str(planned) if planned else "none",
                    "started": f"{int(item['started'])}" if planned else "-",
                    f"completed (>= {100 * treatment.adequate_share:.0f}%)": (
                        _count_share(int(item["completed"]), int(item["allocated"]))
                        if planned
                        else "-"
                    ),
                    "sessions, median [IQR]": (
                        f"{number(item['sessions_median'], 0)} "
                        f"[{number(item['sessions_q1'], 0)}, {number(item['sessions_q3'], 0)}]"
                        if planned
                        else "-"
                    ),
                    "minutes: first / all sessions": (
                        f"{number(item['first_minutes_mean'], 0)} / "
                        f"{number(item['minutes_mean'], 0)}"
                        if planned
                        else "-"
                    ),
                }
            )
        frame = pd.DataFrame(rows)
        section.table(
            frame_table(frame, "Adherence", treatment.method_text),
            self.csv("adherence", treatment.adherence_frame()),
        )
        figure = attendance_figure(
            treatment.attendance,
            arms=self.arms,
            reference=self.reference,
            labels=self.labels,
            name="attendance",
        )
        section.figure(figure, self.save(figure))
        content = treatment.content
        self.csv("session_content", content)
        for kind, title in (
            ("technique", "Techniques"),
            ("body_region", "Body regions treated"),
            ("home_care", "Home-care advice"),
        ):
            rows = []
            for _, item in content[content["kind"] == kind].iterrows():
                rows.append(
                    {
                        "arm": self.label(str(item["arm"])),
                        kind.replace("_", " "): str(item["item"]).replace("_", " "),
                        "sessions": (
                            f"{int(item['sessions'])} ({percent(item['share_of_sessions'])})"
                        ),
                        "participants": (
                            f"{int(item['participants'])} "
                            f"({percent(item['share_of_participants'])})"
                        ),
                    }
                )
            if rows:
                section.table(
                    frame_table(pd.DataFrame(rows), f"{title}, per arm"),
                    "tables/session_content.csv",
                )
        return section

    # ------------------------------------------------------------------ safety

    def evidence_section(self) -> Section:
        section = Section("evidence", "Where this trial moves the evidence")
        synthetic = " (SYNTHETIC: simulated participants)" if self.content.synthetic else ""
        section.text(
            "Each primary outcome's published trials are pooled by a random-effects "
            "meta-analysis, first without this trial and then with its pre-specified "
            f"result (each massage arm against the reference arm){synthetic}. Rows "
            "without the numbers a pooled analysis needs are listed, not guessed."
        )
        for evidence in self.content.evidence:
            done = evidence.review
            assert done.before is not None  # gather keeps only reviews with the published pooled
            rows = []
            for label, result in (
                ("published trials", done.before),
                ("with this trial", done.model),
            ):
                pooled = result.pooled
                low, high = result.prediction or (math.nan, math.nan)
                rows.append(
                    {
                        "pooled": label,
                        "studies": str(result.k),
                        "mean difference (95% CI)": (
                            f"{number(pooled.estimate)} ({interval(pooled.lower, pooled.upper)})"
                        ),
                        "tau\u00b2": number(result.tau2, 3),
                        "I\u00b2": f"{result.i2:.0f}%",
                        "prediction interval": interval(low, high),
                    }
                )
            frame = pd.DataFrame(rows)
            section.table(
                frame_table(
                    frame,
                    f"{evidence.name}: pooled difference from the comparator, before and after",
                    done.model.method_text,
                ),
                self.csv(f"{evidence.outcome}_evidence", frame),
            )
            self.csv(f"{evidence.outcome}_evidence_studies", done.studies_frame())
            forest = review_forest(
                done,
                treatment="massage",
                comparator="comparator",
                higher_is_better=False,
                title=f"Massage vs comparator: {evidence.name}",
            )
            forest = replace(forest, name=f"{evidence.outcome}_forest")
            section.figure(forest, self.save(forest))
            if done.excluded:
                section.text(
                    "Not pooled (numbers not published): "
                    + "; ".join(f"{study} ({reason})" for study, reason in done.excluded)
                    + "."
                )
        return section

    def safety_section(self) -> Section:
        section = Section("safety", "Adverse events")
        safety = self.content.safety
        if safety is None:
            section.text("Hidden: adverse-event records reveal arms to a blinded user.")
            return section
        rows = []
        for arm, item in safety.by_arm.iterrows():
            rows.append(
                {
                    "arm": self.label(str(arm)),
                    "allocated": str(int(item["allocated"])),
                    "participants with an event": (
                        f"{int(item['participants_with_event'])} "
                        f"({percent(item['share_with_event'], 1)})"
                    ),
                    "events": str(int(item["events"])),
                    "mild / moderate / severe": (
                        f"{int(item['mild'])} / {int(item['moderate'])} / {int(item['severe'])}"
                    ),
                    "related to treatment": str(int(item["related_events"])),
                    "serious (participants)": (
                        f"{int(item['serious_events'])} ({int(item['participants_with_serious'])})"
                    ),
                }
            )
        section.table(
            frame_table(pd.DataFrame(rows), "Adverse events by arm", safety.method_text),
            self.csv("adverse_events", safety.to_frame()),
        )
        return section

    # ------------------------------------------------------------------ sensitivity

    def sensitivity_section(self) -> Section:
        section = Section("sensitivity", "Missing data and sensitivity analyses")
        for outcome in self.content.analysis.outcomes:
            name = _outcome_name(outcome.outcome)
            rows = []
            for visit in outcome.visits:
                for arm in self.arms[1:]:
                    row = {
                        "visit": self.visit_labels.get(visit, visit),
                        "arm": self.label(arm),
                        "ANCOVA, complete cases": _ci_text(outcome.ancova.contrast(visit, arm)),
                        "MMRM (missing at random)": _ci_text(outcome.mmrm.contrast(visit, arm)),
                    }
                    if outcome.imputation is not None:
                        pooled = outcome.imputation.contrast(visit, arm)
                        row[f"multiple imputation (m={outcome.imputation.m})"] = (
                            f"{number(pooled.estimate)} ({interval(pooled.lower, pooled.upper)})"
                        )
                    if outcome.gee is not None:
                        row["GEE (protocol)"] = _ci_text(outcome.gee.contrast(visit, arm))
                    rows.append(row)
            notes = [outcome.mmrm.method_text]
            if outcome.imputation is not None:
                notes.append(outcome.imputation.method_text)
            if outcome.gee is not None:
                notes.append(outcome.gee.method_text)
            notes.extend(outcome.notes)
            frame = pd.DataFrame(rows)
            section.table(
                frame_table(
                    frame,
                    f"{name}: the difference from {self.label(self.reference)} by each method",
                    " ".join(notes),
                ),
                self.csv(f"{outcome.outcome}_methods_side_by_side", frame),
            )
            if outcome.tipping_point is not None:
                tipping = outcome.tipping_point
                lines = []
                for key, value in tipping.tipping_points.items():
                    visit, arm = key.split("/", 1)
                    if visit != self.primary_visit:
                        continue
                    if not tipping.significant_without_delta[key]:
                        text = "not significant even without a shift"
                    elif value is None:
                        text = (
                            "still significant with the largest shift tried "
                            f"({max(tipping.table['delta']):g} points)"
                        )
                    else:
                        text = f"no longer significant from a shift of {value:g} points"
                    lines.append(f"{self.label(arm)}: {text}")
                section.text(
                    f"{name}, tipping point at {self.visit_labels[self.primary_visit]}: "
                    + "; ".join(lines)
                    + ". "
                    + tipping.method_text
                )
                figure = tipping_point_figure(
                    tipping.table,
                    visit=self.primary_visit,
                    arms=self.arms,
                    reference=self.reference,
                    labels=self.labels,
                    title=(
                        f"{name}: tipping-point analysis at {self.visit_labels[self.primary_visit]}"
                    ),
                    name=f"{outcome.outcome}_tipping_point",
                )
                section.figure(figure, self.save(figure))
        return section

    # ------------------------------------------------------------------ methods

    def methods_section(self) -> Section:
        content = self.content
        protocol = content.protocol
        flow = content.analysis.consort
        section = Section("methods", "Methods")
        arms = "; ".join(
            f"{arm.label} ({arm.sessions.planned} sessions)"
            if arm.sessions.planned
            else f"{arm.label} (no study sessions)"
            for arm in protocol.arms
        )
        strata = ", ".join(factor.id for factor in protocol.randomization.strata) or "none"
        covariates = ", ".join(protocol.analysis.covariates) or "none"
        follow = ", ".join(visit.label for visit in protocol.follow_up_visits)
        design = (
            f"{protocol.trial.title} is a randomized trial of {len(protocol.arms)} arms: {arms}. "
            f"Participants were randomized in permuted blocks within strata ({strata}) and "
            f"followed at {follow}. The primary outcomes ("
            + ", ".join(_outcome_name(o.outcome) for o in content.analysis.outcomes)
            + f") were analysed at {self.visit_labels[self.primary_visit]} by intention to "
            f"treat, each arm against {self.label(self.reference)}, adjusted for the baseline "
            f"value and {covariates}."
        )
        section.text(design)
        section.text(self.shared_methods())
        for outcome in content.analysis.outcomes:
            if outcome.responders is not None:
                section.text(self.plain(outcome.responders.method_text, outcome.outcome, ""))
        section.text(content.analysis.baseline.method_text)
        section.text(flow.method_text)
        if content.treatment is not None:
            section.text(content.treatment.method_text)
        if content.safety is not None:
            section.text(content.safety.method_text)
        section.text(
            f"All analyses were run with lumbar {__version__}; its estimators are checked "
            "against R (lm, nlme::gls with emmeans, geepack, mice) in its test suite."
        )
        return section

    def plain(self, text: str, column: str, replacement: str) -> str:
        """A method text with dataset names made readable: the outcome column, arm ids."""
        text = text.replace(column, replacement or _outcome_name(column))
        for arm, label in self.labels.items():
            text = text.replace(f" {arm} ", f" {label} ").replace(f" {arm}.", f" {label}.")
            text = text.replace(f" {arm},", f" {label},").replace(f" {arm} (", f" {label} (")
        return text

    def shared_methods(self) -> str:
        """The estimators' method texts, said once for every primary outcome."""
        first = self.content.analysis.outcomes[0]
        parts = [first.ancova.method_text, first.mmrm.method_text]
        for result in (first.gee, first.imputation, first.tipping_point):
            if result is not None:
                parts.append(result.method_text)
        return self.plain(" ".join(parts), first.outcome, "each primary outcome")

    def assumptions_section(self) -> Section:
        section = Section("simulation", "How the synthetic data were made")
        section.text(
            "These participants are simulated. The simulator ran the trial through lumbar's "
            "own operations (screening, consent, randomization, sessions, questionnaires, "
            "audit trail) with the assumptions below; every number without a published "
            "source is an assumption and can be changed."
        )
        frame = pd.DataFrame(self.content.assumptions, columns=["assumption", "value", "source"])
        section.table(
            frame_table(frame, "Simulation assumptions"),
            self.csv("simulation_assumptions", frame),
        )
        return section

    def provenance_section(self) -> Section:
        content = self.content
        info = content.info
        section = Section("provenance", "Provenance")
        rows: list[tuple[str, str]] = [
            ("trial", f"{info.id}: {info.title}"),
            (
                "data",
                "SYNTHETIC (simulated participants)" if content.synthetic else "trial records",
            ),
            ("protocol version", info.protocol_version),
            ("protocol sha256", info.protocol_hash),
            ("database", info.database),
            ("database created", f"{info.created_at:%Y-%m-%d} with lumbar {info.created_with}"),
            ("report made", f"{content.made_at:%Y-%m-%d %H:%M} UTC with lumbar {__version__}"),
            ("seed (imputations)", str(content.settings.seed)),
            (
                "settings",
                f"alpha {content.settings.alpha}, covariance {content.settings.covariance}, "
                f"{content.settings.imputations} imputations "
                f"({content.settings.imputation_method})",
            ),
        ]
        for outcome in content.analysis.outcomes:
            rows.append((f"data sha256 ({outcome.outcome})", outcome.provenance.data_hash))
        if content.audit is not None:
            audit = content.audit
            state = "intact" if audit.intact else f"BROKEN ({len(audit.findings)} findings)"
            rows.append(
                ("audit trail", f"{audit.records} records, {state}; head {audit.head_hash}")
            )
        else:
            rows.append(("audit trail", "not checked (your role may not read it)"))
        rows.append(
            (
                "software",
                f"Python {platform.python_version()}, NumPy {np.__version__}, "
                f"SciPy {scipy.__version__}, pandas {pd.__version__}",
            )
        )
        section.table(SummaryTable("Provenance", ("item", "value"), tuple(rows)))
        section.text(
            "Every table of this report is in tables/ as CSV (stamped with this provenance), "
            "every figure in figures/ as SVG and PNG, and every result in tables/results.json."
        )
        return section


# ---------------------------------------------------------------------- helpers


def glance(content: ReportContent) -> list[str]:
    """One sentence per primary outcome and arm: the primary analysis, in words."""
    labels = content.labels
    analysis = content.analysis
    primary = content.protocol.primary_outcomes[0].visit
    when = content.visit_labels[primary]
    sentences = []
    for outcome in analysis.outcomes:
        name = _outcome_name(outcome.outcome)
        for arm in analysis.arms[1:]:
            estimate = outcome.ancova.contrast(primary, arm)
            direction = "lower" if estimate.estimate < 0 else "higher"
            sentences.append(
                f"{name}: {labels.get(arm, arm)} {abs(estimate.estimate):.1f} points {direction} "
                f"than {labels.get(analysis.reference, analysis.reference)} at {when} (95% CI "
                f"{interval(estimate.lower, estimate.upper, 1)}; p {_p_text(estimate.p)})."
            )
    return sentences


def _curve_thresholds(
    definitions: Sequence[Definition], properties: Any, reliable_points: float | None
) -> list[tuple[float, str]]:
    """Vertical lines for the responder curve: every threshold in points, labelled."""
    thresholds: list[tuple[float, str]] = [
        (definition.threshold, definition.label)
        for definition in definitions
        if definition.kind == "points"
    ]
    if reliable_points is not None:
        thresholds.append((reliable_points, f"reliable change ({reliable_points:.1f})"))
    if properties.minimal_detectable_change is not None:
        value = properties.minimal_detectable_change.value
        same = [
            index for index, (existing, _) in enumerate(thresholds) if abs(existing - value) < 1e-9
        ]
        if same:
            existing, text = thresholds[same[0]]
            thresholds[same[0]] = (existing, f"{text} = detectable change")
        else:
            thresholds.append((value, f"minimal detectable change ({value:g})"))
    return sorted(thresholds)


def _score_of(column: str) -> tuple[Instrument, Score] | None:
    """The instrument and score behind a dataset column ``<instrument>_<score>``."""
    for instrument in INSTRUMENTS:
        for score in instrument.scores:
            if column == f"{instrument.name}_{score.id}":
                return instrument, score
    return None


def _outcome_name(column: str) -> str:
    """A short name for sentences: the score's label without its range ("RDQ total")."""
    found = _score_of(column)
    if found is None:
        return column
    return found[1].label.split(" (")[0]


def _axis_label(column: str) -> str:
    found = _score_of(column)
    return column if found is None else found[1].label


def _direction(column: str) -> str:
    found = _score_of(column)
    return "higher_is_worse" if found is None else found[1].direction


def _count_share(count: int, total: int) -> str:
    return f"{count} ({percent(count / total)})" if total else str(count)


def _ci_text(estimate: Any) -> str:
    return f"{number(estimate.estimate)} ({interval(estimate.lower, estimate.upper)})"


def _p_text(p: float) -> str:
    text = p_value(p)
    return text if text.startswith("<") else f"= {text}"
