"""The simulator: labelled synthetic, written through operations, reproducible, and honest
about what it builds in (the analysis finds the effects it was given)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lumbar.analysis.plan import Settings, analyze_trial
from lumbar.demo import SyntheticTrial, synthetic_trial
from lumbar.protocol import Protocol
from lumbar.simulate import DEFAULT_ASSUMPTIONS, Assumptions, expected_differences

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SyntheticTrial:
    return synthetic_trial(tmp_path_factory.mktemp("small"), participants=36, seed=4)


def test_everything_made_is_labelled_synthetic_and_audited(small: SyntheticTrial) -> None:
    statistician = small.open("statistician")
    try:
        assert statistician.about().synthetic
        tidy = statistician.dataset()
        assert tidy["synthetic"].all()
        assert tidy["participant"].nunique() == 36
        records = statistician.consort_records()
        audit = statistician.verify_audit()
    finally:
        statistician.close()
    assert audit.intact
    # Every screening, consent, randomization, session and questionnaire left an audit record.
    assert audit.records > small.summary.operations
    summary = small.summary
    assert summary.randomized == 36
    assert sum(summary.by_arm.values()) == 36
    assert set(summary.by_arm) == {"usual_care", "structural", "relaxation"}
    assert len(records) == summary.screened
    assert summary.screened == summary.randomized + summary.ineligible + summary.declined
    # Usual care has no sessions; the massage arms have some, within the ten planned.
    assert 0 < summary.sessions <= 10 * (36 - summary.by_arm["usual_care"])


def test_a_seed_gives_the_same_trial(small: SyntheticTrial, tmp_path: Path) -> None:
    again = synthetic_trial(tmp_path, participants=36, seed=4)
    assert again.summary == small.summary
    first, second = small.open("statistician"), again.open("statistician")
    try:
        pd.testing.assert_frame_equal(first.dataset(), second.dataset())
        pd.testing.assert_frame_equal(first.consort_records(), second.consort_records())
        pd.testing.assert_frame_equal(first.sessions_table(), second.sessions_table())
    finally:
        first.close()
        second.close()
    other = synthetic_trial(tmp_path / "other", participants=36, seed=5)
    assert other.summary != small.summary


def test_sessions_carry_ratings_that_follow_the_simulated_trajectory(
    small: SyntheticTrial,
) -> None:
    statistician = small.open("statistician")
    try:
        table = statistician.sessions_table()
    finally:
        statistician.close()
    assert len(table) == small.summary.sessions
    for column in ("rating_bothersomeness", "rating_pain_intensity"):
        assert table[column].notna().all()
        assert table[column].between(0, 10).all()
    # Massage arms improve over the first ten weeks: the ratings before the last sessions
    # are lower than before the first.
    first = table[table["day"] < 10]["rating_bothersomeness"].mean()
    last = table[table["day"] > 50]["rating_bothersomeness"].mean()
    assert last < first - 1


def test_assumptions_are_documented_and_checked() -> None:
    described = {name: source for name, _, source in DEFAULT_ASSUMPTIONS.describe()}
    names = {item.name for item in dataclasses.fields(Assumptions)} - {"notes"}
    assert set(described) == names
    assert set(DEFAULT_ASSUMPTIONS.notes) == names, "every assumption says where it comes from"
    assert "Cherkin" in described["rdq_effect"]
    for change, message in (
        ({"eligible_share": 1.5}, "eligible_share: 1.5 must be a share"),
        ({"visit_correlation": 1.0}, "visit_correlation: 1.0 must be a correlation"),
        ({"outcome_correlation": 0.95}, "do not make a valid correlation matrix"),
        ({"rdq_usual_care_change": (-2.0, -2.5)}, "rdq_usual_care_change: give one value per"),
        ({"ineligibility_weights": {"sciatica": -1.0}}, "ineligibility_weights"),
        ({"lost_by_visit": (0.05, 1.0, 0.0)}, "lost_by_visit"),
    ):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(DEFAULT_ASSUMPTIONS, **change)


def test_ineligibility_reasons_follow_the_assumed_weights(tmp_path: Path) -> None:
    only = dataclasses.replace(
        DEFAULT_ASSUMPTIONS, ineligibility_weights={"sciatica": 1.0}, second_reason_share=0.0
    )
    made = synthetic_trial(tmp_path, participants=30, seed=2, assumptions=only)
    coordinator = made.open("statistician")
    try:
        records = coordinator.consort_records()
    finally:
        coordinator.close()
    ineligible = records[records["eligibility"] == "ineligible"]
    assert len(ineligible) == made.summary.ineligible > 0
    rules = {reason["rule"] for reasons in ineligible["reasons"] for reason in reasons}
    assert rules == {"sciatica"}


def test_expected_differences_are_the_latent_effects_shrunk_by_the_scale_ends(
    reference: Protocol,
) -> None:
    truth = expected_differences(reference)
    assert len(truth) == 2 * 3 * 2
    # Clipping at the ends of the scales can only shrink an effect, never reverse it.
    assert (np.sign(truth["difference"]) == np.sign(truth["latent_difference"])).all()
    assert (truth["difference"].abs() <= truth["latent_difference"].abs() + 0.02).all()
    # Far from the ends, the recorded effect is the latent one.
    wide = dataclasses.replace(
        DEFAULT_ASSUMPTIONS,
        rdq_baseline_mean=12.0,
        rdq_baseline_sd=0.5,
        rdq_sd=0.5,
        rdq_usual_care_change=(0.0, 0.0, 0.0),
    )
    rdq = expected_differences(reference, wide).query("outcome == 'rdq_total'")
    np.testing.assert_allclose(rdq["difference"], rdq["latent_difference"], atol=0.02)


SEEDS = (1, 2, 3, 4, 5)


def test_the_analysis_recovers_the_simulated_effects_across_seeds(
    reference: Protocol, tmp_path: Path
) -> None:
    """Five synthetic trials of 120 through the real system, analysed as pre-specified.

    The target is what the simulator builds in on the recorded scale
    (:func:`expected_differences`). Across the 5 x 24 intervals (two outcomes, three
    visits, two arms, ANCOVA and MMRM) about 95% should cover it, and the average
    estimate over the seeds should sit within three of its standard errors of it; a
    simulator or an analysis that lost, flipped or mixed up the effects fails both.
    """
    truth = expected_differences(reference).set_index(["outcome", "visit", "arm"])["difference"]
    rows = []
    for seed in SEEDS:
        made = synthetic_trial(tmp_path / f"seed{seed}", participants=120, seed=seed)
        statistician = made.open("statistician")
        try:
            analysis = analyze_trial(
                reference,
                statistician.dataset(),
                statistician.consort_records(),
                Settings(include_gee=False, include_imputation=False),
            )
        finally:
            statistician.close()
        for outcome in analysis.outcomes:
            for model in ("ancova", "mmrm"):
                for row in getattr(outcome, model).to_frame().itertuples():
                    target = truth[(outcome.outcome, row.visit, row.arm)]
                    rows.append(
                        {
                            "seed": seed,
                            "outcome": outcome.outcome,
                            "model": model,
                            "visit": row.visit,
                            "arm": row.arm,
                            "estimate": row.estimate,
                            "se": row.se,
                            "truth": target,
                            "covers": row.lower <= target <= row.upper,
                        }
                    )
    results = pd.DataFrame(rows)
    assert len(results) == len(SEEDS) * 24
    assert results["covers"].mean() >= 0.85, results[~results["covers"]]
    pooled = results.groupby(["outcome", "model", "visit", "arm"]).agg(
        estimate=("estimate", "mean"),
        se=("se", lambda se: float(np.sqrt((se**2).mean() / len(SEEDS)))),
        truth=("truth", "first"),
    )
    z = (pooled["estimate"] - pooled["truth"]) / pooled["se"]
    assert (z.abs() < 3.0).all(), pooled.assign(z=z)
    # The trials are informative: at 10 weeks every effect is more than twice its pooled SE.
    early = pooled.xs("week_10", level="visit")
    assert (early["truth"].abs() > 2 * early["se"]).all()
    assert (np.sign(early["estimate"]) == np.sign(early["truth"])).all()
