"""Table 1 by arm: numbers checked by hand (and against R's defaults), shape, errors."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lumbar.analysis.baseline import ALL, baseline_table, participant_rows
from lumbar.errors import AnalysisError

pytestmark = pytest.mark.unit


def _participants() -> pd.DataFrame:
    """Arm a: ages 30, 40, 50, 70; arm b: 20, 60 and one missing; sex missing once in a."""
    return pd.DataFrame(
        {
            "arm": ["a", "a", "a", "a", "b", "b", "b"],
            "age": [30, 40, 50, 70, 20, 60, None],
            "sex": ["f", "f", "m", None, "m", "m", "f"],
            "smoker": [True, False, False, False, True, False, False],
        }
    )


def _value(table_frame: pd.DataFrame, variable: str, statistic: str, arm: str,
           level: str | None = None) -> float:  # fmt: skip
    rows = table_frame[
        (table_frame["variable"] == variable)
        & (table_frame["statistic"] == statistic)
        & (table_frame["arm"] == arm)
        & (table_frame["level"].isna() if level is None else table_frame["level"] == level)
    ]
    assert len(rows) == 1
    return float(rows["value"].iloc[0])


def test_numeric_summaries_match_hand_computation() -> None:
    # By hand (R: mean, sd, quantile(x) with its default type 7):
    #   a: 30 40 50 70   mean 47.5, SD sqrt(875/3) = 17.078, Q1 37.5, median 45, Q3 55
    #   b: 20 60 (NA)    mean 40,   SD sqrt(800)   = 28.284, Q1 30,   median 40, Q3 50
    #   all: 20..70      mean 45,   SD sqrt(350)   = 18.708, Q1 32.5, median 45, Q3 57.5
    frame = baseline_table(_participants(), variables=["age"]).to_frame()
    expected = {
        "a": (4, 47.5, math.sqrt(875 / 3), 37.5, 45.0, 55.0, 0),
        "b": (2, 40.0, math.sqrt(800), 30.0, 40.0, 50.0, 1),
        ALL: (6, 45.0, math.sqrt(350), 32.5, 45.0, 57.5, 1),
    }
    for arm, numbers in expected.items():
        got = tuple(
            _value(frame, "age", statistic, arm)
            for statistic in ("n", "mean", "sd", "q1", "median", "q3", "missing")
        )
        assert got == pytest.approx(numbers, abs=1e-12)


def test_wide_table_prints_the_usual_text() -> None:
    table = baseline_table(
        _participants(), variables=["age", "sex", "smoker"], labels={"age": "Age (years)"}
    )
    wide = table.wide()
    assert list(wide.columns) == ["variable", "level", "a", "b", "all"]
    lines = [tuple(row) for row in wide.itertuples(index=False)]
    assert lines == [
        ("Participants", "n", "4", "3", "7"),
        ("Age (years)", "n", "4", "2", "6"),
        ("Age (years)", "mean (SD)", "47.5 (17.1)", "40.0 (28.3)", "45.0 (18.7)"),
        ("Age (years)", "median [Q1, Q3]", "45.0 [37.5, 55.0]", "40.0 [30.0, 50.0]",
         "45.0 [32.5, 57.5]"),
        ("Age (years)", "missing", "0", "1", "1"),
        ("sex", "f", "2 (66.7%)", "1 (33.3%)", "3 (50.0%)"),
        ("sex", "m", "1 (33.3%)", "2 (66.7%)", "3 (50.0%)"),
        ("sex", "missing", "1", "0", "1"),
        ("smoker", "no", "3 (75.0%)", "2 (66.7%)", "5 (71.4%)"),
        ("smoker", "yes", "1 (25.0%)", "1 (33.3%)", "2 (28.6%)"),
    ]  # fmt: skip
    assert table.counts == {"a": 4, "b": 3, "all": 7}
    assert "Age (years)" in str(table)
    assert "47.5 (17.1)" in str(table)


def test_categorical_percentages_sum_to_100_in_every_column() -> None:
    frame = baseline_table(_participants(), variables=["sex", "smoker"]).to_frame()
    percents = frame[frame["statistic"] == "percent"]
    sums = percents.groupby(["variable", "arm"])["value"].sum()
    assert len(sums) == 6
    assert sums.to_numpy() == pytest.approx([100.0] * 6)
    # Counts per level add up to the participants with a value, missing counted apart.
    counts = frame[(frame["statistic"] == "n") & frame["level"].notna()]
    assert counts.groupby(["variable", "arm"])["value"].sum().loc["sex"].to_dict() == {
        "a": 3.0,
        "all": 6.0,
        "b": 3.0,
    }
    assert _value(frame, "sex", "missing", "a") == 1


def test_missing_row_only_when_a_value_is_missing() -> None:
    complete = _participants().assign(age=[30, 40, 50, 70, 20, 60, 45])
    wide = baseline_table(complete, variables=["age", "sex"]).wide()
    assert [tuple(r) for r in wide[["variable", "level"]].itertuples(index=False)] == [
        ("Participants", "n"),
        ("age", "n"),
        ("age", "mean (SD)"),
        ("age", "median [Q1, Q3]"),
        ("sex", "f"),
        ("sex", "m"),
        ("sex", "missing"),
    ]
    # The tidy frame always counts missing values, zeros included.
    assert (
        _value(baseline_table(complete, variables=["age"]).to_frame(), "age", "missing", "a") == 0
    )


def test_arms_order_the_columns_and_levels_are_sorted() -> None:
    data = _participants().assign(sex=["m", "x", "f", "f", "x", "m", "f"])
    table = baseline_table(data, variables=["sex"], arms=["b", "a"])
    wide = table.wide()
    assert list(wide.columns) == ["variable", "level", "b", "a", "all"]
    assert wide["level"].tolist() == ["n", "f", "m", "x"]
    ordered = data.assign(sex=pd.Categorical(data["sex"], categories=["x", "m", "f"]))
    assert baseline_table(ordered, variables=["sex"]).wide()["level"].tolist() == [
        "n",
        "x",
        "m",
        "f",
    ]


def test_a_single_participant_has_no_sd() -> None:
    data = pd.DataFrame({"arm": ["a", "b", "b"], "age": [50.0, 40.0, 60.0]})
    wide = baseline_table(data, variables=["age"]).wide()
    assert wide.loc[wide["level"] == "mean (SD)", "a"].item() == "50.0 (NA)"
    assert wide.loc[wide["level"] == "median [Q1, Q3]", "a"].item() == "50.0 [50.0, 50.0]"


def test_to_dict_is_json_ready() -> None:
    import json

    table = baseline_table(_participants(), variables=["age", "sex"], arms=["a", "b"])
    data = table.to_dict()
    assert data["arms"] == ["a", "b"]
    assert data["variables"][1] == {"variable": "sex", "label": "sex", "kind": "categorical"}
    assert "mean (SD)" in data["method_text"]
    json.dumps(data, allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "where", "rule"),
    [
        ({"variables": ["age", "weight"]}, "column 'weight'", "is not in the data"),
        ({"variables": ["age"], "arm": "group"}, "column 'group'", "is not in the data"),
        ({"variables": ["age"], "arms": []}, "arms", "is empty"),
        ({"variables": []}, "variables", "must name at least one column"),
        ({"variables": ["age"], "arms": ["a", "c"]}, "arms", "names arms with no participants"),
        ({"variables": ["age"], "arms": ["a"]}, "arms", "leaves out arms"),
        ({"variables": ["age", "age"]}, "variables", "lists a column twice"),
    ],
)
def test_bad_requests_are_refused_with_the_rule(
    kwargs: dict[str, object], where: str, rule: str
) -> None:
    with pytest.raises(AnalysisError) as caught:
        baseline_table(_participants(), **kwargs)  # type: ignore[arg-type]
    assert any(p.where == where and p.rule.startswith(rule) for p in caught.value.problems)
    assert caught.value.summary == "the baseline table cannot be made"


def test_a_participant_without_an_arm_is_refused() -> None:
    data = _participants()
    data.loc[0, "arm"] = None
    with pytest.raises(AnalysisError, match="is empty for some participants"):
        baseline_table(data, variables=["age"])


# ---------------------------------------------------------------------- participant rows


def _tidy() -> pd.DataFrame:
    """The tidy dataset's shape (docs/dataset.md): two participants, two visits each."""
    rows = []
    for participant, arm, age, baseline in (
        ("SEA-0001", "group A", 40, 8.0),
        ("SEA-0002", "group B", 55, None),
    ):
        for visit, visit_day, score in (("baseline", 0, baseline), ("week_10", 70, 5.0)):
            rows.append(
                {
                    "participant": participant,
                    "site": "SEA",
                    "arm": arm,
                    "stratum": "baseline_rdq=rdq_under_12",
                    "stratum_baseline_rdq": "rdq_under_12",
                    "age": age,
                    "sex": "female",
                    "visit": visit,
                    "visit_day": visit_day,
                    "day": visit_day,
                    "status": "complete",
                    "out_of_window": False,
                    "rdq_total_baseline": baseline,
                    "bothersomeness_score_baseline": 3.0,
                    "rdq_total": score,
                    "global_improvement_rating": None if visit == "baseline" else 2.0,
                    "synthetic": False,
                }
            )
    return pd.DataFrame(rows)  # fmt: skip


