"""lumbar's MMRM against R: tests/reference/mmrm.R wrote tests/reference/mmrm.json.

For each dataset and covariance structure (nlme::gls by REML with the
equivalent correlation and variance functions; see covariance.py), lumbar
agrees with R on:

- the REML log-likelihood, to 1e-6 relative;
- every entry of the estimated covariance matrix, to 1e-4 relative;
- each contrast (arm minus reference) and LS mean at each visit: estimate and
  SE to 1e-4 relative, Satterthwaite df within 2%, and the CI bounds and p
  value within what that 2% allows (plus 1e-4 relative).

The JSON is committed, so these tests need no R; tests/reference/README.md says
how to regenerate it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np
import pytest
from scipy import stats

from lumbar.analysis import STRUCTURES, Estimate, MmrmResult, mmrm
from tests.analysis.datasets import DATASETS, REFERENCE, load

pytestmark = pytest.mark.reference

RELATIVE = 1e-4
DF_RELATIVE = 0.02
LOGLIK_RELATIVE = 1e-6
KINDS = ("contrasts", "lsmeans")


def _load_reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / "mmrm.json").read_text("utf-8"))
    return data


R = _load_reference()


@cache
def _fit(dataset: str, structure: str) -> MmrmResult:
    return mmrm(load(dataset), covariance=structure, alpha=R["alpha"])


def _estimates(dataset: str, structure: str, kind: str) -> tuple[Estimate, ...]:
    result = _fit(dataset, structure)
    return result.contrasts if kind == "contrasts" else result.lsmeans


def _find(estimates: tuple[Estimate, ...], visit: str, arm: str) -> Estimate:
    found = [e for e in estimates if e.visit == visit and e.arm == arm]
    assert len(found) == 1, f"lumbar has {len(found)} estimates for visit {visit}, arm {arm}"
    return found[0]


def _fitted_structures() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(dataset, structure, R's fit) for every fit R completed."""
    for dataset, reference in R["datasets"].items():
        for structure, fit in reference["structures"].items():
            if fit["converged"]:
                yield dataset, structure, fit


def _fit_cases() -> list[Any]:
    return [
        pytest.param(dataset, structure, fit, id=f"{dataset}-{structure}")
        for dataset, structure, fit in _fitted_structures()
    ]


def _estimate_cases() -> list[Any]:
    return [
        pytest.param(
            dataset,
            structure,
            kind,
            record,
            id=f"{dataset}-{structure}-{kind}-{record['visit']}-{record['arm']}",
        )
        for dataset, structure, fit in _fitted_structures()
        for kind in KINDS
        for record in fit[kind]
    ]


@pytest.mark.parametrize(("dataset", "structure", "fit"), _fit_cases())
def test_reml_loglik_matches_r(dataset: str, structure: str, fit: dict[str, Any]) -> None:
    assert _fit(dataset, structure).loglik == pytest.approx(fit["reml_loglik"], rel=LOGLIK_RELATIVE)


@pytest.mark.parametrize(("dataset", "structure", "fit"), _fit_cases())
def test_covariance_matrix_matches_r(dataset: str, structure: str, fit: dict[str, Any]) -> None:
    result = _fit(dataset, structure)
    assert tuple(fit["sigma"]["visits"]) == result.visits
    expected = np.array(fit["sigma"]["matrix"], dtype=float)
    assert expected.shape == result.sigma.shape
    assert result.sigma == pytest.approx(expected, rel=RELATIVE)


@pytest.mark.parametrize(("dataset", "structure", "kind", "record"), _estimate_cases())
def test_estimate_matches_r(
    dataset: str, structure: str, kind: str, record: dict[str, Any]
) -> None:
    mine = _find(_estimates(dataset, structure, kind), record["visit"], record["arm"])
    assert mine.estimate == pytest.approx(record["estimate"], rel=RELATIVE)
    assert mine.se == pytest.approx(record["se"], rel=RELATIVE)
    assert mine.statistic == pytest.approx(record["statistic"], rel=RELATIVE)
    assert mine.df == pytest.approx(record["df"], rel=DF_RELATIVE)
    assert mine.n == record["n"]


