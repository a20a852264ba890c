"""`lumbar analyze --db`: a trial's own data, with its protocol's pre-specified settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lumbar.analysis import TrialData, ancova
from lumbar.analysis.plan import Settings, analyze_trial
from lumbar.cli import app
from tests.operations.world import World, answers_for, build_world, rdq_answers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trial_with_follow_up(tmp_path_factory: pytest.TempPathFactory) -> World:
    """30 randomized participants with baseline and three follow-ups (a few missing)."""
    folder = tmp_path_factory.mktemp("analyze")
    world = build_world(f"sqlite:///{folder / 'trial.db'}", folder)
    rng = np.random.default_rng(5)
    coord = world.as_("coord")
    study_ids = []
    for number in range(30):
        sex = "female" if number % 3 else "male"
        study_id = world.enrolled(sex=sex, age=int(rng.integers(20, 65)))
        world.with_baseline(
            study_id, rdq_yes=int(rng.integers(4, 20)), bother=int(rng.integers(2, 11))
        )
        coord.randomize(study_id)
        study_ids.append(study_id)
    world.clock.advance(400)  # a year on: every follow-up recorded (late ones flagged)
    for number, study_id in enumerate(study_ids):
        for visit in world.protocol.follow_up_visits:
            if visit.id == "week_52" and number % 5 == 0:
                continue  # a fifth miss the last visit
            for instrument in visit.instruments:
                if instrument == "rdq":
                    answers = rdq_answers(int(rng.integers(0, 20)))
                elif instrument == "bothersomeness":
                    answers = {"bothersomeness": int(rng.integers(0, 11))}
                else:
                    answers = answers_for(instrument, 1)
                coord.record_questionnaire(
                    study_id, visit.id, instrument, answers, completed_on=world.clock.today
                )
    return world


def _run(world: World, user: str, out: Path) -> dict[str, object]:
    result = CliRunner().invoke(
        app,
        ["analyze", "--db", world.url, "--as", user, "--key-file", str(world.key_file),
         "--imputations", "3", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads((out / "results.json").read_text())
    return document


def test_the_trial_is_analysed_with_its_pre_specified_settings(
    trial_with_follow_up: World, tmp_path: Path
) -> None:
    document = _run(trial_with_follow_up, "stat_open", tmp_path)
    outcomes = document["outcomes"]
    assert isinstance(outcomes, dict)
    assert set(outcomes) == {"rdq_total", "bothersomeness_score"}
    rdq = outcomes["rdq_total"]
    assert rdq["arms"][0] == "usual_care"
    assert rdq["visits"] == ["week_10", "week_26", "week_52"]
    assert rdq["provenance"]["protocol_hash"] == trial_with_follow_up.protocol.content_hash
    assert [d["name"] for d in rdq["responders"]["definitions"]] == [
        "percent",
        "mic",
        "small",
        "reliable",
    ]
    assert document["blinded"] is False
    consort = document["consort"]
    assert isinstance(consort, dict)
    assert (tmp_path / "baseline_table.csv").exists()
    assert (tmp_path / "consort.csv").exists()
    assert (tmp_path / "rdq_total_mmrm.csv").exists()
    # Weeks 10 and 26 were recorded late (day 400): included, said, and a sensitivity
    # analysis without them (week 52 only) written beside the primary one.
    window = rdq["window"]
    assert (window["rule"], window["out_of_window"]) == ("include", 60)
    assert window["sensitivity"]["ancova"]["method"] == "ancova"
    assert any("60 values of rdq_total" in note for note in rdq["notes"])
    assert (tmp_path / "rdq_total_window_sensitivity_ancova.csv").exists()


def test_a_blinded_statistician_gets_pooled_results_only(
    trial_with_follow_up: World, tmp_path: Path
) -> None:
    document = _run(trial_with_follow_up, "stat", tmp_path)
    assert document["blinded"] is True
    assert document["compared"] is False
    assert document["outcomes"] == {}
    text = (tmp_path / "results.json").read_text()
    for arm in ("usual_care", "structural", "relaxation", "group A"):
        assert arm not in text
    pooled = document["pooled_summary"]
    assert isinstance(pooled, dict)
    assert pooled["outcomes"] == ["rdq_total", "bothersomeness_score"]
    assert not (tmp_path / "rdq_total_ancova.csv").exists()
    assert (tmp_path / "outcomes_by_visit.csv").exists()


def test_data_without_arms_are_described_not_compared(trial_with_follow_up: World) -> None:
    """A blinded reader's dataset has no arm: Table 1, the CONSORT flow and the outcomes by
    visit count everyone together, and nothing is compared."""
    world = trial_with_follow_up
    statistician = world.as_("stat_open")
    tidy, records = statistician.dataset(), statistician.consort_records()
    quick = Settings(include_gee=False, include_imputation=False)
    full = analyze_trial(world.protocol, tidy, records, quick)
    masked_records = records.copy()
    for column in ("arm", "arm_has_sessions", "sessions"):
        masked_records[column] = pd.NA
    masked = tidy.copy()
    masked["arm"] = pd.NA
    blinded = analyze_trial(world.protocol, masked, masked_records, quick)
    assert blinded.blinded
    assert (blinded.outcomes, blinded.arms, blinded.reference) == ((), (), None)
    assert "blinded" in blinded.notes[0]
    assert blinded.baseline is not None
    assert full.baseline is not None
    assert blinded.baseline.columns == ("all",)
    assert blinded.baseline.counts["all"] == full.baseline.counts["all"] == 30
    assert blinded.consort.pooled
    assert [flow.arm for flow in blinded.consort.arms] == ["all"]
    assert blinded.consort.arms[0].allocated == 30
    assert blinded.summary == full.summary  # the outcomes by visit never look at the arm
    week_52 = blinded.summary.at("rdq_total", "week_52")
    assert (week_52.participants, week_52.expected, week_52.n) == (30, 24, 24)
    assert blinded.summary.visit("week_52").overdue == 6  # the window is still open


def test_a_covariate_without_variation_is_left_out_and_said(trial_with_follow_up: World) -> None:
    """Early in a trial every participant may share a covariate value; the models cannot
    estimate it, so the pre-specified analysis leaves it out and its results say so."""
    world = trial_with_follow_up
    statistician = world.as_("stat_open")
    tidy, records = statistician.dataset(), statistician.consort_records()
    quick = Settings(include_gee=False, include_imputation=False)
    assert "sex" in world.protocol.analysis.covariates
    full = analyze_trial(world.protocol, tidy, records, quick).outcome("rdq_total")
    assert not any("left out" in note for note in full.notes)
    same = tidy.assign(sex="female")
    reduced = analyze_trial(world.protocol, same, records, quick).outcome("rdq_total")
    assert any("'sex' was left out" in note and "(female)" in note for note in reduced.notes)
    others = [name for name in world.protocol.analysis.covariates if name != "sex"]
    by_hand = ancova(
        TrialData.from_tidy(same, "rdq_total", reference="usual_care", covariates=others,
                            visits=["week_10", "week_26", "week_52"])
    )  # fmt: skip
    np.testing.assert_allclose(
        reduced.ancova.to_frame()["estimate"], by_hand.to_frame()["estimate"], rtol=1e-12
    )


def test_out_of_window_values_are_treated_by_the_protocols_rule_never_silently(
    trial_with_follow_up: World,
) -> None:
    """``analysis.out_of_window``: ``include`` keeps the values and adds a sensitivity analysis
    without them; ``exclude`` leaves them out of the analysis; each says how many. Data with
    no such value are analysed exactly as before the rule existed."""
    world = trial_with_follow_up
    statistician = world.as_("stat_open")
    tidy, records = statistician.dataset(), statistician.consort_records()
    quick = Settings(include_gee=False, include_imputation=False)
    # The fixture recorded every visit on day 400: week 10 and week 26 are late.
    assert set(tidy.loc[tidy["out_of_window"], "window"]) == {"late"}
    assert set(tidy.loc[tidy["out_of_window"], "visit"]) == {"week_10", "week_26"}
    # Keep the week_26 flags of five participants with a value, as a trial would have.
    on_time = tidy.assign(out_of_window=False, window="in_window")
    flagged = on_time.index[(on_time["visit"] == "week_26") & on_time["rdq_total"].notna()][:5]
    five = on_time.copy()
    five.loc[flagged, "out_of_window"] = True
    five.loc[flagged, "window"] = "late"
    excluding = world.protocol.model_validate(
        {
            **world.protocol.model_dump(by_alias=True, exclude_defaults=True),
            "analysis": {
                **world.protocol.analysis.model_dump(by_alias=True, exclude_defaults=True),
                "out_of_window": "exclude",
            },
        }
    )
    assert world.protocol.analysis.out_of_window == "include"  # the reference protocol's rule

    def rdq(protocol: Any, frame: pd.DataFrame) -> Any:
        return analyze_trial(protocol, frame, records, quick).outcome("rdq_total")

    def estimates(result: Any) -> Any:
        return result.to_frame()["estimate"].to_numpy()

    by_hand = ancova(
        TrialData.from_tidy(
            five.assign(rdq_total=five["rdq_total"].mask(five["out_of_window"])),
            "rdq_total",
            reference="usual_care",
            covariates=list(world.protocol.analysis.covariates),
            visits=["week_10", "week_26", "week_52"],
        )
    )
    # No value out of window: the same numbers as data that do not say (and no sensitivity).
    plain = rdq(world.protocol, on_time.drop(columns=["out_of_window", "window"]))
    none_out = rdq(world.protocol, on_time)
    np.testing.assert_array_equal(estimates(none_out.ancova), estimates(plain.ancova))
    np.testing.assert_array_equal(estimates(none_out.mmrm), estimates(plain.mmrm))
    assert none_out.window is not None
    assert (none_out.window.out_of_window, none_out.window.sensitivity) == (0, None)
    assert not any("window" in note for note in none_out.notes)
    assert plain.window is None
    # include: the primary analysis is unchanged, the sensitivity analysis leaves them out.
    included = rdq(world.protocol, five)
    np.testing.assert_array_equal(estimates(included.ancova), estimates(plain.ancova))
    assert included.window is not None
    assert (included.window.rule, included.window.out_of_window) == ("include", 5)
    assert included.window.sensitivity is not None
    np.testing.assert_allclose(
        estimates(included.window.sensitivity.ancova), estimates(by_hand), rtol=1e-12
    )
    assert any(
        "5 values of rdq_total completed outside their visit's window were included" in note
        and "sensitivity analysis" in note
        for note in included.notes
    )
    tables = included.tables()
    assert "rdq_total_window_sensitivity_ancova" in tables
    assert included.to_dict()["window"]["out_of_window"] == 5
    # exclude: the primary analysis leaves them out, and says so.
    excluded = rdq(excluding, five)
    np.testing.assert_allclose(estimates(excluded.ancova), estimates(by_hand), rtol=1e-12)
    assert not np.allclose(estimates(excluded.ancova), estimates(plain.ancova))
    assert excluded.window is not None
    assert (excluded.window.rule, excluded.window.out_of_window) == ("exclude", 5)
    assert excluded.window.sensitivity is None
    assert any(
        "5 values of rdq_total completed outside their visit's window were excluded" in note
        and "analysis.out_of_window: exclude" in note
        for note in excluded.notes
    )
