"""Input checks, and how the models behave beyond matching R: missing visits, failures."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lumbar.analysis import Columns, TrialData, ancova, gee, mmrm
from lumbar.errors import AnalysisError, ConvergenceError
from tests.analysis import datasets

pytestmark = pytest.mark.unit


def _frame() -> pd.DataFrame:
    return pd.read_csv(datasets.DATA / "synthetic_clbp.csv")


COLUMNS = Columns(
    outcome="rdq",
    baseline="rdq_baseline",
    covariates=("age", "sex"),
    reference="usual_care",
    visits=("week_10", "week_26", "week_52"),
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["age"]), "column 'age'"),
        (lambda f: f.assign(rdq=["n/a", *f["rdq"].iloc[1:]]), "must be numeric"),
        (
            lambda f: f.assign(rdq=np.where(f["arm"] == "structural", np.nan, f["rdq"])),
            "arm 'structural'",
        ),
        (
            lambda f: f.assign(rdq=np.where(f["visit"] == "week_52", np.nan, f["rdq"])),
            "visit 'week_52'",
        ),
        (lambda f: pd.concat([f, f.head(1)]), "at most one row per visit"),
        (lambda f: f.assign(arm=np.where(f.index == 1, "relaxation", f["arm"])), "must not change"),
        (lambda f: f.assign(rdq=np.where(f["rdq"].notna(), 3.0, np.nan)), "does not vary"),
    ],
    ids=[
        "missing column",
        "text outcome",
        "empty arm",
        "empty visit",
        "duplicate row",
        "arm changes",
        "constant outcome",
    ],
)
def test_bad_data_is_refused_with_the_column_and_the_rule(change: Any, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        TrialData.from_frame(change(_frame()), COLUMNS)


def test_an_unknown_reference_arm_lists_the_arms() -> None:
    columns = Columns(outcome="rdq", reference="placebo")
    with pytest.raises(AnalysisError, match="relaxation, structural, usual_care"):
        TrialData.from_frame(_frame(), columns)


def test_categorical_covariates_are_detected() -> None:
    data = TrialData.from_frame(_frame(), COLUMNS)
    assert data.numeric_covariates == ("age",)
    assert data.categorical_covariates == ("sex",)
    assert data.arms == ("usual_care", "relaxation", "structural")


def test_without_a_baseline_the_models_drop_the_baseline_terms() -> None:
    columns = Columns(outcome="rdq", reference="usual_care", visits=COLUMNS.visits)
    data = TrialData.from_frame(_frame(), columns)
    assert data.baseline is None
    with_baseline = ancova(TrialData.from_frame(_frame(), COLUMNS))
    without = ancova(data)
    assert (
        without.contrast("week_10", "relaxation").se
        > with_baseline.contrast("week_10", "relaxation").se
    )
    fitted = mmrm(data)
    assert not any(name.startswith("baseline") for name in fitted.coefficients)


def test_mmrm_keeps_participants_who_miss_later_visits() -> None:
    frame = _frame()
    data = TrialData.from_frame(frame, COLUMNS)
    fitted = mmrm(data)
    assert fitted.participants == frame["participant"].nunique()
    assert fitted.observations == int(frame["rdq"].notna().sum())
    assert fitted.patterns > 1


def test_mmrm_handles_rows_that_are_absent_not_just_empty() -> None:
    frame = _frame()
    present = frame.dropna(subset=["rdq"])
    assert mmrm(TrialData.from_frame(present, COLUMNS)).loglik == pytest.approx(
        mmrm(TrialData.from_frame(frame, COLUMNS)).loglik, rel=1e-10
    )


def test_mmrm_recovers_a_known_covariance_and_effect() -> None:
    rng = np.random.default_rng(3)
    n, visits = 1500, 3
    sigma = np.array([[4.0, 2.0, 1.0], [2.0, 5.0, 2.5], [1.0, 2.5, 6.0]])
    arm = np.where(np.arange(n) % 2 == 0, "control", "active")
    y = (
        rng.multivariate_normal(np.zeros(visits), sigma, n)
        + np.where(arm == "active", -1.0, 0.0)[:, None]
    )
    frame = pd.DataFrame(
        {
            "participant": np.repeat(np.arange(n), visits),
            "arm": np.repeat(arm, visits),
            "visit": np.tile(["v1", "v2", "v3"], n),
            "y": y.ravel(),
        }
    )
    data = TrialData.from_frame(
        frame, Columns(outcome="y", reference="control", visits=("v1", "v2", "v3"))
    )
    fitted = mmrm(data)
    assert np.allclose(fitted.sigma, sigma, rtol=0.12)
    for visit in ("v1", "v2", "v3"):
        contrast = fitted.contrast(visit, "active")
        assert contrast.lower < -1.0 < contrast.upper


def test_a_model_that_cannot_converge_says_so() -> None:
    frame = _frame()
    data = TrialData.from_frame(frame, COLUMNS)
    with pytest.raises(ConvergenceError, match="did not converge"):
        mmrm(data, max_iterations=0)  # no iterations allowed: the gradient is not zero


def test_unknown_structure_lists_the_structures() -> None:
    data = TrialData.from_frame(_frame(), COLUMNS)
    with pytest.raises(AnalysisError, match="unstructured, compound_symmetry, ar1, toeplitz"):
        mmrm(data, covariance="banded")


def test_results_have_tables_dicts_and_text() -> None:
    data = TrialData.from_frame(_frame(), COLUMNS)
    result = mmrm(data)
    frame = result.to_frame()
    assert list(frame["visit"]) == [
        "week_10",
        "week_10",
        "week_26",
        "week_26",
        "week_52",
        "week_52",
    ]
    as_dict = result.to_dict()
    assert as_dict["covariance"] == "unstructured"
    assert math.isfinite(as_dict["reml_loglik"])
    assert "Satterthwaite" in result.method_text
    assert "relaxation" in str(result)


def test_pattern_sums_and_rows_give_the_same_quantities() -> None:
    from lumbar.analysis.mmrm import _Pattern

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 3, 5)), rng.normal(size=(40, 3))
    summed = _Pattern(np.arange(3), x, y)
    rows = _Pattern(np.arange(3), x[:1], y[:1])  # one participant: kept as rows
    rows.x, rows.y, rows.count, rows.summed = x, y, 40, False
    assert summed.summed
    weight = np.eye(3) + 0.3
    beta, matrix, u = rng.normal(size=5), np.eye(5) * 2.0, rng.normal(size=5)
    for name, argument in (
        ("gram", weight),
        ("cross", weight),
        ("residual_sum", beta),
        ("trace_term", matrix),
        ("quadratic_term", u),
    ):
        assert np.allclose(getattr(summed, name)(argument), getattr(rows, name)(argument))


def _refusal(frame: pd.DataFrame, columns: Columns, model: Any) -> AnalysisError:
    """The error ``model`` raises on ``frame``, with no NumPy warning on the way."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AnalysisError) as caught:
            model(TrialData.from_frame(frame, columns))
    return caught.value


