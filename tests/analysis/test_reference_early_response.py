"""lumbar's early non-response analysis against base R: tests/reference/early_response.R
wrote tests/reference/early_response.json from the synthetic
tests/reference/data/early_response.csv.

Counts, thresholds and denominators are equal; proportions, Wilson bounds (R's
``prop.test(correct = FALSE)``), the AUC (R's ``wilcox.test`` W / mn), DeLong's
variance and CI agree to 1e-9 relative (all closed form; R writes 15 significant
digits). The cross-validation uses the CSV's fold column, so both sides use the
same folds. The JSON is committed, so these tests need no R.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pandas as pd
import pytest

from lumbar.analysis.early_response import (
    EarlyResponseResult,
    Proportion,
    Relief,
    early_response,
)
from tests.analysis.datasets import REFERENCE

pytestmark = pytest.mark.reference

RELATIVE = 1e-9
R: dict[str, Any] = json.loads((REFERENCE / "early_response.json").read_text("utf-8"))
RELIEFS = {
    "2 points": Relief("2 points", "points", 2),
    "30 percent": Relief("30 percent", "percent", 30),
}


@cache
def _result() -> EarlyResponseResult:
    data = pd.read_csv(REFERENCE / "data" / "early_response.csv")
    assert data["responder"].dtype == bool
    return early_response(
        data.drop(columns="fold"),
        list(RELIEFS.values()),
        session=R["session"],
        folds=R["cv"]["folds"],
        fold=list(data["fold"]),
    )


def _same(mine: Proportion, theirs: dict[str, Any]) -> None:
    assert (mine.numerator, mine.denominator) == (theirs["numerator"], theirs["denominator"])
    assert (mine.estimate, mine.lower, mine.upper) == pytest.approx(
        (theirs["estimate"], theirs["lower"], theirs["upper"]), rel=RELATIVE
    )


def test_reference_covers_every_relief_definition() -> None:
    assert [rule["relief"] for rule in R["rules"]] == list(RELIEFS)
    assert (_result().n, _result().non_responders) == (R["n"], R["non_responders"])


@pytest.mark.parametrize("index", range(len(R["rules"])), ids=[r["relief"] for r in R["rules"]])
def test_two_by_two_and_wilson_intervals_match_r(index: int) -> None:
    theirs = R["rules"][index]
    mine = _result().rules[index]
    assert mine.relief.name == theirs["relief"]
    for cell in (
        "no_relief_non_responder",
        "no_relief_responder",
        "relief_non_responder",
        "relief_responder",
    ):
        assert getattr(mine, cell) == theirs[cell], cell
    for measure in ("sensitivity", "specificity", "ppv", "npv"):
        _same(getattr(mine, measure), theirs[measure])


def test_auc_and_delong_interval_match_r() -> None:
    mine = _result()
    theirs = R["auc"]
    assert (mine.auc, mine.auc_variance, mine.auc_lower, mine.auc_upper) == pytest.approx(
        (theirs["auc"], theirs["variance"], theirs["lower"], theirs["upper"]), rel=RELATIVE
    )


def test_cross_validation_matches_r() -> None:
    mine = _result().cross_validation
    theirs = R["cv"]
    assert mine is not None
    assert mine.in_sample_threshold == theirs["in_sample_threshold"]
    assert list(mine.fold_thresholds) == theirs["fold_thresholds"]
    _same(mine.in_sample_sensitivity, theirs["in_sample_sensitivity"])
    _same(mine.in_sample_specificity, theirs["in_sample_specificity"])
    _same(mine.out_of_sample_sensitivity, theirs["out_of_sample_sensitivity"])
    _same(mine.out_of_sample_specificity, theirs["out_of_sample_specificity"])
