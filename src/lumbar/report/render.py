"""Turn a :class:`ReportContent` into the report's files: HTML (and PDF), CSV tables, figures.

:func:`write_report` writes, into one folder::

    report.html        self-contained: styles and figures inline, opens offline
    report.pdf         with the optional ``pdf`` extra (WeasyPrint), when asked
    figures/*.svg|png  every figure, both formats
    tables/*.csv       every table, stamped; tables/results.json holds every result

A ``"comparison"`` report compares the arms (:mod:`lumbar.report.comparisons`);
a ``"pooled"`` one (a blinded reader's, or an early trial's) describes all
participants together: the flow so far, Table 1, follow-up and what is due, the
outcomes by visit and the missing data. The files go through the one writer
(:class:`lumbar.report.files.ResultsFolder`) and the numbers through the one
formatter (:mod:`lumbar.formatting`).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import scipy

from lumbar import __version__
from lumbar._summary import SummaryTable
from lumbar.errors import LumbarError, Problem
from lumbar.formatting import SYNTHETIC, SYNTHETIC_NOTE, number, percent
from lumbar.protocol.summary import summarize_protocol
from lumbar.report.comparisons import comparison_sections, safety_section, treatment_section
from lumbar.report.content import ReportContent
from lumbar.report.figures import consort_figure
from lumbar.report.files import ResultsFolder, write_results
from lumbar.report.page import Page, Section, count_share, frame_table, outcome_name

__all__ = ["ReportError", "ReportFiles", "write_report"]


class ReportError(LumbarError):
    """The report could not be written (for instance the PDF extra is not installed)."""


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    pdf: Path | None
    figures: tuple[Path, ...]
    tables: tuple[Path, ...]


def write_report(content: ReportContent, out: Path, *, pdf: bool = False) -> ReportFiles:
    """Write the report of ``content`` into ``out`` (created if needed)."""
    tables = ResultsFolder(out / "tables", synthetic=content.synthetic)
    figures = ResultsFolder(out / "figures", synthetic=content.synthetic)
    analysis = content.analysis
    write_results(
        tables, analysis.outcomes, extra=analysis.extra(), extra_tables=analysis.extra_tables()
    )
    page = Page(content, tables, figures)
    sections = _sections(page)
    html = _template().render(
        content=content,
        sections=sections,
        title=content.info.title,
        synthetic=content.synthetic,
        synthetic_mark=SYNTHETIC,
        synthetic_note=SYNTHETIC_NOTE,
        blinded=analysis.blinded,
        made_at=content.made_at.strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
        glance=page.glance,
    )
    html_path = out / "report.html"
    html_path.write_text(html, encoding="utf-8")
    pdf_path = _write_pdf(html, out / "report.pdf") if pdf else None
    return ReportFiles(html_path, pdf_path, tuple(figures.figures), tuple(tables.tables))


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
                    "pdf",
                    "needs the optional 'pdf' extra (WeasyPrint and the Pango library)",
                    str(error).splitlines()[0] if str(error) else None,
                    "pip install 'lumbar[pdf]' (and apt-get install libpango-1.0-0 "
                    "libpangoft2-1.0-0), or print report.html from a browser",
                )
            ],
        ) from None
    weasyprint.HTML(string=html, base_url=str(path.parent)).write_pdf(path)
    return path


def _sections(page: Page) -> list[Section]:
    content = page.content
    parts = [overview(page), protocol_section(page), flow_section(page)]
    if content.analysis.baseline is not None:
        parts.append(baseline_section(page))
    if content.kind == "comparison":
        parts += comparison_sections(page)
    else:
        parts += [follow_up_section(page), pooled_outcomes_section(page), missing_section(page)]
        if content.treatment is not None:
            parts.append(treatment_section(page))
        if content.safety is not None:
            parts.append(safety_section(page))
    parts.append(methods_section(page))
    if content.assumptions:
        parts.append(assumptions_section(page))
    parts.append(provenance_section(page))
    return parts


# ---------------------------------------------------------------------- every report


def overview(page: Page) -> Section:
    content = page.content
    analysis = content.analysis
    flow = analysis.consort
    section = Section("overview", "At a glance")
    if flow.pooled:
        randomized = f"{flow.randomized} randomized"
    else:
        arms = ", ".join(f"{page.label(arm.arm)} {arm.allocated}" for arm in flow.arms)
        randomized = f"{flow.randomized} randomized ({arms})"
    section.text(
        f"{flow.assessed} people were screened and {randomized}. The primary outcomes are "
        f"measured at {page.visit_labels[page.primary_visit]}."
    )
    for note in (*analysis.notes, *content.notes):
        section.text(note)
    for sentence in page.glance:
        section.text(sentence)
    if analysis.blinded:
        section.text(
            "Left out because they would reveal the arms: every number by arm, every "
            "difference between arms, treatment sessions, adverse events, and the evidence "
            "section. An unblinded statistician's report has them."
        )
    return section


def protocol_section(page: Page) -> Section:
    section = Section("protocol", "Protocol")
    section.text(
        "The trial as its protocol declares it (lumbar reads the protocol as data; every "
        "rule below is the one screening applied)."
    )
    for table in summarize_protocol(page.content.protocol):
        if table.title == "Trial":
            continue
        section.table(table)
    return section


def flow_section(page: Page) -> Section:
    flow = page.content.analysis.consort
    section = Section("consort", "Participant flow" + (" so far" if flow.pooled else ""))
    figure = consort_figure(flow, labels=page.labels, visit_labels=page.visit_labels)
    page.show(section, figure)
    section.text(flow.method_text)
    return section


def baseline_section(page: Page) -> Section:
    table = page.content.analysis.baseline
    assert table is not None  # _sections adds this section only with a table
    wide = table.wide().rename(columns={**page.labels, "all": "All"})
    repeated = wide["variable"] == wide["variable"].shift()
    wide.loc[repeated, "variable"] = ""
    title = "Table 1. Baseline characteristics " + (
        "by arm" if table.arms else "of all participants"
    )
    section = Section("baseline", "Baseline characteristics (Table 1)")
    section.table(frame_table(wide, title, table.method_text), "tables/baseline_table.csv")
    return section


# ---------------------------------------------------------------------- all participants together


def follow_up_section(page: Page) -> Section:
    """Where every participant stands at each visit: what is complete, due and to come."""
    summary = page.content.analysis.summary
    section = Section("follow-up", "Follow-up so far")
    rows = []
    for flow in summary.follow_up:
        baseline = flow.visit == summary.baseline_visit
        rows.append(
            {
                "visit": page.visit_labels.get(flow.visit, flow.visit),
                "participants": str(flow.participants),
                "complete": count_share(flow.complete, flow.participants),
                "due now (window open)": "-" if baseline else str(flow.due + flow.overdue),
                "of which overdue": "-" if baseline else str(flow.overdue),
                "upcoming": "-" if baseline else str(flow.upcoming),
                "missed": "-" if baseline else str(flow.missed),
                "follow-up ended": "-" if baseline else str(flow.withdrawn),
                "incomplete": str(flow.incomplete) if baseline else "-",
            }
        )
    section.table(
        frame_table(
            pd.DataFrame(rows),
            "Visits of the randomized participants, as of the day of this report",
            "Due: the visit's window is open; overdue: open and past its target day; "
            "missed: the window closed without the visit; follow-up ended: the participant "
            "was lost to follow-up or withdrew consent before the visit.",
        ),
        "tables/follow_up.csv",
    )
    due = sum(flow.due + flow.overdue for flow in summary.follow_up)
    section.text(
        f"{due} follow-up visits are due now; 'lumbar due' lists them by participant and site."
        if due
        else "No follow-up visit is due today."
    )
    return section


def pooled_outcomes_section(page: Page) -> Section:
    summary = page.content.analysis.summary
    section = Section("outcomes-pooled", "Outcomes by visit, all participants")
    for column in summary.outcomes:
        rows = []
        for visit in summary.visits:
            at = summary.at(column, visit)
            rows.append(
                {
                    "visit": page.visit_labels.get(visit, visit),
                    "n": str(at.n),
                    "expected": str(at.expected),
                    "completeness": percent(at.completeness),
                    "mean (SD)": f"{number(at.mean, 1)} ({number(at.sd, 1)})" if at.n else "-",
                    "median": number(at.median, 1),
                }
            )
        section.table(
            frame_table(pd.DataFrame(rows), f"{outcome_name(column)} by visit"),
            "tables/outcomes_by_visit.csv",
        )
    section.text(summary.method_text)
    return section


def missing_section(page: Page) -> Section:
    summary = page.content.analysis.summary
    section = Section("missing", "Missing data")
    rows = []
    for at in summary.rows:
        rows.append(
            {
                "outcome": outcome_name(at.outcome),
                "visit": page.visit_labels.get(at.visit, at.visit),
                "expected": str(at.expected),
                "missing": count_share(at.missing, at.expected),
                "visit missed": str(at.missed),
                "follow-up ended": str(at.withdrawn),
                "recorded without a value": str(at.not_scored),
                "still to come": str(at.participants - at.expected),
            }
        )
    section.table(
        frame_table(
            pd.DataFrame(rows),
            "Missing values of the primary outcomes, all participants",
            "A value is expected once the visit is complete or its window has closed. "
            "'Recorded without a value': the questionnaire was recorded with too many items "
            "unanswered to score, or the baseline visit is incomplete.",
        ),
        "tables/outcomes_by_visit.csv",
    )
    return section


# ---------------------------------------------------------------------- methods and provenance


def methods_section(page: Page) -> Section:
    content = page.content
    protocol = content.protocol
    analysis = content.analysis
    section = Section("methods", "Methods")
    strata = ", ".join(factor.id for factor in protocol.randomization.strata) or "none"
    follow = ", ".join(visit.label for visit in protocol.follow_up_visits)
    if analysis.blinded:
        arms = f"{len(protocol.arms)} arms"
    else:
        arms = f"{len(protocol.arms)} arms: " + "; ".join(
            f"{arm.label} ({arm.sessions.planned} sessions)"
            if arm.sessions.planned
            else f"{arm.label} (no study sessions)"
            for arm in protocol.arms
        )
    design = (
        f"{protocol.trial.title} is a randomized trial of {arms}. Participants were "
        f"randomized in permuted blocks within strata ({strata}) and followed at {follow}."
    )
    if analysis.compared:
        covariates = ", ".join(protocol.analysis.covariates) or "none"
        design += (
            " The primary outcomes ("
            + ", ".join(outcome_name(o.outcome) for o in analysis.outcomes)
            + f") were analysed at {page.visit_labels[page.primary_visit]} by intention to "
            f"treat, each arm against {page.label(page.reference)}, adjusted for the baseline "
            f"value and {covariates}."
        )
    section.text(design)
    if analysis.compared:
        section.text(_shared_methods(page))
        for outcome in analysis.outcomes:
            if outcome.responders is not None:
                section.text(_plain(page, outcome.responders.method_text, outcome.outcome, ""))
    else:
        section.text(
            "This report describes the trial so far, all participants together; it compares "
            "no arms. " + analysis.summary.method_text
        )
    if analysis.baseline is not None:
        section.text(analysis.baseline.method_text)
    section.text(analysis.consort.method_text)
    if content.treatment is not None:
        section.text(content.treatment.method_text)
    if content.safety is not None:
        section.text(content.safety.method_text)
    section.text(
        f"All analyses were run with lumbar {__version__}; its estimators are checked "
        "against R (lm, nlme::gls with emmeans, geepack, mice) in its test suite."
    )
    return section


def _plain(page: Page, text: str, column: str, replacement: str) -> str:
    """A method text with dataset names made readable: the outcome column, arm ids."""
    text = text.replace(column, replacement or outcome_name(column))
    for arm, label in page.labels.items():
        text = text.replace(f" {arm} ", f" {label} ").replace(f" {arm}.", f" {label}.")
        text = text.replace(f" {arm},", f" {label},").replace(f" {arm} (", f" {label} (")
    return text


def _shared_methods(page: Page) -> str:
    """The estimators' method texts, said once for every primary outcome."""
    first = page.content.analysis.outcomes[0]
    parts = [first.ancova.method_text, first.mmrm.method_text]
    for result in (first.gee, first.imputation, first.tipping_point):
        if result is not None:
            parts.append(result.method_text)
    return _plain(page, " ".join(parts), first.outcome, "each primary outcome")


