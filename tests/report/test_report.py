"""The report of a synthetic trial: every section, table and figure, labelled synthetic, and
a blinded reader's report that gives nothing away."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from lumbar.application import trial_report
from lumbar.demo import DemoResult
from lumbar.formatting import SYNTHETIC_NOTE
from lumbar.operations import Trial
from lumbar.report import ReportError, write_report
from lumbar.synthesis import shipped_studies
from tests.report.pooled import assert_nothing_per_arm

pytestmark = pytest.mark.integration

SECTIONS = (
    "overview",
    "protocol",
    "consort",
    "baseline",
    "outcome-rdq_total",
    "outcome-bothersomeness_score",
    "responders-rdq_total",
    "responders-bothersomeness_score",
    "treatment",
    "safety",
    "sensitivity",
    "evidence",
    "methods",
    "simulation",
    "provenance",
)


def test_the_demo_writes_every_section_table_and_figure(demo: DemoResult) -> None:
    html = demo.report.html.read_text("utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    assert 'id="synthetic-banner"' in html
    assert "<title>[SYNTHETIC]" in html
    # Self-contained: figures inline, no file or network references.
    assert html.count("<svg") >= 10
    assert 'src="http' not in html
    assert "<link" not in html
    names = {path.name for path in demo.report.figures}
    for figure in (
        "consort",
        "rdq_total_trajectory",
        "rdq_total_differences",
        "rdq_total_responder_curve",
        "rdq_total_tipping_point",
        "attendance",
    ):
        assert {f"{figure}.svg", f"{figure}.png"} <= names
    tables = {path.name for path in demo.report.tables}
    for table in (
        "results.json",
        "baseline_table.csv",
        "consort.csv",
        "rdq_total_ancova.csv",
        "rdq_total_mmrm.csv",
        "rdq_total_imputation.csv",
        "rdq_total_responders_side_by_side.csv",
        "adherence.csv",
        "session_content.csv",
        "adverse_events.csv",
        "simulation_assumptions.csv",
        "rdq_total_evidence.csv",
        "rdq_total_evidence_studies.csv",
    ):
        assert table in tables
    assert demo.audit is not None
    assert demo.audit.intact
    assert set(demo.timings) == {"create", "simulate", "analyse", "report", "accounts", "total"}


def test_every_file_says_synthetic(demo: DemoResult) -> None:
    for path in demo.report.tables:
        text = path.read_text("utf-8")
        if path.suffix == ".csv":
            assert text.startswith(f"# {SYNTHETIC_NOTE}"), path.name
        else:
            assert json.loads(text)["synthetic"] is True
    for path in demo.report.figures:
        if path.suffix == ".svg":
            assert "SYNTHETIC DATA" in path.read_text("utf-8"), path.name
        else:
            assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_evidence_section_places_the_trial_among_the_published(demo: DemoResult) -> None:
    evidence = {item.outcome: item for item in demo.content.evidence}
    assert set(evidence) == {"rdq_total", "bothersomeness_score"}
    rdq = evidence["rdq_total"].review
    assert rdq.before is not None
    assert rdq.before.k == 2  # the two Cherkin 2011 comparisons with a published CI
    assert rdq.model.k == 4
    studies = pd.read_csv(
        demo.folder / "report" / "tables" / "rdq_total_evidence_studies.csv", comment="#"
    )
    assert studies["this_trial"].sum() == 2
    assert all(studies.loc[studies["this_trial"], "study"].str.startswith("SYNTHETIC "))
    assert studies["weight"].sum() == pytest.approx(100.0)
    assert (demo.folder / "report" / "figures" / "rdq_total_forest.svg").exists()
    html = demo.report.html.read_text("utf-8")
    assert "Majchrzycki 2014 (RDQ) (not published: n1, n2)" in html


def test_tables_hold_the_analysis_numbers(demo: DemoResult) -> None:
    outcome = demo.content.analysis.outcome("rdq_total")
    written = pd.read_csv(demo.folder / "report" / "tables" / "rdq_total_ancova.csv", comment="#")
    expected = outcome.ancova.to_frame()
    pd.testing.assert_series_equal(written["estimate"], expected["estimate"], rtol=1e-12)
    html = demo.report.html.read_text("utf-8")
    primary = expected[expected["visit"] == "week_10"].iloc[0]
    assert f"{primary['estimate']:.2f}".replace("-", "\u2212") in html
    # The debate on meaningful change is on the page, with the numbers behind it.
    assert "measurement error" in html
    assert "2 points" in html or "2-point" in html


def test_figures_are_the_same_bytes_each_time(demo: DemoResult, tmp_path: Path) -> None:
    again = write_report(demo.content, tmp_path)
    for first, second in zip(demo.report.figures, again.figures, strict=True):
        assert first.name == second.name
        assert first.read_bytes() == second.read_bytes(), first.name


def test_a_blinded_statistician_gets_a_pooled_report(demo: DemoResult, tmp_path: Path) -> None:
    admin = demo_trial(demo, "admin")
    try:
        admin.add_staff("blinded_stat", "statistician", all_sites=True)
    finally:
        admin.close()
    reader = demo_trial(demo, "blinded_stat")
    try:
        content = trial_report(reader, studies=shipped_studies())
    finally:
        reader.close()
    assert content.analysis.blinded
    assert not content.analysis.compared
    assert content.treatment is None
    assert content.safety is None
    assert content.evidence == ()
    files = write_report(content, tmp_path)
    assert_nothing_per_arm(files, content.protocol)


def test_pdf_is_written_or_refused_with_the_fix(demo: DemoResult, tmp_path: Path) -> None:
    try:
        import weasyprint  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
    except (ImportError, OSError):
        if os.environ.get("CI"):
            pytest.fail("CI installs the pdf extra (WeasyPrint): it must import")
        with pytest.raises(ReportError, match="pdf"):
            write_report(demo.content, tmp_path, pdf=True)
        return
    files = write_report(demo.content, tmp_path, pdf=True)
    assert files.pdf is not None
    assert files.pdf.read_bytes().startswith(b"%PDF-")
    assert files.pdf.stat().st_size > 50_000


def test_missing_pdf_extra_is_a_clear_error(
    demo: DemoResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def refuse(name: str, *args: object, **kwargs: object) -> object:
        if name == "weasyprint":
            raise ImportError("No module named 'weasyprint'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ReportError) as error:
        write_report(demo.content, tmp_path, pdf=True)
    message = str(error.value)
    assert "pdf: needs the optional 'pdf' extra" in message  # the parameter, not a flag
    assert "lumbar[pdf]" in message
    assert (tmp_path / "report.html").exists(), "the HTML report is still written"


def demo_trial(demo: DemoResult, user: str) -> Trial:
    return Trial.open(f"sqlite:///{demo.database}", user, key_file=demo.folder / "trial.db.key")


def test_answers_outside_their_window_are_said_and_shown_in_the_sensitivity_table(
    demo: DemoResult, tmp_path: Path
) -> None:
    """The reference protocol's rule (include): the report says how many values were out of
    window and shows the primary models without them beside the other methods."""
    from dataclasses import replace

    from lumbar.analysis.plan import Settings
    from lumbar.application import read_trial, report_content

    trial = Trial.open(
        f"sqlite:///{demo.database}", "statistician", key_file=demo.folder / "trial.db.key"
    )
    try:
        records = read_trial(trial)
    finally:
        trial.close()
    assert not records.tidy["out_of_window"].any()  # the simulator keeps to the windows
    tidy = records.tidy.copy()
    late = tidy.index[(tidy["visit"] == "week_26") & tidy["rdq_total"].notna()][:4]
    tidy.loc[late, "out_of_window"] = True
    tidy.loc[late, "window"] = "late"
    content = report_content(
        replace(records, tidy=tidy), settings=Settings(imputations=2, include_gee=False)
    )
    files = write_report(content, tmp_path)
    html = files.html.read_text("utf-8")
    assert "4 values of rdq_total completed outside their visit&#39;s window were included" in html
    assert "ANCOVA, without out-of-window values" in html
    side_by_side = pd.read_csv(
        tmp_path / "tables" / "rdq_total_methods_side_by_side.csv", comment="#"
    )
    assert "MMRM, without out-of-window values" in side_by_side.columns
