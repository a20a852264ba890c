"""Scoring every shipped instrument, by hand-computed examples and by invalid answers."""

from __future__ import annotations

from typing import Any

import pytest

from lumbar.errors import AnswerError
from lumbar.instruments import INSTRUMENTS, check_answers, get_instrument, score_answers

pytestmark = pytest.mark.unit


def rdq_answers(yes: int, missing: int = 0) -> dict[str, Any]:
    """The first ``yes`` items answered yes, the last ``missing`` items unanswered."""
    answers: dict[str, Any] = {}
    for number in range(1, 25):
        if number > 24 - missing:
            continue
        answers[f"rdq_{number:02d}"] = 1 if number <= yes else 0
    return answers


# ---------------------------------------------------------------- hand-computed scores


@pytest.mark.parametrize(("yes", "total"), [(0, 0.0), (6, 6.0), (24, 24.0)])
def test_rdq_total_counts_the_yes_answers(yes: int, total: float) -> None:
    value = score_answers(get_instrument("rdq"), rdq_answers(yes))["total"]
    assert value.value == total
    assert not value.prorated
    assert value.answered == 24


def test_rdq_prorates_one_missing_item() -> None:
    # 11 yes among 23 answered: 11 x 24 / 23.
    value = score_answers(get_instrument("rdq"), rdq_answers(11, missing=1))["total"]
    assert value.value == pytest.approx(11 * 24 / 23)
    assert value.prorated
    assert value.missing_items == ("rdq_24",)


def test_rdq_prorates_two_missing_items() -> None:
    value = score_answers(get_instrument("rdq"), rdq_answers(11, missing=2))["total"]
    assert value.value == pytest.approx(12.0)  # 11 x 24 / 22
    assert value.prorated
    assert value.missing_items == ("rdq_23", "rdq_24")


def test_rdq_with_three_missing_items_is_missing_with_the_reason() -> None:
    value = score_answers(get_instrument("rdq"), rdq_answers(11, missing=3))["total"]
    assert value.value is None
    assert value.is_missing
    assert value.reason == "3 of 24 items unanswered; the rule allows at most 2"


def test_unanswered_may_be_none_or_absent() -> None:
    rdq = get_instrument("rdq")
    absent = score_answers(rdq, rdq_answers(5, missing=1))
    as_none = score_answers(rdq, rdq_answers(5, missing=1) | {"rdq_24": None})
    assert absent == as_none


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_are_refused_alike_not_taken_as_unanswered(value: float) -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(get_instrument("rdq"), rdq_answers(5, missing=1) | {"rdq_24": value})
    (problem,) = caught.value.problems
    assert problem.where == "rdq: item rdq_24"
    assert problem.rule.startswith("must be a finite number")


@pytest.mark.parametrize("digits", [400, 5_000])
def test_an_integer_beyond_any_float_is_refused_by_the_items_range(digits: int) -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(get_instrument("bothersomeness"), {"bothersomeness": 10 ** (digits - 1)})
    (problem,) = caught.value.problems
    assert problem.rule.startswith("must be a whole number from 0 to 10")
    assert f"a number of {digits:,} digits" in str(caught.value)


HAND_COMPUTED = [
    ("bothersomeness", {"bothersomeness": 7}, {"score": 7.0}),
    ("bothersomeness", {"bothersomeness": 0}, {"score": 0.0}),
    ("pain_intensity", {"pain_intensity": 10}, {"score": 10.0}),
    ("peg", {"peg_pain": 6, "peg_enjoyment": 4, "peg_activity": 5}, {"mean": 5.0}),
    ("peg", {"peg_pain": 7, "peg_enjoyment": 8, "peg_activity": 10}, {"mean": 25 / 3}),
    (
        "disability_days",
        {"restricted_days": 10, "bed_days": 3},
        {"restricted_days": 10.0, "bed_days": 3.0},
    ),
    (
        "disability_days",
        {"restricted_days": 10},
        {"restricted_days": 10.0, "bed_days": None},
    ),
    ("medication_use", {"any_medication": 0}, {"any": 0.0, "classes": 0.0}),
    (
        "medication_use",
        {
            "any_medication": 1,
            "non_opioid_analgesic": 1,
            "opioid": 1,
            "muscle_relaxant": 0,
            "other_medication": 0,
        },
        {"any": 1.0, "classes": 2.0},
    ),
    (
        "medication_use",
        {"any_medication": 1, "non_opioid_analgesic": 1, "opioid": 0, "muscle_relaxant": 0},
        {"any": 1.0, "classes": None},
    ),
    ("global_improvement", {"global_change": 2}, {"rating": 2.0}),
    ("satisfaction", {"satisfaction": 5}, {"rating": 5.0}),
    (
        "lifestyle",
        {"sleep_hours": 7.5, "exercise_days": 3},
        {"sleep_hours": 7.5, "exercise_days": 3.0},
    ),
]