def assumptions_section(page: Page) -> Section:
    section = Section("simulation", "How the synthetic data were made")
    section.text(
        "These participants are simulated. The simulator ran the trial through lumbar's "
        "own operations (screening, consent, randomization, sessions, questionnaires, "
        "audit trail) with the assumptions below; every number without a published "
        "source is an assumption and can be changed."
    )
    frame = pd.DataFrame(page.content.assumptions, columns=["assumption", "value", "source"])
    section.table(
        frame_table(frame, "Simulation assumptions"),
        page.csv("simulation_assumptions", frame),
    )
    return section


def provenance_section(page: Page) -> Section:
    content = page.content
    info = content.info
    section = Section("provenance", "Provenance")
    rows: list[tuple[str, str]] = [
        ("trial", f"{info.id}: {info.title}"),
        ("data", SYNTHETIC_NOTE if content.synthetic else "trial records"),
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
        ("data sha256 (outcomes by visit)", content.analysis.summary.data_hash),
    ]
    for outcome in content.analysis.outcomes:
        rows.append((f"data sha256 ({outcome.outcome})", outcome.provenance.data_hash))
    if content.audit is not None:
        audit = content.audit
        state = "intact" if audit.intact else f"BROKEN ({len(audit.findings)} findings)"
        rows.append(("audit trail", f"{audit.records} records, {state}; head {audit.head_hash}"))
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
