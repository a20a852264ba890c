"""lumbar's GEE against geepack, and its Rubin's rules against mice::pool, on the same data."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pandas as pd
import pytest

from lumbar.analysis import AncovaResult, Columns, TrialData, ancova
from lumbar.analysis.gee import GeeResult, gee
from lumbar.analysis.imputation import pool
from tests.analysis import datasets

pytestmark = pytest.mark.reference

GEE = json.loads((datasets.REFERENCE / "gee.json").read_text())
POOL = json.loads((datasets.REFERENCE / "pool.json").read_text())


@cache
def _gee(name: str) -> GeeResult:
    return gee(datasets.load(name))


GEE_CASES = [
    (name, record) for name in datasets.DATASETS for record in GEE["datasets"][name]["contrasts"]
]


@pytest.mark.parametrize(
    ("name", "record"), GEE_CASES, ids=[f"{n}-{r['visit']}-{r['arm']}" for n, r in GEE_CASES]
)
def test_gee_contrasts_match_geepack(name: str, record: dict[str, Any]) -> None:
    # Same moment estimators as geepack (no degrees-of-freedom correction of the scale).
    estimate = _gee(name).contrast(record["visit"], record["arm"])
    assert estimate.estimate == pytest.approx(record["estimate"], rel=1e-5)
    assert estimate.se == pytest.approx(record["se"], rel=1e-5)


@pytest.mark.parametrize("name", datasets.DATASETS)
def test_gee_working_correlation_and_scale_match_geepack(name: str) -> None:
    reference = GEE["datasets"][name]
    result = _gee(name)
    assert result.working_correlation == pytest.approx(reference["correlation"], rel=1e-5)
    assert result.scale == pytest.approx(reference["scale"], rel=1e-5)
    assert result.observations == reference["rows"]


def test_the_gee_reference_covers_every_dataset_visit_and_arm() -> None:
    for name in datasets.DATASETS:
        data = datasets.load(name)
        covered = {(r["visit"], r["arm"]) for r in GEE["datasets"][name]["contrasts"]}
        assert covered == {(visit, arm) for visit in data.visits for arm in data.arms[1:]}


@cache
def _completed_fits() -> list[AncovaResult]:
    frame = pd.read_csv(datasets.DATA / "mi_completed_synthetic.csv")
    columns = Columns(
        outcome="y",
        baseline="baseline",
        covariates=("age", "sex"),
        reference="usual_care",
        visits=("week_10", "week_26", "week_52"),
    )
    return [ancova(TrialData.from_frame(part, columns)) for _, part in frame.groupby("imputation")]


@pytest.mark.parametrize(
    "record", POOL["pooled"], ids=[f"{r['visit']}-{r['arm']}" for r in POOL["pooled"]]
)
def test_rubins_rules_match_mice_pool(record: dict[str, Any]) -> None:
    estimates = [fit.contrast(record["visit"], record["arm"]) for fit in _completed_fits()]
    assert len(estimates) == POOL["m"]
    df_complete = estimates[0].df
    assert df_complete is not None
    assert df_complete == record["dfcom"]
    pooled = pool([e.estimate for e in estimates], [e.se**2 for e in estimates], df_complete)
    for mine, theirs in (
        (pooled.estimate, record["estimate"]),
        (pooled.within, record["ubar"]),
        (pooled.total, record["t"]),
        (pooled.df, record["df"]),
        (pooled.se, record["se"]),
        (pooled.lower, record["lower"]),
        (pooled.upper, record["upper"]),
        (pooled.p, record["p"]),
    ):
        assert mine == pytest.approx(theirs, rel=1e-6)
    assert pooled.between == pytest.approx(record["b"], rel=1e-6, abs=1e-12)
    assert pooled.lambda_ == pytest.approx(record["lambda"], rel=1e-6, abs=1e-12)
