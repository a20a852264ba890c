"""Multiple imputation's behaviour, the tipping point, the whole plan, and `lumbar analyze`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lumbar.analysis import Columns, TrialData, ancova, mmrm
from lumbar.analysis.imputation import impute, multiple_imputation, pool, tipping_point
from lumbar.analysis.plan import Settings, analyze
from lumbar.analysis.responders import definitions_from
from lumbar.application import write_outcome_analyses
from lumbar.cli import app
from lumbar.errors import AnalysisError
from lumbar.protocol import shipped_protocol
from tests.analysis import datasets

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("method", ["pmm", "norm"])
def test_only_missing_values_are_imputed_and_the_seed_reproduces_them(method: str) -> None:
    data = datasets.load("synthetic")
    first = impute(data, m=2, method=method, rng=np.random.default_rng(1))  # type: ignore[arg-type]
    again = impute(data, m=2, method=method, rng=np.random.default_rng(1))  # type: ignore[arg-type]
    other = impute(data, m=2, method=method, rng=np.random.default_rng(2))  # type: ignore[arg-type]
    observed = data.frame.set_index(["participant", "visit"])["y"]
    for frame in first:
        indexed = frame.set_index(["participant", "visit"])
        assert not indexed["y"].isna().any()
        kept = indexed.loc[~indexed["imputed"], "y"]
        assert np.allclose(kept, observed.loc[kept.index])
        assert int(indexed["imputed"].sum()) == int(observed.isna().sum())
    pd.testing.assert_frame_equal(first[0], again[0])
    assert not first[0]["y"].equals(other[0]["y"])


def test_predictive_mean_matching_imputes_observed_values_of_the_same_arm_and_visit() -> None:
    data = datasets.load("synthetic")
    (frame,) = impute(data, m=1, method="pmm", rng=np.random.default_rng(4))
    observed = data.frame.dropna(subset=["y"])
    for (arm, visit), part in frame[frame["imputed"]].groupby(["arm", "visit"], observed=True):
        donors = set(observed[(observed["arm"] == arm) & (observed["visit"] == visit)]["y"])
        assert set(part["y"]) <= donors


def test_under_missing_at_random_imputation_agrees_with_the_mmrm() -> None:
    data = datasets.load("synthetic")
    imputed = multiple_imputation(data, m=30, seed=11)
    model = mmrm(data)
    for visit in data.visits:
        for arm in data.arms[1:]:
            pooled, direct = imputed.contrast(visit, arm), model.contrast(visit, arm)
            assert abs(pooled.estimate - direct.estimate) < 0.5 * direct.se


def test_pooling_in_one_solve_equals_an_ancova_per_imputation_and_delta() -> None:
    data = datasets.load("synthetic")
    result = multiple_imputation(data, m=4, seed=3)
    tipping = tipping_point(data, result, [0.0, 2.5])
    for delta in (0.0, 2.5):
        fits = []
        for frame in result.completed:
            shifted = frame.copy()
            treated = shifted["imputed"] & (shifted["arm"].astype(str) != data.reference)
            shifted.loc[treated, "y"] += delta
            fits.append(ancova(dataclasses.replace(data, frame=shifted)))
        for visit in data.visits:
            for arm in data.arms[1:]:
                contrasts = [fit.contrast(visit, arm) for fit in fits]
                expected = pool(
                    [c.estimate for c in contrasts],
                    [c.se**2 for c in contrasts],
                    float(contrasts[0].df or 0),
                )
                row = tipping.table.query("delta == @delta and visit == @visit and arm == @arm")
                assert float(row["estimate"].iloc[0]) == pytest.approx(expected.estimate, rel=1e-10)
                assert float(row["lower"].iloc[0]) == pytest.approx(expected.lower, rel=1e-10)
                assert float(row["p"].iloc[0]) == pytest.approx(expected.p, rel=1e-8, abs=1e-15)
                if delta == 0.0:
                    assert result.contrast(visit, arm).se == pytest.approx(expected.se, rel=1e-10)


def test_without_missing_data_pooling_returns_the_complete_data_answer() -> None:
    assert pool([1.5, 1.5, 1.5], [0.25, 0.25, 0.25], 100).se == pytest.approx(0.5)
    with pytest.raises(AnalysisError, match="at least two imputations"):
        pool([1.5], [0.25], 100)


def test_the_tipping_point_moves_estimates_towards_harm() -> None:
    data = datasets.load("synthetic")
    imputed = multiple_imputation(data, m=5, seed=3)
    result = tipping_point(data, imputed, [0.0, 2.0, 6.0, 20.0])
    table = result.table[
        (result.table["visit"] == "week_26") & (result.table["arm"] == "relaxation")
    ]
    estimates = table.sort_values("delta")["estimate"].tolist()
    assert estimates == sorted(estimates)  # worse imputed values: a smaller benefit
    assert estimates[0] < 0 < estimates[-1]
    # week 10 has no missing values: the delta changes nothing there.
    week10 = result.table[result.table["visit"] == "week_10"]
    assert week10.groupby("arm")["estimate"].nunique().eq(1).all()


def test_the_whole_plan_writes_results_json_and_stamped_tables(tmp_path: Path) -> None:
    data = datasets.load("synthetic")
    definitions = definitions_from(shipped_protocol("massage-clbp").thresholds_for("rdq"))
    analysis = analyze(data, Settings(imputations=5, definitions=definitions), protocol_hash="abc")
    files = write_outcome_analyses([analysis], tmp_path, source={"file": "synthetic"})
    names = {path.name for path in files}
    assert {"results.json", "rdq_mmrm.csv", "rdq_imputation.csv", "rdq_responders.csv"} <= names
    document = json.loads((tmp_path / "results.json").read_text())
    section = document["outcomes"]["rdq"]
    assert section["provenance"]["data_hash"] == data.data_hash
    assert section["provenance"]["protocol_hash"] == "abc"
    assert section["provenance"]["options"]["imputations"] == 5
    table = pd.read_csv(tmp_path / "rdq_mmrm.csv", comment="#")
    assert len(table) == 6
    first_lines = (tmp_path / "rdq_mmrm.csv").read_text().splitlines()[:4]
    assert first_lines[1] == f"# data sha256 {data.data_hash}"


def test_lumbar_analyze_on_a_csv_with_a_column_mapping(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "analyze", str(datasets.DATA / "fev_data.csv"),
            "--id", "USUBJID", "--arm", "ARMCD", "--visit", "AVISIT", "--outcome", "FEV1",
            "--baseline", "FEV1_BL", "--covariates", "RACE,SEX", "--reference", "PBO",
            "--higher-is-better", "--imputations", "3", "--out", str(tmp_path),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "MMRM of FEV1" in result.output
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["source"] == {"file": "fev_data.csv"}
    assert document["outcomes"]["FEV1"]["mmrm"]["reml_loglik"] == pytest.approx(-1685.394, abs=1e-3)


def test_lumbar_analyze_names_a_missing_column(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(datasets.DATA / "fev_data.csv"),
            "--outcome",
            "FEV",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "column 'FEV': is not in the data" in result.output


def test_an_mmrm_that_does_not_converge_falls_back_to_a_simpler_covariance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lumbar.analysis import plan
    from lumbar.errors import ConvergenceError, Problem

    data = datasets.synthetic()
    tried: list[str] = []
    failing = {"unstructured"}
    real = plan.mmrm  # type: ignore[attr-defined]

    def flaky(data: object, *, covariance: str, alpha: float) -> object:
        tried.append(covariance)
        if covariance in failing:
            raise ConvergenceError(
                "the MMRM did not converge", [Problem(covariance, "the gradient is still large")]
            )
        return real(data, covariance=covariance, alpha=alpha)  # type: ignore[arg-type]

    monkeypatch.setattr(plan, "mmrm", flaky)
    quick = Settings(include_gee=False, include_imputation=False)
    result = analyze(data, quick)
    assert tried == ["unstructured", "toeplitz"]
    assert result.mmrm.covariance == "toeplitz"
    assert any("did not converge" in note and "toeplitz" in note for note in result.notes)
    tried.clear()
    failing.update({"toeplitz", "ar1", "compound_symmetry"})
    with pytest.raises(ConvergenceError):
        analyze(data, quick)
    assert tried == ["unstructured", "toeplitz", "ar1", "compound_symmetry"]


def test_participants_left_out_for_a_missing_covariate_are_counted_and_named() -> None:
    """A participant without a covariate falls out of every model: the analysis says how
    many, which, and why, instead of dropping them silently."""
    frame = pd.read_csv(datasets.DATA / "fev_data.csv")
    first, second = sorted(frame["USUBJID"].unique())[:2]
    frame.loc[frame["USUBJID"] == first, "SEX"] = np.nan
    frame.loc[frame["USUBJID"] == second, ["SEX", "FEV1_BL"]] = np.nan
    columns = Columns(
        outcome="FEV1", participant="USUBJID", arm="ARMCD", visit="AVISIT",
        baseline="FEV1_BL", covariates=("RACE", "SEX"), reference="PBO",
    )  # fmt: skip
    data = TrialData.from_frame(frame, columns)
    assert data.left_out() == {"FEV1 at baseline": (second,), "SEX": (first, second)}
    analysis = analyze(data, Settings(include_imputation=False, definitions=()))
    everyone = frame["USUBJID"].nunique()
    note = next(note for note in analysis.notes if "left out of the models" in note)
    assert note.startswith(f"2 of {everyone} participants are left out")
    assert f"SEX missing for 2 ({first}, {second})" in note
    assert f"FEV1 at baseline missing for 1 ({second})" in note
    whole = datasets.fev()
    assert whole.left_out() == {}
    assert analysis.mmrm.participants == mmrm(whole).participants - 2  # the models left them out
