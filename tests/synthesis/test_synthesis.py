"""Effect sizes, study tables and models: formulas by hand, and errors that name the study."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lumbar.errors import SynthesisError
from lumbar.synthesis import (
    EffectSizes,
    cumulative,
    effect_sizes,
    egger_test,
    hedges_correction,
    leave_one_out,
    meta_analysis,
    meta_regression,
    sd_from_ci,
    sd_from_se,
    subgroups,
)
from lumbar.synthesis.models import _fisher_scoring, log_likelihood
from lumbar.synthesis.review import review
from lumbar.synthesis.studies import read_studies, shipped_studies

pytestmark = pytest.mark.unit

STUDIES = ["A", "B", "C", "D", "E"]
CONTINUOUS: dict[str, list[float]] = {
    "n1": [20, 35, 50, 18, 60],
    "mean1": [8.0, 9.5, 7.1, 10.2, 8.8],
    "sd1": [4.0, 5.1, 4.4, 5.5, 4.9],
    "n2": [22, 33, 49, 20, 58],
    "mean2": [10.5, 10.1, 9.9, 11.0, 11.6],
    "sd2": [4.2, 4.8, 4.6, 5.2, 5.0],
}


def test_mean_difference_and_hedges_g_by_hand() -> None:
    md = effect_sizes("MD", STUDIES, CONTINUOUS)
    assert md.yi[0] == pytest.approx(8.0 - 10.5)
    assert md.vi[0] == pytest.approx(4.0**2 / 20 + 4.2**2 / 22)
    g = effect_sizes("SMD", STUDIES, CONTINUOUS)
    pooled = math.sqrt((19 * 4.0**2 + 21 * 4.2**2) / 40)
    j = math.gamma(20) / (math.sqrt(20) * math.gamma(19.5))
    assert g.yi[0] == pytest.approx(j * (8.0 - 10.5) / pooled, rel=1e-12)
    assert g.vi[0] == pytest.approx(1 / 20 + 1 / 22 + g.yi[0] ** 2 / (2 * 42), rel=1e-12)
    # The exact correction is close to Hedges' approximation 1 - 3 / (4 df - 1).
    assert hedges_correction(np.array([40.0]))[0] == pytest.approx(1 - 3 / 159, abs=1e-4)


def test_binary_measures_and_the_continuity_correction() -> None:
    data: dict[str, list[float]] = {
        "events1": [4, 0, 10],
        "n1": [50, 40, 60],
        "events2": [10, 3, 10],
        "n2": [50, 42, 61],
    }
    rr = effect_sizes("RR", ["x", "y", "z"], data)
    assert rr.yi[0] == pytest.approx(math.log((4 / 50) / (10 / 50)))
    assert rr.vi[0] == pytest.approx(1 / 4 - 1 / 50 + 1 / 10 - 1 / 50)
    assert rr.corrected == (False, True, False)
    # 1/2 added to each cell of the study with a zero: 0.5/41 against 3.5/43.
    assert rr.yi[1] == pytest.approx(math.log((0.5 / 41) / (3.5 / 43)))
    odds = effect_sizes("OR", ["x", "y", "z"], data)
    assert odds.yi[0] == pytest.approx(math.log(4 * 40 / (46 * 10)))
    rd = effect_sizes("RD", ["x", "y", "z"], data)
    assert rd.yi[0] == pytest.approx(4 / 50 - 10 / 50)
    with pytest.raises(SynthesisError, match="events in some but not all"):
        effect_sizes("RR", ["none"], {"events1": [0], "n1": [20], "events2": [0], "n2": [20]})


def test_impossible_summaries_are_refused_naming_study_and_column() -> None:
    bad: dict[str, list[float]] = {
        **CONTINUOUS,
        "sd1": [4.0, -1.0, 4.4, 5.5, 4.9],
        "n2": [22, 33, 1, 20, 58],
    }
    with pytest.raises(SynthesisError) as error:
        effect_sizes("MD", STUDIES, bad)
    message = str(error.value)
    assert "study 'B': sd1: must be greater than 0" in message
    assert "study 'C': n2: must be at least 2" in message
    with pytest.raises(SynthesisError, match="cannot exceed the group's n"):
        effect_sizes("RR", ["x"], {"events1": [12], "n1": [10], "events2": [1], "n2": [10]})
    with pytest.raises(SynthesisError, match="must be one of MD, SMD, RR, OR, RD"):
        effect_sizes("HR", ["x"], {"n1": [10], "n2": [10]})  # type: ignore[arg-type]


def test_sd_conversions() -> None:
    assert sd_from_se(0.5, 36) == pytest.approx(3.0)
    quantile = stats.t.ppf(0.975, 24)
    assert sd_from_ci(1.0, 3.0, 25) == pytest.approx(2 / (2 * quantile) * 5)
    with pytest.raises(SynthesisError, match="n: must be a whole number of at least 2"):
        sd_from_se(0.5, 1)
    with pytest.raises(SynthesisError, match="must be above the lower limit"):
        sd_from_ci(3.0, 1.0, 25)


def test_common_effect_and_dersimonian_laird_by_hand() -> None:
    effects = effect_sizes("MD", STUDIES, CONTINUOUS)
    w = 1 / effects.vi
    mu = float(np.sum(w * effects.yi) / w.sum())
    q = float(np.sum(w * (effects.yi - mu) ** 2))
    fixed = meta_analysis(effects, "FE")
    assert fixed.estimate == pytest.approx(mu, rel=1e-12)
    assert fixed.se == pytest.approx(1 / math.sqrt(w.sum()), rel=1e-12)
    assert fixed.q == pytest.approx(q, rel=1e-12)
    assert fixed.tau2 == 0.0
    tau2 = max(0.0, (q - 4) / (w.sum() - np.sum(w**2) / w.sum()))
    assert meta_analysis(effects, "DL").tau2 == pytest.approx(tau2, abs=1e-14)
    adjusted = meta_analysis(effects, "REML", hksj=True)
    assert adjusted.df == 4
    assert adjusted.prediction is not None
    assert sum(adjusted.weights) == pytest.approx(100.0)


def test_heterogeneity_tools_run_on_the_same_effects() -> None:
    effects = effect_sizes("MD", STUDIES, CONTINUOUS)
    out = leave_one_out(effects, "DL")
    assert list(out["left_out"]) == STUDIES
    grown = cumulative(effects, order=[2005, 2001, 2003, 2010, 2008], method="DL")
    assert list(grown["added"]) == ["B", "C", "A", "E", "D"]
    assert grown["k"].tolist() == [1, 2, 3, 4, 5]
    # The first row is study B alone: its own effect, no heterogeneity.
    assert grown["estimate"].iloc[0] == pytest.approx(effects.yi[1])
    assert grown["se"].iloc[0] == pytest.approx(math.sqrt(effects.vi[1]))
    assert grown[["tau2", "q", "i2"]].iloc[0].tolist() == [0.0, 0.0, 0.0]
    groups = subgroups(effects, ["x", "x", "y", "y", "y"], "DL")
    assert set(groups.results) == {"x", "y"}
    assert groups.q_between_df == 1
    egger = egger_test(effects)
    assert egger.df == 3
    assert "fewer than 10 studies" in egger.note
    regression = meta_regression(effects, pd.DataFrame({"year": [2005, 2001, 2003, 2010, 2008]}))
    assert regression.qm_df == 1
    with pytest.raises(SynthesisError, match="at least 3 are needed"):
        meta_regression(
            effects.subset([True, True, False, False, False]), pd.DataFrame({"x": [1, 2]})
        )


def test_study_tables_set_aside_rows_without_numbers() -> None:
    shipped = shipped_studies()
    assert shipped["citation"].notna().all(), "every row cites its source"
    table = read_studies(shipped[shipped["outcome"] == "RDQ"], "MD")
    assert table.effects.k == 2
    reasons = dict(table.excluded)
    assert reasons["Majchrzycki 2014 (RDQ)"] == "not published: n1, n2"
    # A published difference with its 95% CI: SE from the interval's width.
    assert table.effects.vi[0] == pytest.approx((2.2 / (2 * stats.norm.ppf(0.975))) ** 2)
    with pytest.raises(SynthesisError, match="each row needs its own label"):
        read_studies(
            pd.DataFrame({"study": ["a", "a"], **{k: v[:2] for k, v in CONTINUOUS.items()}}), "MD"
        )
    with pytest.raises(SynthesisError, match=r"columns\.n1: names no column"):
        read_studies(pd.DataFrame({"study": ["a"]}), "MD", columns={"n1": "N_T"})
    with pytest.raises(SynthesisError, match="needs n1, mean1, sd1, n2, mean2, sd2"):
        read_studies(pd.DataFrame({"study": ["a"], "n1": [3]}), "MD")


# Two likelihoods of tau^2 with two maxima each: six (five) precise studies agreeing
# and two imprecise ones far away. In the first, Fisher scoring from the DL estimate
# stopped at a local maximum near 6 while the global one is at 0 (the shipped
# tests/reference/data/bimodal_md.csv); in the second it stopped at 0 while the global
# one is near 17.7.
BIMODAL = {
    "local maximum inside, global at 0": (
        [0.3, -0.2, 0.4, 0.1, 0.1, 0.1, 7.7, 8.4],
        [0.16, 0.25, 0.09, 0.09, 0.25, 0.16, 5.0, 3.2],
    ),
    "local maximum at 0, global inside": (
        [-0.08, 0.05, 0.04, 0.17, -0.01, 4.1, -13.51],
        [0.08, 0.06, 0.18, 0.02, 0.17, 6.99, 4.95],
    ),
}


def brute_force_loglik(
    yi: np.ndarray, vi: np.ndarray, tau2: np.ndarray, restricted: bool
) -> np.ndarray:
    """The exact (restricted) log-likelihood of the pooled-mean model at every tau^2 of a
    grid, written out independently of lumbar (metafor's logLik; REML: log|X'X| = log k)."""
    variance = vi[None, :] + tau2[:, None]
    weights = 1 / variance
    mean = np.sum(weights * yi, axis=1) / np.sum(weights, axis=1)
    value = -0.5 * (
        len(yi) * np.log(2 * np.pi)
        + np.sum(np.log(variance), axis=1)
        + np.sum(weights * (yi - mean[:, None]) ** 2, axis=1)
    )
    if restricted:
        value += 0.5 * np.log(2 * np.pi) + 0.5 * np.log(len(yi))
        value -= 0.5 * np.log(np.sum(weights, axis=1))
    return np.asarray(value)


@pytest.mark.parametrize("case", list(BIMODAL))
@pytest.mark.parametrize("method", ["ML", "REML"])
def test_tau2_is_the_global_maximum_of_a_likelihood_with_two(case: str, method: str) -> None:
    yi, vi = (np.array(values) for values in BIMODAL[case])
    effects = EffectSizes("MD", tuple(f"S{i}" for i in range(len(yi))), yi, vi)
    result = meta_analysis(effects, method)  # type: ignore[arg-type]
    restricted = method == "REML"
    # Brute force: 0 and 400,000 points up to 400, ten times the squared range.
    fine = np.concatenate([[0.0], np.linspace(1e-3, 400.0, 400_000)])
    profile = brute_force_loglik(yi, vi, fine, restricted)
    at_answer = brute_force_loglik(yi, vi, np.array([result.tau2]), restricted)[0]
    assert at_answer >= profile.max() - 1e-9, (case, method, result.tau2)
    assert result.tau2 == pytest.approx(fine[profile.argmax()], abs=2e-3)
    x = np.ones((effects.k, 1))
    assert log_likelihood(yi, vi, x, result.tau2, restricted=restricted) == pytest.approx(
        at_answer, rel=1e-12
    )


def test_ml_from_the_dl_start_climbs_the_nearer_maximum() -> None:
    """Why the check exists: Fisher scoring alone (the estimator before) ends at the
    local maximum near 6, whose log-likelihood is below that at tau^2 = 0."""
    yi, vi = (np.array(values) for values in BIMODAL["local maximum inside, global at 0"])
    x = np.ones((len(yi), 1))
    local, _ = _fisher_scoring(yi, vi, x, restricted=False)
    assert local == pytest.approx(6.054, abs=1e-3)
    assert log_likelihood(yi, vi, x, local, restricted=False) < log_likelihood(
        yi, vi, x, 0.0, restricted=False
    )
    result = meta_analysis(EffectSizes("MD", tuple("ABCDEFGH"), yi, vi), "ML")
    assert result.tau2 == 0.0
    assert result.estimate == pytest.approx(float(np.sum(yi / vi) / np.sum(1 / vi)))
    assert "tau^2 = 0, is reported" in result.notes[0]
    assert "note: The log-likelihood of tau^2 has 2 local maxima" in str(result)


def test_reml_that_fisher_scoring_cannot_settle_is_the_profile_maximum_with_a_note() -> None:
    """Fisher scoring oscillates here (metafor with threshold 1e-12 x median(vi) stops:
    'Fisher scoring algorithm did not converge'); the refused fit becomes the profile's
    maximum, said so in a note, and checked by brute force."""
    yi = np.array([-0.2, 0.2, 0.2, 0.0, 0.0, 0.3, 1.7])
    vi = np.array([0.02, 0.12, 0.13, 0.13, 0.14, 0.16, 6.36])
    with pytest.raises(SynthesisError, match="did not converge"):
        _fisher_scoring(yi, vi, np.ones((7, 1)), restricted=True)
    result = meta_analysis(EffectSizes("MD", tuple("ABCDEFG"), yi, vi), "REML")
    fine = np.concatenate([[0.0], np.linspace(1e-7, 1.0, 1_000_000)])
    profile = brute_force_loglik(yi, vi, fine, True)
    at_answer = brute_force_loglik(yi, vi, np.array([result.tau2]), True)[0]
    assert at_answer >= profile.max() - 1e-12
    assert result.tau2 == pytest.approx(fine[profile.argmax()], abs=1e-5)
    assert "did not converge" in result.notes[0]


def test_a_row_with_more_events_than_participants_is_named_whatever_else_is_wrong() -> None:
    """Study A breaks two rules (not whole, and more events than n); study B's n is
    too small. Every rule is reported, the events rule included."""
    with pytest.raises(SynthesisError) as error:
        effect_sizes(
            "RR",
            ["A", "B"],
            {"events1": [12.5, 3], "n1": [10, 1], "events2": [1, 2], "n2": [10, 20]},
        )
    message = str(error.value)
    assert "study 'A': events1: must be a whole number" in message
    assert "study 'A': events1: cannot exceed the group's n (10)" in message
    assert "study 'B': n1: must be at least 2" in message
    assert "study 'B': events1: cannot exceed the group's n (1)" in message


def test_one_usable_study_lists_the_studies_set_aside() -> None:
    frame = pd.DataFrame(
        {
            "study": ["Kept 2001", "No SDs 2005", "No n 2010"],
            "n1": [40, 50, None],
            "mean1": [8.0, 7.5, 9.0],
            "sd1": [4.0, None, 4.2],
            "n2": [42, 48, 30],
            "mean2": [10.0, 9.9, 11.0],
            "sd2": [4.1, None, 4.0],
        }
    )
    with pytest.raises(SynthesisError) as error:
        review(frame, measure="MD", method="REML", hksj=False, level=0.95, columns={})
    message = str(error.value)
    assert "only 1 can be pooled, at least 2 are needed" in message
    assert "Kept 2001" in message
    assert "study 'No SDs 2005': set aside: not published: sd1, sd2" in message
    assert "study 'No n 2010': set aside: not published: n1" in message


# ---------------------------------------------------------------------- refused, not a traceback


EQUAL_SE: dict[str, list[float]] = {
    **CONTINUOUS,
    "n1": [40] * 5,
    "n2": [40] * 5,
    "sd1": [5.0] * 5,
    "sd2": [5.0] * 5,
}
"""Five studies of the same size and SDs: every standard error is the same."""


def _equal_se_effects() -> EffectSizes:
    return effect_sizes("MD", STUDIES, EQUAL_SE)


@pytest.mark.parametrize("model", ["lm", "rma"])
def test_egger_with_equal_standard_errors_is_not_estimable_and_says_why(model: str) -> None:
    effects = _equal_se_effects()
    assert len(set(effects.sei.tolist())) == 1
    with pytest.raises(SynthesisError) as error:
        egger_test(effects, model)  # type: ignore[arg-type]
    message = str(error.value)
    assert "Egger's test is not estimable" in message
    assert "standard errors: are all equal" in message


def test_egger_with_standard_errors_equal_but_for_rounding_is_not_estimable() -> None:
    """Intervals of one width around different effects give SEs equal to the last bits
    only: the regression is as singular as with exactly equal ones."""
    frame = pd.DataFrame(
        {
            "study": STUDIES,
            "effect": [0.2, 0.1, 1.2, 0.8, -0.2],
            "lower": [0.1, 0.0, 1.1, 0.7, -0.3],
            "upper": [0.3, 0.2, 1.3, 0.9, -0.1],
        }
    )
    effects = read_studies(frame, "MD").effects
    assert len(set(effects.sei.tolist())) > 1  # not exactly equal
    with pytest.raises(SynthesisError, match="Egger's test is not estimable"):
        egger_test(effects)


def test_a_review_with_equal_standard_errors_pools_and_notes_egger_not_estimable() -> None:
    effects = _equal_se_effects()
    frame = pd.DataFrame({"study": STUDIES, **EQUAL_SE})
    run = review(frame, measure="MD", method="REML", hksj=False, level=0.95, columns={})
    pooled = meta_analysis(effects, "REML")
    assert run.model.estimate == pooled.estimate
    assert run.egger is None
    assert any(
        note.startswith("Egger's test is not estimable: all 5 standard errors are equal")
        for note in run.notes
    ), run.notes


def test_text_in_a_numeric_column_names_the_study_and_the_column() -> None:
    frame = pd.DataFrame({"study": STUDIES, **CONTINUOUS}).astype({"mean1": object})
    frame.loc[1, "mean1"] = "12.x"
    frame.loc[3, "mean1"] = "n/a"
    with pytest.raises(SynthesisError) as error:
        read_studies(frame, "MD")
    message = str(error.value)
    assert "study 'B': mean1: must be a number (received '12.x')" in message
    assert "study 'D': mean1: must be a number (received 'n/a')" in message


@pytest.mark.parametrize(
    ("measure", "columns", "where"),
    [
        (
            "RR",
            {"events1": [3, "five"], "n1": [20, 20], "events2": [4, 6], "n2": [20, 20]},
            "events1",
        ),
        ("MD", {"effect": [-1.0, "big"], "se": [0.5, 0.4]}, "effect"),
        ("MD", {"effect": [-1.0, -2.0], "lower": [-2.0, "?"], "upper": [0.0, -1.0]}, "lower"),
        ("OR", {"effect": [0.8, 0.7], "se": [0.2, "0,3"]}, "se"),
    ],
)
def test_text_in_any_column_the_measure_reads_names_the_study_and_the_column(
    measure: str, columns: dict[str, list[object]], where: str
) -> None:
    frame = pd.DataFrame({"study": ["A", "B"], **columns})
    with pytest.raises(SynthesisError) as error:
        read_studies(frame, measure)  # type: ignore[arg-type]
    assert f"study 'B': {where}: must be a number" in str(error.value)


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("mean1", 1e300, "must be between -1e+12 and 1e+12"),
        ("mean2", -math.inf, "must be between -1e+12 and 1e+12"),
        ("sd1", 1e300, "must be between 1e-12 and 1e+12"),
        ("sd2", 1e-160, "must be between 1e-12 and 1e+12"),
        ("n1", 1e300, "must be at most 1e+10"),
    ],
)
def test_extreme_values_are_refused_naming_study_and_column_before_any_overflow(
    column: str, value: float, rule: str
) -> None:
    values = {name: list(numbers) for name, numbers in CONTINUOUS.items()}
    values[column][1] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would fail the test
        for measure in ("MD", "SMD"):
            with pytest.raises(SynthesisError) as error:
                effect_sizes(measure, STUDIES, values)
            assert f"study 'B': {column}: {rule}" in str(error.value)
            frame = pd.DataFrame({"study": STUDIES, **values})
            with pytest.raises(SynthesisError) as error:
                read_studies(frame, measure)
            assert f"study 'B': {column}: {rule}" in str(error.value)


@pytest.mark.parametrize(
    ("columns", "where"),
    [
        ({"effect": [-1.0, 1e300], "se": [0.5, 0.4]}, "effect"),
        ({"effect": [-1.0, -2.0], "se": [0.5, 1e300]}, "se"),
        ({"effect": [-1.0, -2.0], "se": [0.5, 1e-200]}, "se"),
        ({"effect": [-1.0, 1.0], "lower": [-2.0, -1e308], "upper": [0.0, 1e308]}, "lower"),
        ({"events1": [3, 4], "n1": [20, 1e300], "events2": [4, 6], "n2": [20, 20]}, "n1"),
    ],
)
def test_extreme_summaries_are_refused_naming_study_and_column(
    columns: dict[str, list[float]], where: str
) -> None:
    frame = pd.DataFrame({"study": ["A", "B"], **columns})
    measure = "RD" if "events1" in columns else "MD"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SynthesisError) as error:
            read_studies(frame, measure)  # type: ignore[arg-type]
    assert f"study 'B': {where}: must be " in str(error.value)


def test_values_at_the_plausible_limits_pool_without_overflow() -> None:
    """The limits are where they are so that nothing the models compute leaves
    floating-point range: the most extreme plausible studies still pool to numbers."""
    values: dict[str, list[float]] = {
        "n1": [2, 1e10, 2, 1e10],
        "mean1": [1e12, -1e12, 0.0, 1e12],
        "sd1": [1e12, 1e-12, 1e-12, 1e12],
        "n2": [1e10, 2, 1e10, 2],
        "mean2": [-1e12, 1e12, 1e12, 0.0],
        "sd2": [1e-12, 1e12, 1e-12, 1e-12],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for measure in ("MD", "SMD"):
            effects = effect_sizes(measure, ["A", "B", "C", "D"], values)
            for method in ("FE", "DL", "REML", "PM", "ML"):
                result = meta_analysis(effects, method)
                assert math.isfinite(result.estimate)
                assert math.isfinite(result.se)
                assert math.isfinite(result.tau2)