@pytest.mark.parametrize(("dataset", "structure", "kind", "record"), _estimate_cases())
def test_interval_and_p_match_r(
    dataset: str, structure: str, kind: str, record: dict[str, Any]
) -> None:
    """CI bounds and p within what the 2% df allowance (and 1e-4 relative) permits."""
    mine = _find(_estimates(dataset, structure, kind), record["visit"], record["arm"])
    df = float(record["df"])
    low_df, high_df = (1 - DF_RELATIVE) * df, (1 + DF_RELATIVE) * df
    level = 1 - R["alpha"] / 2
    quantile_slack = abs(float(stats.t.ppf(level, low_df) - stats.t.ppf(level, high_df)))
    for bound in ("lower", "upper"):
        slack = quantile_slack * record["se"] + RELATIVE * abs(record[bound])
        assert abs(getattr(mine, bound) - record[bound]) <= slack, bound
    statistic = abs(record["statistic"])
    p_slack = abs(float(2 * stats.t.sf(statistic, low_df) - 2 * stats.t.sf(statistic, high_df)))
    assert abs(mine.p - record["p"]) <= p_slack + RELATIVE * record["p"]


def test_every_structure_converged_in_r() -> None:
    """R fitted every structure to every dataset (a failure is recorded, never dropped)."""
    assert R["not_converged"] == []
    failed = [
        f"{dataset} {structure}: {fit['attempts']}"
        for dataset, reference in R["datasets"].items()
        for structure, fit in reference["structures"].items()
        if not fit["converged"]
    ]
    assert failed == []


def test_reference_grid_is_complete() -> None:
    """All four structures for all three datasets, every visit and arm, as lumbar has them."""
    assert set(R["datasets"]) == set(DATASETS)
    for dataset in DATASETS:
        data = load(dataset)
        reference = R["datasets"][dataset]
        assert tuple(reference["arms"]) == data.arms
        assert tuple(reference["visits"]) == data.visits
        assert reference["reference"] == data.reference
        assert set(reference["structures"]) == set(STRUCTURES)
        expected = {
            "contrasts": {(visit, arm) for visit in data.visits for arm in data.arms[1:]},
            "lsmeans": {(visit, arm) for visit in data.visits for arm in data.arms},
        }
        for structure, fit in reference["structures"].items():
            assert fit["structure"] == structure
            for kind in KINDS:
                keys = [(record["visit"], record["arm"]) for record in fit.get(kind, [])]
                assert len(keys) == len(set(keys)), f"{dataset} {structure} {kind}: duplicates"
                assert set(keys) == expected[kind], f"{dataset} {structure} {kind}"


def test_lumbar_covers_every_reference_case() -> None:
    """Every (dataset, structure, visit, arm) in the JSON has one lumbar estimate, and back."""
    for dataset, structure, fit in _fitted_structures():
        result = _fit(dataset, structure)
        assert result.covariance == structure
        assert result.observations == R["datasets"][dataset]["observations"]
        assert result.participants == R["datasets"][dataset]["participants"]
        for kind in KINDS:
            estimates = _estimates(dataset, structure, kind)
            for record in fit[kind]:
                _find(estimates, record["visit"], record["arm"])
            mine = {(e.visit, e.arm) for e in estimates}
            theirs = {(r["visit"], r["arm"]) for r in fit[kind]}
            assert mine == theirs, f"{dataset} {structure} {kind}"


def test_reference_records_its_provenance() -> None:
    versions = R["versions"]
    assert versions["R"].startswith("R version")
    for package in ("nlme", "emmeans"):
        assert versions[package]
    for _, _, fit in _fitted_structures():
        assert fit["df_method"] == "satterthwaite"