@pytest.mark.parametrize(("name", "answers", "expected"), HAND_COMPUTED)
def test_hand_computed_scores(name: str, answers: dict[str, Any], expected: dict[str, Any]) -> None:
    scores = score_answers(get_instrument(name), answers)
    values = scores.as_dict()
    assert set(values) == set(expected)
    for score_id, value in expected.items():
        if value is None:
            assert values[score_id] is None
        else:
            assert values[score_id] == pytest.approx(value)


def test_peg_needs_all_three_items() -> None:
    value = score_answers(get_instrument("peg"), {"peg_pain": 6, "peg_enjoyment": 4})["mean"]
    assert value.value is None
    assert value.reason == "1 of 3 items unanswered; the rule allows none"


def test_skipped_medication_items_count_as_answered_zeros() -> None:
    value = score_answers(get_instrument("medication_use"), {"any_medication": 0})["classes"]
    assert (value.value, value.answered, value.missing_items) == (0.0, 4, ())


def test_every_shipped_instrument_has_a_hand_computed_example() -> None:
    names = {name for name, _, _ in HAND_COMPUTED} | {"rdq"}
    assert names == set(INSTRUMENTS.names())


# ---------------------------------------------------------------- invalid answers


@pytest.mark.parametrize(
    ("name", "answers", "item", "rule"),
    [
        ("rdq", {"rdq_01": 2}, "rdq_01", "must be one of the codes [1, 0]"),
        ("rdq", {"rdq_01": True}, "rdq_01", "must be a number, not true/false"),
        ("rdq", {"rdq_01": "yes"}, "rdq_01", "must be a number"),
        ("rdq", {"rdq_01": 0.5}, "rdq_01", "must be a whole number"),
        ("rdq", {"rdq_25": 1}, "'rdq_25'", "is not an item of rdq"),
        (
            "bothersomeness",
            {"bothersomeness": 11},
            "bothersomeness",
            "must be a whole number from 0 to 10",
        ),
        (
            "bothersomeness",
            {"bothersomeness": -1},
            "bothersomeness",
            "must be a whole number from 0 to 10",
        ),
        ("bothersomeness", {"bothersomeness": 6.5}, "bothersomeness", "must be a whole number"),
        (
            "bothersomeness",
            {"bothersomeness": float("inf")},
            "bothersomeness",
            "must be a finite number",
        ),
        ("bothersomeness", {"bothersomeness": [3]}, "bothersomeness", "must be a number"),
        ("peg", {"peg_pain": 12}, "peg_pain", "from 0 to 10"),
        ("disability_days", {"restricted_days": 29}, "restricted_days", "from 0 to 28 days"),
        (
            "disability_days",
            {"restricted_days": 2, "bed_days": 5},
            "bed_days",
            "may not exceed item restricted_days",
        ),
        (
            "medication_use",
            {"any_medication": 0, "opioid": 1},
            "opioid",
            "is asked only when item any_medication is 1",
        ),
        ("global_improvement", {"global_change": 0}, "global_change", "must be one of the codes"),
        ("global_improvement", {"global_change": 8}, "global_change", "must be one of the codes"),
        ("satisfaction", {"satisfaction": 6}, "satisfaction", "must be one of the codes"),
        ("lifestyle", {"sleep_hours": 7.25}, "sleep_hours", "must be a multiple of 0.5"),
        ("lifestyle", {"sleep_hours": 25}, "sleep_hours", "from 0 to 24 hours"),
        ("lifestyle", {"exercise_days": 8}, "exercise_days", "from 0 to 7 days"),
    ],
)
def test_invalid_answers_are_refused_naming_instrument_item_value_and_rule(
    name: str, answers: dict[str, Any], item: str, rule: str
) -> None:
    with pytest.raises(AnswerError) as caught:
        score_answers(get_instrument(name), answers)
    problem = caught.value.problems[0]
    assert problem.where == f"{name}: item {item}"
    assert rule in problem.rule
    assert problem.has_value
    assert problem.hint
    message = str(caught.value)
    assert f"answers to {name} were not accepted" in message
    assert f"received {answers.get(item.strip(chr(39)), answers.get(item))!r}" in message


def test_every_invalid_answer_is_reported_at_once() -> None:
    answers = rdq_answers(3) | {"rdq_01": 7, "rdq_02": "no", "extra": 1}
    with pytest.raises(AnswerError) as caught:
        check_answers(get_instrument("rdq"), answers)
    assert [problem.where for problem in caught.value.problems] == [
        "rdq: item 'extra'",
        "rdq: item rdq_01",
        "rdq: item rdq_02",
    ]


def test_out_of_range_answers_are_never_clamped() -> None:
    with pytest.raises(AnswerError, match="lumbar never moves an answer into range"):
        score_answers(get_instrument("bothersomeness"), {"bothersomeness": 11})


def test_check_answers_normalises_whole_numbers() -> None:
    checked = check_answers(get_instrument("lifestyle"), {"sleep_hours": 7, "exercise_days": 3.0})
    assert checked == {"sleep_hours": 7.0, "exercise_days": 3}
    assert isinstance(checked["exercise_days"], int)


def test_unknown_instrument_suggests_close_names() -> None:
    from lumbar.errors import InstrumentError

    with pytest.raises(InstrumentError, match="did you mean rdq"):
        get_instrument("rdqq")