def test_participant_rows_keep_participant_level_columns() -> None:
    rows = participant_rows(_tidy())
    assert list(rows.columns) == [
        "participant",
        "site",
        "arm",
        "stratum",
        "stratum_baseline_rdq",
        "age",
        "sex",
        "rdq_total_baseline",
        "bothersomeness_score_baseline",
        "synthetic",
    ]
    assert rows["participant"].tolist() == ["SEA-0001", "SEA-0002"]
    assert rows["rdq_total_baseline"].iloc[0] == 8.0
    assert pd.isna(rows["rdq_total_baseline"].iloc[1])
    table = baseline_table(rows, variables=["age", "sex", "rdq_total_baseline"])
    assert table.counts == {"group A": 1, "group B": 1, "all": 2}


def test_participant_rows_refuse_what_is_not_the_tidy_dataset() -> None:
    with pytest.raises(AnalysisError) as caught:
        participant_rows(_tidy().drop(columns=["visit"]))
    assert caught.value.problems[0].where == "column 'visit'"
    changing = _tidy()
    changing.loc[1, "arm"] = "group C"
    with pytest.raises(AnalysisError) as caught:
        participant_rows(changing)
    problem = caught.value.problems[0]
    assert (problem.where, problem.received) == ("column 'arm'", "SEA-0001")