@pytest.mark.parametrize("model", [ancova, mmrm])
def test_a_baseline_column_without_values_is_named(model: Any) -> None:
    error = _refusal(_frame().assign(rdq_baseline=np.nan), COLUMNS, model)
    assert "rdq_baseline" in str(error)
    assert error.problems[0].where == "baseline"
    assert "linearly independent" not in str(error)


@pytest.mark.parametrize("model", [ancova, mmrm, gee])
def test_collinear_covariates_are_named_as_a_pair(model: Any) -> None:
    frame = _frame().assign(age_months=lambda f: f["age"] * 12)
    columns = dataclasses.replace(COLUMNS, covariates=("age", "sex", "age_months"))
    error = _refusal(frame, columns, model)
    assert "'age' and 'age_months' are collinear" in str(error), str(error)
    assert error.problems[0].where == "covariates"


def test_an_arm_without_data_at_one_visit_is_named_with_the_visit() -> None:
    frame = _frame()
    gone = (frame["arm"] == "structural") & (frame["visit"] == "week_26")
    frame = frame.assign(rdq=np.where(gone, np.nan, frame["rdq"]))
    error = _refusal(frame, COLUMNS, mmrm)
    assert error.problems[0].where == "arm"
    assert error.problems[0].received == "structural"
    assert "at visit 'week_26'" in str(error), str(error)
    error = _refusal(frame, COLUMNS, ancova)
    assert "ANCOVA at visit week_26" in str(error)
    assert "'structural'" in str(error), str(error)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f.assign(sex=np.where(f["visit"] == "week_26", "female", f["sex"])),
            "level 'male' of 'sex' has no participant at visit 'week_26'",
        ),
        (
            lambda f: f.assign(age=np.where(f["visit"] == "week_26", 40, f["age"])),
            "'age' is constant at visit 'week_26': 40 in every row",
        ),
    ],
    ids=["covariate level absent at a visit", "covariate constant at a visit"],
)
def test_ancova_names_the_covariate_that_leaves_a_visit_inestimable(
    change: Any, message: str
) -> None:
    error = _refusal(change(_frame()), COLUMNS, ancova)
    assert message in str(error), str(error)
    assert error.problems[0].where == "covariates"
