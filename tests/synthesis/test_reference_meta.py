"""lumbar's meta-analysis against R's metafor, on the numbers tests/reference/meta.R wrote.

Every dataset x measure x method (FE, DL, REML, PM, ML) x test (z, Knapp-Hartung):
effect sizes, the pooled estimate, SE, statistic, p, CI, tau^2 and its Q-profile
interval, I^2, H^2, Q, the prediction interval and the weights; plus subgroups,
meta-regression, leave-one-out, cumulative pooling and Egger's test. Closed-form
results (FE, DL) agree to 1e-6 relative, iterative ones (REML, PM, ML) to 1e-5.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lumbar.synthesis import (
    EffectSizes,
    MetaResult,
    Method,
    cumulative,
    effect_sizes,
    egger_test,
    leave_one_out,
    meta_analysis,
    meta_regression,
    subgroups,
)
from lumbar.synthesis.models import log_likelihood

pytestmark = pytest.mark.reference

REFERENCE = Path(__file__).parents[1] / "reference"
EXACT = 1e-6
ITERATIVE = 1e-5


@cache
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / "meta.json").read_text("utf-8"))
    return data


@cache
def source(name: str) -> pd.DataFrame:
    spec = reference()["datasets"][name]
    frame = pd.read_csv(REFERENCE / "data" / spec["file"])
    return frame.iloc[[row - 1 for row in spec["rows"]]].reset_index(drop=True)


def effects(name: str, measure: str) -> EffectSizes:
    spec = reference()["datasets"][name]
    frame = source(name)
    columns = {
        ours: np.asarray(frame.eval(expression), dtype=float)
        for ours, expression in spec["columns"].items()
    }
    labels = [f"{index + 1}: {study}" for index, study in enumerate(spec["study"])]
    return effect_sizes(measure, labels, columns, double_zero="correct")  # type: ignore[arg-type]


def tolerance(method: str | None) -> float:
    return EXACT if method in ("FE", "DL", None) else ITERATIVE


def close(ours: float | None, theirs: float | None, rel: float, what: str) -> None:
    if theirs is None:
        assert ours is None or np.isnan(ours), what
        return
    assert ours is not None, what
    assert ours == pytest.approx(theirs, rel=rel, abs=rel * 1e-4), what


def same_fit(result: MetaResult, fit: dict[str, Any], rel: float, what: str) -> None:
    pooled = result.pooled
    close(pooled.estimate, fit["estimate"], rel, f"{what} estimate")
    close(pooled.se, fit["se"], rel, f"{what} se")
    close(pooled.statistic, fit["statistic"], rel, f"{what} statistic")
    close(pooled.p, fit["pval"], max(rel, 1e-5), f"{what} p")
    close(pooled.lower, fit["ci_lb"], rel, f"{what} ci_lb")
    close(pooled.upper, fit["ci_ub"], rel, f"{what} ci_ub")
    close(result.tau2, fit["tau2"], rel, f"{what} tau2")
    close(result.i2, fit["I2"], rel, f"{what} I2")
    close(result.h2, fit["H2"], rel, f"{what} H2")
    close(result.q, fit["QE"], rel, f"{what} Q")
    close(result.q_p, fit["QEp"], max(rel, 1e-5), f"{what} Q p")
    assert result.df == fit["df"], what


FITS = [
    (name, measure, fit["method"], fit["test"])
    for name, spec in json.loads((REFERENCE / "meta.json").read_text("utf-8"))["datasets"].items()
    for measure, entry in spec["measures"].items()
    for fit in entry["fits"]
]


def test_every_measure_method_and_test_is_covered() -> None:
    covered = {(measure, method, test) for _, measure, method, test in FITS}
    for measure in ("MD", "SMD", "RR", "OR", "RD"):
        for method in ("FE", "DL", "REML", "PM", "ML"):
            for test in ("z", "knha"):
                assert (measure, method, test) in covered
    datasets = {name for name, *_ in FITS}
    assert len(datasets) >= 3
    assert {"clbp_smt"} <= datasets


@pytest.mark.parametrize(
    ("name", "measure"),
    sorted({(name, measure) for name, measure, *_ in FITS}),
)
def test_effect_sizes_equal_escalc(name: str, measure: str) -> None:
    entry = reference()["datasets"][name]["measures"][measure]
    ours = effects(name, measure)
    np.testing.assert_allclose(ours.yi, entry["yi"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.vi, entry["vi"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "measure", "method", "test"), FITS)
def test_models_equal_rma(name: str, measure: str, method: str, test: str) -> None:
    entry = reference()["datasets"][name]["measures"][measure]
    fit = next(f for f in entry["fits"] if f["method"] == method and f["test"] == test)
    result = meta_analysis(effects(name, measure), method, hksj=test == "knha")  # type: ignore[arg-type]
    rel = tolerance(method)
    what = f"{name} {measure} {method} {test}"
    same_fit(result, fit, rel, what)
    np.testing.assert_allclose(result.weights, fit["weights"], rtol=rel, err_msg=what)
    prediction = fit["prediction"]
    if prediction["pi_lb"] is None:
        assert result.prediction is None, what
    else:
        assert result.prediction is not None, what
        close(result.prediction[0], prediction["pi_lb"], rel, f"{what} pi_lb")
        close(result.prediction[1], prediction["pi_ub"], rel, f"{what} pi_ub")
    interval = fit["tau2_ci"]
    if method != "FE" and interval is not None:
        assert result.tau2_interval is not None, what
        close(result.tau2_interval[0], interval["tau2"][1], ITERATIVE, f"{what} tau2 lower")
        close(result.tau2_interval[1], interval["tau2"][2], ITERATIVE, f"{what} tau2 upper")


def _moderators(name: str, columns: list[str]) -> pd.DataFrame:
    return source(name)[columns].reset_index(drop=True)


@pytest.mark.parametrize(
    "index", range(len(json.loads((REFERENCE / "meta.json").read_text("utf-8"))["metareg"]))
)
def test_meta_regression_equals_rma_with_moderators(index: int) -> None:
    case = reference()["metareg"][index]
    what = f"{case['dataset']} {case['measure']} {case['formula']} {case['method']} {case['test']}"
    result = meta_regression(
        effects(case["dataset"], case["measure"]),
        _moderators(case["dataset"], case["moderators"]),
        case["method"],
        hksj=case["test"] == "knha",
    )
    rel = tolerance(case["method"])
    for ours, theirs in zip(result.coefficients, case["coefficients"], strict=True):
        close(ours.estimate, theirs["estimate"], rel, f"{what} {theirs['name']}")
        close(ours.se, theirs["se"], rel, f"{what} {theirs['name']} se")
        close(ours.lower, theirs["ci_lb"], rel, f"{what} {theirs['name']} ci_lb")
        close(ours.p, theirs["pval"], max(rel, 1e-5), f"{what} {theirs['name']} p")
    close(result.qm, case["QM"], rel, f"{what} QM")
    close(result.qm_p, case["QMp"], max(rel, 1e-5), f"{what} QMp")
    close(result.tau2, case["tau2"], rel, f"{what} tau2")
    close(result.i2, case["I2"], rel, f"{what} I2")
    close(result.q, case["QE"], rel, f"{what} QE")
    if case["method"] != "FE":
        close(result.r2, case["R2"], rel, f"{what} R2")


@pytest.mark.parametrize(
    "index", range(len(json.loads((REFERENCE / "meta.json").read_text("utf-8"))["subgroup"]))
)
def test_subgroups_equal_separate_fits_and_the_moderator_test(index: int) -> None:
    case = reference()["subgroup"][index]
    what = f"{case['dataset']} {case['measure']} by {case['moderator']}"
    what += f" {case['method']} {case['test']}"
    groups = source(case["dataset"])[case["moderator"]].astype(str).tolist()
    result = subgroups(
        effects(case["dataset"], case["measure"]),
        groups,
        case["method"],
        variable="group",
        hksj=case["test"] == "knha",
    )
    rel = tolerance(case["method"])
    for group in case["groups"]:
        same_fit(result.results[group["level"]], group, rel, f"{what} {group['level']}")
    if case["separate"] is not None:  # meta.R gives Q-between for the z test only
        close(result.q_between, case["separate"]["Q"], rel, f"{what} Q between")
        close(result.q_between_p, case["separate"]["pval"], max(rel, 1e-5), f"{what} Q p")
    assert result.moderator_test is not None
    close(result.moderator_test.qm, case["moderator_model"]["QM"], rel, f"{what} QM")
    close(result.moderator_test.tau2, case["moderator_model"]["tau2"], rel, f"{what} QM tau2")


@pytest.mark.parametrize("kind", ["leave1out", "cumul"])
def test_leave_one_out_and_cumulative_equal_metafor(kind: str) -> None:
    for raw in reference()[kind]:
        case = dict(raw)
        what = f"{kind} {case['dataset']} {case['measure']} {case['method']} {case['test']}"
        data = effects(case["dataset"], case["measure"])
        hksj = case["test"] == "knha"
        if kind == "leave1out":
            table = leave_one_out(data, case["method"], hksj=hksj)
        else:
            years = [float(year) for year in source(case["dataset"])[str(case["order_by"])]]
            table = cumulative(data, order=years, method=case["method"], hksj=hksj)
            # Like metafor, the table starts with the first study alone (k = 1).
            assert table["k"].tolist() == list(range(1, data.k + 1)), what
        rel = tolerance(case["method"])
        for ours, theirs in (
            ("estimate", "estimate"),
            ("se", "se"),
            ("lower", "ci_lb"),
            ("upper", "ci_ub"),
            ("tau2", "tau2"),
            ("i2", "I2"),
            ("q", "Q"),
            *(
                (("statistic", "statistic"), ("p", "pval"), ("h2", "H2"), ("q_p", "Qp"))
                if kind == "cumul"
                else ()
            ),
        ):
            np.testing.assert_allclose(
                table[ours], case[theirs], rtol=rel, atol=1e-10, err_msg=f"{what} {ours}"
            )


@pytest.mark.parametrize(
    "index", range(len(json.loads((REFERENCE / "meta.json").read_text("utf-8"))["egger"]))
)
def test_egger_equals_regtest(index: int) -> None:
    case = reference()["egger"][index]
    what = f"{case['dataset']} {case['measure']} {case['model']} {case['method']}"
    method: Method = case["method"] or "REML"
    result = egger_test(
        effects(case["dataset"], case["measure"]),
        case["model"],
        method,
        hksj=case["test"] == "knha",
    )
    slope = case["coefficients"][1]
    rel = tolerance(case["method"])
    close(result.slope, slope["estimate"], rel, f"{what} slope")
    close(result.se, slope["se"], rel, f"{what} se")
    close(result.statistic, case["statistic"], rel, f"{what} statistic")
    close(result.p, case["pval"], max(rel, 1e-5), f"{what} p")
    close(result.limit_estimate, case["limit_estimate"], rel, f"{what} limit")


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_bimodal_likelihood_gives_metafors_global_maximum(method: str) -> None:
    """tests/reference/data/bimodal_md.csv: the ML profile has two maxima, the global at
    tau^2 = 0 (Fisher scoring from DL used to stop at the local one near 6). R:
    rma(yi, vi, method = method) and logLik(rma(..., tau2 = t)) on a grid (meta.R)."""
    case = next(item for item in reference()["bimodal"] if item["method"] == method)
    frame = pd.read_csv(REFERENCE / "data" / case["file"])
    columns = {name: frame[name].to_numpy(dtype=float) for name in frame.columns[1:]}
    data = effect_sizes("MD", list(frame["study"]), columns)
    result = meta_analysis(data, case["method"])
    rel = tolerance(method)
    close(result.tau2, case["tau2"], rel, f"bimodal {method} tau2")
    close(result.estimate, case["estimate"], rel, f"bimodal {method} estimate")
    close(result.se, case["se"], rel, f"bimodal {method} se")
    close(result.i2, case["I2"], rel, f"bimodal {method} I2")
    restricted = method == "REML"
    x = np.ones((data.k, 1))
    ours = [
        log_likelihood(data.yi, data.vi, x, tau2, restricted=restricted)
        for tau2 in case["profile_tau2"]
    ]
    np.testing.assert_allclose(ours, case["profile_loglik"], rtol=1e-10)
    at_answer = log_likelihood(data.yi, data.vi, x, result.tau2, restricted=restricted)
    close(at_answer, case["loglik"], 1e-8, f"bimodal {method} log-likelihood")
    assert at_answer >= max(case["profile_loglik"]) - 1e-9
    assert any("2 local maxima" in note for note in result.notes)
