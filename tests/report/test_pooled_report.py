"""Reports that compare no arms: a blinded reader's (all participants together, nothing per
arm) and an early trial's (enrolment and baseline, before any follow-up)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from lumbar.analysis.plan import Settings
from lumbar.application import (
    TrialRecords,
    read_trial,
    report_content,
    trial_rows,
    write_analysis,
)
from lumbar.demo import DemoResult
from lumbar.errors import AccessError
from lumbar.operations import Trial
from lumbar.report import write_report
from lumbar.synthesis import shipped_studies
from tests.report.pooled import arm_words, assert_nothing_per_arm

pytestmark = pytest.mark.integration

QUICK = Settings(imputations=2)


def _records(demo: DemoResult) -> TrialRecords:
    trial = Trial.open(
        f"sqlite:///{demo.database}", "statistician", key_file=demo.folder / "trial.db.key"
    )
    try:
        return read_trial(trial)
    finally:
        trial.close()


def _blinded(records: TrialRecords) -> TrialRecords:
    """The records as a blinded reader gets them: no arm anywhere, no sessions, no events."""
    tidy = records.tidy.copy()
    tidy["arm"] = pd.Series(pd.NA, index=tidy.index, dtype="string")
    consort = records.consort.copy()
    for column in ("arm", "arm_has_sessions", "sessions"):
        consort[column] = pd.NA
    return replace(records, tidy=tidy, consort=consort, sessions=None, adverse_events=None)


@pytest.fixture(scope="module")
def blinded(demo: DemoResult) -> TrialRecords:
    return _blinded(_records(demo))


def test_a_blinded_report_holds_no_arm_and_no_comparison(
    blinded: TrialRecords, tmp_path: Path
) -> None:
    content = report_content(blinded, settings=QUICK, studies=shipped_studies())
    analysis = content.analysis
    assert analysis.blinded
    assert (analysis.outcomes, analysis.arms, analysis.reference) == ((), (), None)
    assert content.evidence == ()
    assert content.kind == "pooled"
    assert analysis.consort.pooled
    assert analysis.baseline is not None
    assert analysis.baseline.arms == ()
    assert any("evidence section is left out" in note for note in content.notes)
    files = write_report(content, tmp_path)
    assert_nothing_per_arm(files, content.protocol)
    html = files.html.read_text("utf-8")
    assert 'id="blinded-banner"' in html
    assert "Outcomes by visit, all participants" in html


def test_a_blinded_report_counts_everyone_together(blinded: TrialRecords, demo: DemoResult) -> None:
    analysis = report_content(blinded, settings=QUICK).analysis
    unblinded = demo.content.analysis
    assert analysis.consort.randomized == unblinded.consort.randomized
    (flow,) = analysis.consort.arms
    assert flow.allocated == sum(arm.allocated for arm in unblinded.consort.arms)
    assert flow.received is None  # sessions would tell the arms apart
    assert analysis.baseline is not None
    assert unblinded.baseline is not None
    assert analysis.baseline.counts == {"all": unblinded.baseline.counts["all"]}
    summary = analysis.summary
    rdq = summary.at("rdq_total", "week_10")
    observed = blinded.tidy.loc[blinded.tidy["visit"] == "week_10", "rdq_total"].dropna()
    assert rdq.n == len(observed)
    assert rdq.mean == pytest.approx(float(observed.mean()))
    assert rdq.sd == pytest.approx(float(observed.std()))
    assert rdq.missing == rdq.missed + rdq.withdrawn + rdq.not_scored
    assert summary.visit("week_10").participants == flow.allocated


def test_a_blinded_analysis_writes_no_arm_and_cannot_join_the_evidence(
    blinded: TrialRecords, demo: DemoResult, tmp_path: Path
) -> None:
    analysis = report_content(blinded, settings=QUICK).analysis
    files = write_analysis(analysis, tmp_path)
    for path in files:
        text = path.read_text("utf-8").replace(blinded.protocol.trial.title, "TITLE")
        for word in arm_words(blinded.protocol):
            assert word.casefold() not in text.casefold(), (path.name, word)
    with pytest.raises(AccessError, match="blinded") as refused:
        trial_rows(analysis, blinded.protocol, "rdq_total")
    assert refused.value.problems[0].where == "actor"


def test_an_early_trial_gets_an_enrolment_and_baseline_report(
    demo: DemoResult, tmp_path: Path
) -> None:
    records = _records(demo)
    baseline = records.protocol.baseline.id
    early = records.tidy.copy()
    follow_up = early["visit"] != baseline
    scores = [c for c in early.columns if c.endswith(("_total", "_score"))]
    early.loc[follow_up, scores] = pd.NA
    early.loc[follow_up, "status"] = "upcoming"
    consort = records.consort.copy()
    for visit in records.protocol.follow_up_visits:
        consort[f"visit_{visit.id}"] = consort[f"visit_{visit.id}"].where(
            consort[f"visit_{visit.id}"].isna(), "upcoming"
        )
    content = report_content(replace(records, tidy=early, consort=consort), settings=QUICK)
    assert not content.analysis.compared
    assert not content.analysis.blinded
    assert "enrolment and baseline report" in content.analysis.notes[0]
    files = write_report(content, tmp_path)
    html = files.html.read_text("utf-8")
    for section in ("consort", "baseline", "follow-up", "outcomes-pooled", "missing"):
        assert f'<section id="{section}">' in html, section
    assert '<section id="outcome-rdq_total">' not in html
    assert "Table 1. Baseline characteristics by arm" in html  # unblinded: by arm
    follow = pd.read_csv(tmp_path / "tables" / "follow_up.csv", comment="#")
    week_10 = follow[follow["visit"] == "week_10"].iloc[0]
    assert week_10["upcoming"] == week_10["participants"] == content.analysis.consort.randomized
