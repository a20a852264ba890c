"""lumbar's ANCOVA against R: tests/reference/ancova.R wrote tests/reference/ancova.json.

For each dataset, visit and arm, classical and HC3: the contrast (arm minus the
reference) and the LS mean agree with R's ``lm`` + ``sandwich::vcovHC(type =
"HC3")`` + ``emmeans`` to 1e-4 relative (estimate, SE, t, p, CI bounds), with
exactly R's residual degrees of freedom. The JSON is committed, so these tests
need no R; tests/reference/README.md says how to regenerate it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from lumbar.analysis import AncovaResult, Estimate, ancova
from tests.analysis.datasets import DATASETS, REFERENCE, load

pytestmark = pytest.mark.reference

RELATIVE = 1e-4
VARIANCES = {"classical": False, "hc3": True}
"""The JSON's name for each kind of standard error, and lumbar's ``robust`` for it."""
KINDS = ("contrasts", "lsmeans")
COMPARED = ("estimate", "se", "statistic", "p", "lower", "upper")


def _load_reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / "ancova.json").read_text("utf-8"))
    return data


R = _load_reference()


@cache
def _fit(dataset: str, variance: str) -> AncovaResult:
    return ancova(load(dataset), robust=VARIANCES[variance], alpha=R["alpha"])


def _estimates(dataset: str, variance: str, kind: str) -> tuple[Estimate, ...]:
    result = _fit(dataset, variance)
    return result.contrasts if kind == "contrasts" else result.lsmeans


def _find(estimates: tuple[Estimate, ...], visit: str, arm: str) -> Estimate:
    found = [e for e in estimates if e.visit == visit and e.arm == arm]
    assert len(found) == 1, f"lumbar has {len(found)} estimates for visit {visit}, arm {arm}"
    return found[0]


def _cases() -> Iterator[Any]:
    for dataset, reference in R["datasets"].items():
        for variance in VARIANCES:
            for kind in KINDS:
                for record in reference[variance][kind]:
                    yield pytest.param(
                        dataset,
                        variance,
                        kind,
                        record,
                        id=f"{dataset}-{variance}-{kind}-{record['visit']}-{record['arm']}",
                    )


@pytest.mark.parametrize(("dataset", "variance", "kind", "record"), list(_cases()))
def test_matches_r(dataset: str, variance: str, kind: str, record: dict[str, Any]) -> None:
    mine = _find(_estimates(dataset, variance, kind), record["visit"], record["arm"])
    assert {name: getattr(mine, name) for name in COMPARED} == pytest.approx(
        {name: record[name] for name in COMPARED}, rel=RELATIVE
    )
    assert mine.df == record["df"]  # the residual df of lm, exactly
    assert mine.n == record["n"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_residual_df_and_rows_per_visit(dataset: str) -> None:
    data = load(dataset)
    for fit in R["datasets"][dataset]["fits"]:
        rows = data.at_visit(fit["visit"])
        assert len(rows) == fit["rows"]
        assert len(rows) - len(fit["coefficients"]) == fit["residual_df"]


def test_reference_grid_is_complete() -> None:
    """The JSON has every dataset, both kinds of SE, every visit and arm, as lumbar does."""
    assert set(R["datasets"]) == set(DATASETS)
    for dataset in DATASETS:
        data = load(dataset)
        reference = R["datasets"][dataset]
        assert tuple(reference["arms"]) == data.arms
        assert tuple(reference["visits"]) == data.visits
        assert reference["reference"] == data.reference
        expected = {
            "contrasts": {(visit, arm) for visit in data.visits for arm in data.arms[1:]},
            "lsmeans": {(visit, arm) for visit in data.visits for arm in data.arms},
        }
        for variance in VARIANCES:
            for kind in KINDS:
                records = reference[variance][kind]
                keys = [(record["visit"], record["arm"]) for record in records]
                assert len(keys) == len(set(keys)), f"{dataset} {variance} {kind}: duplicates"
                assert set(keys) == expected[kind], f"{dataset} {variance} {kind}"


def test_lumbar_covers_every_reference_case() -> None:
    """Every (dataset, SE, visit, arm) in the JSON has exactly one lumbar estimate, and back."""
    for dataset, reference in R["datasets"].items():
        for variance in VARIANCES:
            for kind in KINDS:
                estimates = _estimates(dataset, variance, kind)
                for record in reference[variance][kind]:
                    _find(estimates, record["visit"], record["arm"])
                mine = {(e.visit, e.arm) for e in estimates}
                theirs = {(r["visit"], r["arm"]) for r in reference[variance][kind]}
                assert mine == theirs, f"{dataset} {variance} {kind}"


def test_reference_records_its_provenance() -> None:
    versions = R["versions"]
    assert versions["R"].startswith("R version")
    for package in ("emmeans", "sandwich"):
        assert versions[package]
    assert R["alpha"] == 0.05
