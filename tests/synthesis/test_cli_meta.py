"""`lumbar meta` in-process: the shipped dataset, users' files (mapped or not, continuous or
binary), subgroups, errors that name the study and the column, this trial added, and the
forest and funnel figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D
from scipy import stats

import lumbar
from lumbar.cli import app
from lumbar.demo import SyntheticTrial, synthetic_trial
from lumbar.formatting import SYNTHETIC_NOTE
from lumbar.report.forest import forest_figure, funnel_figure
from tests.clitools import runner

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data"
CLBP = DATA / "clbp_smt.csv"
CLBP_COLUMNS = ["--column", "mean1=m1", "--column", "sd1=s1", "--column", "mean2=m2"]
CLBP_COLUMNS += ["--column", "sd2=s2"]
Z = float(stats.norm.ppf(0.975))

# Six made-up trials with events in both arms, two allocation methods.
BINARY = pd.DataFrame(
    {
        "study": ["Alpha 2001", "Beta 2003", "Gamma 2005", "Delta 2008", "Eps 2010", "Zeta 2014"],
        "events1": [12, 30, 8, 45, 20, 15],
        "n1": [60, 150, 40, 200, 90, 80],
        "events2": [20, 42, 15, 60, 22, 25],
        "n2": [58, 148, 42, 205, 88, 79],
        "allocation": ["random", "random", "random", "alternate", "alternate", "alternate"],
        "year": [2001, 2003, 2005, 2008, 2010, 2014],
    }
)


def _meta(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["meta", *args])
    assert result.exit_code == code, result.output
    return str(result.output)


def _results(out: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return loaded


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


# ---------------------------------------------------------------------- published studies


def test_shipped_rdq_pools_the_two_published_comparisons_and_sets_aside_the_rest(
    tmp_path: Path,
) -> None:
    output = _meta("--shipped", "--outcome", "RDQ", "--measure", "MD", "--out", str(tmp_path))
    assert "set aside: Cherkin 2001 massage vs self-care (RDQ) — not published: sd1, sd2" in output
    assert "Random effects, REML" in output
    results = _results(tmp_path)
    assert results["model"]["k"] == 2
    assert len(results["excluded"]) == 4
    # Generic inverse variance by hand: SE from each published 95% CI; tau^2 is 0 here.
    effects = np.array([-2.9, -2.5])
    se = np.array([(-1.8 + 4.0), (-1.4 + 3.5)]) / (2 * Z)
    weights = 1 / se**2
    assert results["model"]["tau2"] == 0
    assert results["display"]["estimate"] == pytest.approx(
        float(np.sum(weights * effects) / weights.sum()), abs=1e-10
    )
    assert set(results["files"]) == {
        "results.json",
        "studies.csv",
        "pooled.csv",
        "forest.png",
        "forest.svg",
        "funnel.png",
        "funnel.svg",
    }
    assert any("Leave-one-out was not done" in note for note in results["notes"])
    studies = _table(tmp_path / "studies.csv")
    assert list(studies["weight"]) == pytest.approx(list(100 * weights / weights.sum()))
    assert (tmp_path / "forest.png").read_bytes().startswith(b"\x89PNG")


def test_a_table_with_several_outcomes_needs_outcome(tmp_path: Path) -> None:
    output = _meta("--shipped", "--out", str(tmp_path), code=2)
    assert "one outcome is pooled at a time" in output
    assert "RDQ, bothersomeness" in output
    assert "matches no row" in _meta("--shipped", "--outcome", "pain", code=2)


def test_user_csv_in_default_columns_pools_a_common_effect_by_hand(tmp_path: Path) -> None:
    source = pd.read_csv(CLBP).head(8)
    table = pd.DataFrame(
        {
            "study": source["Source"] + " #" + source["ID"].astype(str),
            "n1": source["n1"],
            "mean1": source["m1"],
            "sd1": source["s1"],
            "n2": source["n2"],
            "mean2": source["m2"],
            "sd2": source["s2"],
        }
    )
    path = tmp_path / "studies.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "out"
    output = _meta(str(path), "--method", "FE", "--out", str(out))
    assert "Bronfort 2011 #2" in output
    yi = (table["mean1"] - table["mean2"]).to_numpy()
    vi = (table["sd1"] ** 2 / table["n1"] + table["sd2"] ** 2 / table["n2"]).to_numpy()
    expected = float(np.sum(yi / vi) / np.sum(1 / vi))
    results = _results(out)
    assert results["model"]["coefficients"][0]["estimate"] == pytest.approx(expected, rel=1e-12)
    assert results["model"]["method"] == "FE"
    assert len(_table(out / "leave_one_out.csv")) == 8
    assert results["egger"]["note"].startswith("fewer than 10 studies")


def test_user_csv_with_its_own_names_mapped_by_column(tmp_path: Path) -> None:
    args = [str(CLBP), "--column", "study=ID", *CLBP_COLUMNS, "--order-by", "ID"]
    _meta(*args, "--method", "DL", "--hksj", "--treatment", "manipulation", "--out", str(tmp_path))
    results = _results(tmp_path)
    assert results["model"]["k"] == 23
    assert results["model"]["hksj"] is True
    assert results["inputs"]["columns"]["sd1"] == "s1"
    assert len(_table(tmp_path / "leave_one_out.csv")) == 23
    cumulative = _table(tmp_path / "cumulative.csv")
    assert list(cumulative["k"]) == list(range(1, 24))
    assert cumulative["estimate"].iloc[-1] == pytest.approx(
        results["model"]["coefficients"][0]["estimate"]
    )
    assert results["egger"]["k"] == 23
    assert results["egger"]["note"] == ""


def test_repeated_labels_are_refused_with_the_reason(tmp_path: Path) -> None:
    output = _meta(str(CLBP), "--column", "study=Source", *CLBP_COLUMNS, code=2)
    assert "each row needs its own label" in output
    assert "Bronfort 2011" in output


def test_binary_csv_shows_ratios_exponentiated(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    BINARY.to_csv(path, index=False)
    out = tmp_path / "out"
    output = _meta(str(path), "--measure", "OR", "--order-by", "year", "--out", str(out))
    assert "Studies (odds ratio)" in output
    a, b = BINARY["events1"], BINARY["n1"] - BINARY["events1"]
    c, d = BINARY["events2"], BINARY["n2"] - BINARY["events2"]
    studies = _table(out / "studies.csv")
    assert list(studies["estimate"]) == pytest.approx(list(a * d / (b * c)))
    assert list(studies["yi"]) == pytest.approx(list(np.log(a * d / (b * c))))
    assert f"Alpha 2001   {12 * 38 / (48 * 20):.2f}" in output  # the ratio, not its log
    results = _results(out)
    log_pooled = results["model"]["coefficients"][0]["estimate"]
    assert results["display"]["estimate"] == pytest.approx(math.exp(log_pooled))
    pooled = _table(out / "pooled.csv")
    assert pooled["exp_estimate"].iloc[0] == pytest.approx(math.exp(log_pooled))
    assert "exp_estimate" in _table(out / "cumulative.csv").columns


def test_subgroups_are_pooled_and_both_tests_reported(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    BINARY.to_csv(path, index=False)
    out = tmp_path / "out"
    output = _meta(str(path), "--measure", "RR", "--subgroup", "allocation", "--out", str(out))
    assert "Subgroups by allocation" in output
    assert "Test for subgroup differences (Q-between)" in output
    assert "Moderator test (meta-regression, one tau^2): QM" in output
    groups = _table(out / "subgroups.csv")
    assert list(groups["subgroup"]) == ["random", "alternate"]
    assert list(groups["k"]) == [3, 3]
    # Q-between by hand from the subgroup estimates and their standard errors.
    weights = 1 / groups["se"] ** 2
    pooled = np.sum(weights * groups["estimate"]) / weights.sum()
    expected = float(np.sum(weights * (groups["estimate"] - pooled) ** 2))
    results = _results(out)
    assert results["subgroups"]["q_between"] == pytest.approx(expected)
    assert results["subgroups"]["moderator_qm"] is not None
    assert list(_table(out / "studies.csv")["subgroup"]) == list(BINARY["allocation"])


# ---------------------------------------------------------------------- errors


def test_a_negative_sd_names_the_study_and_the_column(tmp_path: Path) -> None:
    table = pd.read_csv(CLBP)
    table.loc[table["ID"] == 3, "s1"] = -19
    path = tmp_path / "negative.csv"
    table.to_csv(path, index=False)
    output = _meta(str(path), "--column", "study=ID", *CLBP_COLUMNS, code=2)
    assert "study '3': sd1 (your column 's1'): must be greater than 0 (received -19.0)" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--column", "sd1=nope"], "--column sd1=nope: names no column of the file"),
        (["--column", "sd=s1"], "maps a name lumbar does not use"),
        (["--column", "sd1"], "must be written NAME=YOURS"),
        (["--subgroup", "region"], "region: is not a column of the studies"),
        (["--order-by", "year"], "year: is not a column of the studies"),
        (["--measure", "HR"], "--measure: must be one of MD, SMD, RR, OR, RD (received 'HR')"),
        (["--method", "EB"], "--method: must be one of FE, DL, REML, PM, ML (received 'EB')"),
        (["--level", "95"], "--level: must be between 0 and 1"),
    ],
)
def test_mapping_and_option_errors_exit_2_with_the_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    mapped = ["--column", "study=ID", *CLBP_COLUMNS]
    if args[0] == "--column":
        mapped = []
    output = _meta(str(CLBP), *mapped, *args, "--out", str(tmp_path), code=2)
    assert message in output


def test_a_file_without_study_labels_says_how_to_map_them() -> None:
    output = _meta(str(CLBP), *CLBP_COLUMNS, code=2)
    assert "a column naming each study is required" in output
    assert "--column study=YOURS" in output


def test_studies_come_from_a_file_or_the_shipped_dataset_not_both() -> None:
    assert "not both or neither" in _meta(code=2)
    assert "not both or neither" in _meta(str(CLBP), "--shipped", code=2)


# A header and five studies; each case below changes some cells (study, column, text).
HEADER = "study,n1,mean1,sd1,n2,mean2,sd2"
FIVE = ["A,50,10,5,50,12,5", "B,50,11,5,50,12,5", "C,45,9,6,50,12,6", "D,40,8,5,50,12,5"]
FIVE.append("E,60,9.5,4,60,12,4.5")
EQUAL_SE = [
    f"{name},50,{mean},5,50,12,5" for name, mean in zip("ABCDE", (10, 11, 9, 13, 8), strict=True)
]
REAL_COMMAND_CASES = {
    "equal standard errors": (
        EQUAL_SE,
        0,
        [
            "note: Egger's test is not estimable: all 5 standard errors are equal (1), so the "
            "effects cannot be regressed on them."
        ],
    ),
    "text in a mean": (
        [FIVE[0], "B,50,12.x,5,50,12,5", *FIVE[2:]],
        2,
        ["study 'B': mean1: must be a number (received '12.x')"],
    ),
    "a mean and an SD of 1e300": (
        [FIVE[0], "B,50,1e300,5,50,12,5", "C,45,9,1e300,50,12,6", *FIVE[3:]],
        2,
        [
            "study 'B': mean1: must be between -1e+12 and 1e+12: beyond is not a plausible "
            "summary: check the value and its units (received 1e+300)",
            "study 'C': sd1: must be between 1e-12 and 1e+12",
        ],
    ),
}


@pytest.mark.parametrize(
    ("rows", "code", "messages"), REAL_COMMAND_CASES.values(), ids=REAL_COMMAND_CASES.keys()
)
def test_the_real_command_names_study_and_column_and_never_prints_a_traceback(
    tmp_path: Path, rows: list[str], code: int, messages: list[str]
) -> None:
    """Issue 10: equal SEs broke Egger's test with a LinAlgError, and text or 1e300 in a
    column of numbers ended in a ValueError or an overflow; the installed command (not
    the in-process runner) now pools, or refuses naming the study and the column."""
    path = tmp_path / "studies.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    source = Path(lumbar.__file__).parents[1]
    environment = {**os.environ, "PYTHONPATH": str(source), "COLUMNS": "200"}
    completed = subprocess.run(
        [sys.executable, "-m", "lumbar", "meta", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == code, output
    assert "Traceback" not in output
    assert "Warning" not in output  # no numpy overflow on the way
    flat = " ".join(output.split())
    for message in messages:
        assert message in flat, output
    if code == 0:
        notes = _results(tmp_path / "out")["notes"]
        if "Egger" in messages[0]:
            assert _results(tmp_path / "out")["egger"] is None
            assert any(note in messages[0] for note in notes), notes


def test_a_mean_written_n_a_is_not_published_and_the_study_set_aside(tmp_path: Path) -> None:
    """``n/a`` (like ``NA`` or an empty cell) is what pandas reads as missing: the number
    was not published, and the study is set aside naming the column, not refused."""
    path = tmp_path / "studies.csv"
    path.write_text("\n".join([HEADER, *FIVE[:3], "D,40,n/a,5,50,12,5", FIVE[4]]) + "\n")
    output = _meta(str(path), "--out", str(tmp_path / "out"))
    assert "set aside: D \N{EM DASH} not published: mean1" in output
    assert _results(tmp_path / "out")["model"]["k"] == 4


def test_more_events_than_participants_names_that_rule(tmp_path: Path) -> None:
    path = tmp_path / "studies.csv"
    path.write_text("study,events1,n1,events2,n2\nA,10,50,12,50\nB,60,50,12,50\nC,5,40,9,40\n")
    output = _meta(str(path), "--measure", "RR", "--out", str(tmp_path / "out"), code=2)
    assert "study 'B': events1: cannot exceed the group's n (50) (received 60.0)" in output


# ---------------------------------------------------------------------- this trial


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> SyntheticTrial:
    made = synthetic_trial(tmp_path_factory.mktemp("meta-trial"), participants=60, seed=3)
    admin = made.open("admin")
    try:
        admin.add_staff("blind", "statistician", all_sites=True, unblinded=False)
    finally:
        admin.close()
    return made


def _trial_args(trial: SyntheticTrial, user: str) -> list[str]:
    return ["--with-trial", "--db", trial.url, "--key-file", str(trial.key_file), "--as", user]


def test_with_trial_shows_the_pooled_estimate_before_and_after(
    trial: SyntheticTrial, tmp_path: Path
) -> None:
    out = tmp_path / "with"
    output = _meta(
        "--shipped", "--outcome", "RDQ", *_trial_args(trial, "statistician"), "--out", str(out)
    )
    assert output.startswith("SYNTHETIC DATA")
    assert "published studies only" in output
    assert "with this trial, SYNTHETIC DATA" in output
    assert "SYNTHETIC massage-clbp relaxation (RDQ, this trial)" in output
    results = _results(out)
    before, after = results["before_after"]["before"], results["before_after"]["after"]
    assert (before["k"], after["k"]) == (2, 4)
    change = after["coefficients"][0]["estimate"] - before["coefficients"][0]["estimate"]
    assert results["before_after"]["change"] == pytest.approx(change)
    assert results["synthetic"] is True
    assert results["trial"]["outcome_column"] == "rdq_total"
    # Before is the published studies alone: the same as without --with-trial.
    alone = tmp_path / "alone"
    _meta("--shipped", "--outcome", "RDQ", "--out", str(alone))
    assert before == _results(alone)["model"]
    for name in ("studies", "pooled", "leave_one_out"):
        first = (out / f"{name}.csv").read_text(encoding="utf-8").splitlines()[0]
        assert first == f"# {SYNTHETIC_NOTE}"
    studies = _table(out / "studies.csv")
    assert list(studies["this_trial"]) == [False, False, True, True]
    assert studies.loc[studies["this_trial"], "study"].str.startswith("SYNTHETIC").all()
    assert len(_table(out / "pooled.csv")) == 2
    forest = (out / "forest.svg").read_text(encoding="utf-8")
    assert "SYNTHETIC DATA" in forest
    assert "With this trial, SYNTHETIC DATA (k = 4)" in forest
    assert "SYNTHETIC DATA" in (out / "funnel.svg").read_text(encoding="utf-8")


def test_with_trial_on_bothersomeness_uses_the_trial_outcome(
    trial: SyntheticTrial, tmp_path: Path
) -> None:
    _meta(
        "--shipped",
        "--outcome",
        "bothersomeness",
        *_trial_args(trial, "statistician"),
        "--out",
        str(tmp_path),
    )
    results = _results(tmp_path)
    assert results["trial"]["outcome_column"] == "bothersomeness_score"
    assert results["model"]["k"] == 4


def test_with_trial_refuses_a_blinded_user_and_other_measures(trial: SyntheticTrial) -> None:
    output = _meta("--shipped", "--outcome", "RDQ", *_trial_args(trial, "blind"), code=2)
    assert "cannot add a blinded analysis to the evidence" in output
    assert "--as: is blinded" in output  # the rule, on the option that named the user
    output = _meta(
        "--shipped",
        "--outcome",
        "RDQ",
        "--measure",
        "SMD",
        *_trial_args(trial, "statistician"),
        code=2,
    )
    assert "--measure: must be MD when the trial is added" in output


# ---------------------------------------------------------------------- figures


def _forest_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    studies = pd.DataFrame(
        {
            "study": ["Study A", "Study B", "Study C", "This trial"],
            "estimate": [-2.9, -2.5, -1.2, -2.0],
            "lower": [-4.0, -3.5, -3.0, -4.9],
            "upper": [-1.8, -1.4, 0.6, 0.9],
            "weight": [35.0, 36.0, 19.0, 10.0],
            "this_trial": [False, False, False, True],
            "subgroup": ["relaxation", "structural", "relaxation", "structural"],
        }
    )
    summaries = pd.DataFrame(
        {
            "label": ["Subtotal (k = 2)", "Subtotal (k = 2)", "Random effects (k = 4)"],
            "subgroup": ["relaxation", "structural", None],
            "estimate": [-2.3, -2.45, -2.4],
            "lower": [-3.6, -3.4, -3.1],
            "upper": [-1.0, -1.5, -1.7],
            "prediction_lower": [math.nan, math.nan, -3.8],
            "prediction_upper": [math.nan, math.nan, -1.0],
        }
    )
    return studies, summaries


def test_forest_figure_has_one_square_per_study_and_deterministic_svg() -> None:
    studies, summaries = _forest_inputs()
    drawn = []
    for _ in range(2):
        figure = forest_figure(
            studies,
            summaries,
            ratio=False,
            effect_label="MD",
            axis_label="Mean difference",
            favours=("favours massage", "favours comparator"),
            title="Test forest",
            notes=["Heterogeneity: none to speak of"],
        )
        squares = [
            line
            for axes in figure.figure.axes
            for line in axes.lines
            if isinstance(line, Line2D) and line.get_marker() == "s"
        ]
        assert len(squares) == len(studies)
        drawn.append(figure.svg())
        figure.close()
    assert drawn[0] == drawn[1]
    for label in [*studies["study"], "favours massage", "Prediction interval", "relaxation"]:
        assert drawn[0].count(f">{label}<") == 1, label


def test_funnel_figure_on_a_log_axis_is_deterministic() -> None:
    rng = np.random.default_rng(5)
    studies = pd.DataFrame(
        {
            "estimate": rng.normal(-0.3, 0.2, 8),
            "se": rng.uniform(0.1, 0.5, 8),
            "this_trial": [False] * 7 + [True],
        }
    )
    drawn = []
    for _ in range(2):
        figure = funnel_figure(
            studies, pooled=-0.3, ratio=True, axis_label="Risk ratio", title="Funnel"
        )
        assert figure.figure.axes[0].get_xscale() == "log"
        assert figure.figure.axes[0].yaxis_inverted()
        drawn.append(figure.svg())
        figure.close()
    assert drawn[0] == drawn[1]
    assert "this trial" in drawn[0]


def test_ml_on_a_bimodal_likelihood_reports_the_global_maximum_and_says_so(
    tmp_path: Path,
) -> None:
    bimodal = Path(__file__).parents[1] / "reference" / "data" / "bimodal_md.csv"
    output = _meta(str(bimodal), "--measure", "MD", "--method", "ML", "--out", str(tmp_path))
    assert "note: The log-likelihood of tau^2 has 2 local maxima" in " ".join(output.split())
    results = _results(tmp_path)
    assert results["model"]["tau2"] == 0.0  # metafor: 0, with its local-maximum warning
    assert any("2 local maxima" in note for note in results["notes"])
