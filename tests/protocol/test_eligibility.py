"""Screening against the reference trial's eligibility rules, and strata."""

from __future__ import annotations

from typing import Any

import pytest

from lumbar.errors import AnswerError
from lumbar.instruments import get_instrument, score_answers
from lumbar.protocol import (
    Condition,
    Protocol,
    all_strata,
    assign_stratum,
    describe_condition,
    evaluate_condition,
    evaluate_eligibility,
    stratum_key,
)
from tests.operations.world import eligible_answers

pytestmark = pytest.mark.unit


def test_a_person_meeting_every_rule_is_eligible(reference: Protocol) -> None:
    result = evaluate_eligibility(reference, eligible_answers(reference))
    assert result.status == "eligible"
    assert result.eligible
    assert result.reasons == ()
    assert result.unanswered == ()


@pytest.mark.parametrize(
    "question",
    ["cancer", "vertebral_fracture", "spinal_infection", "paralysis", "sciatica", "pregnant"],
)
def test_each_exclusion_excludes_with_its_reason(reference: Protocol, question: str) -> None:
    answers = eligible_answers(reference) | {question: True}
    result = evaluate_eligibility(reference, answers)
    assert result.status == "ineligible"
    assert [outcome.rule.when.question for outcome in result.reasons] == [question]
    assert result.reasons[0].reason.startswith("excluded: ")


@pytest.mark.parametrize(
    ("age", "status"), [(19, "ineligible"), (20, "eligible"), (64, "eligible"), (65, "ineligible")]
)
def test_age_limits_are_inclusive(reference: Protocol, age: int, status: str) -> None:
    answers = eligible_answers(reference) | {"age": age}
    assert evaluate_eligibility(reference, answers).status == status


@pytest.mark.parametrize(
    ("duration", "frequency", "chronic"),
    [
        ("months_3_to_6", "half_the_days", True),
        ("over_5_years", "every_day", True),
        ("months_1_to_3", "every_day", False),
        ("years_1_to_5", "under_half_the_days", False),
    ],
)
def test_chronicity_follows_the_nih_two_questions(
    reference: Protocol, duration: str, frequency: str, chronic: bool
) -> None:
    answers = eligible_answers(reference) | {"pain_duration": duration, "pain_frequency": frequency}
    result = evaluate_eligibility(reference, answers)
    assert result.eligible is chronic
    if not chronic:
        assert [outcome.rule.id for outcome in result.reasons] == ["chronic_low_back_pain"]
        assert result.reasons[0].reason.startswith("does not meet: ")


def test_every_reason_is_reported_not_only_the_first(reference: Protocol) -> None:
    answers = eligible_answers(reference) | {"age": 70, "cancer": True, "sciatica": True}
    reasons = {outcome.rule.id for outcome in evaluate_eligibility(reference, answers).reasons}
    assert reasons == {"adult_under_65", "cancer", "sciatica"}


def test_unanswered_questions_leave_screening_incomplete(reference: Protocol) -> None:
    answers = eligible_answers(reference)
    del answers["cancer"]
    del answers["pain_frequency"]
    result = evaluate_eligibility(reference, answers)
    assert result.status == "incomplete"
    assert set(result.unanswered) == {"cancer", "pain_frequency"}
    assert {outcome.rule.id for outcome in result.undecided} == {"cancer", "chronic_low_back_pain"}


def test_one_failed_rule_decides_even_with_questions_unanswered(reference: Protocol) -> None:
    result = evaluate_eligibility(reference, {"age": 80})
    assert result.status == "ineligible"
    assert result.unanswered == ()


def test_three_valued_logic_of_all_any_and_not(reference: Protocol) -> None:
    # all(false, unknown) is false; any(true, unknown) is true; not(unknown) is unknown.
    chronic = {"pain_duration": "months_1_to_3"}
    result = evaluate_eligibility(reference, chronic)
    outcome = next(o for o in result.outcomes if o.rule.id == "chronic_low_back_pain")
    assert outcome.holds is False
    either = Condition.model_validate(
        {"any": [{"question": "age", "at_least": 20}, {"question": "cancer", "is": True}]}
    )
    assert evaluate_condition(either, {"age": 30, "cancer": None}) is True
    assert evaluate_condition(either, {"age": 10, "cancer": None}) is None
    negated = Condition.model_validate({"not": {"question": "cancer", "is": True}})
    assert evaluate_condition(negated, {"cancer": None}) is None
    assert evaluate_condition(negated, {"cancer": False}) is True


def test_yes_answer_never_matches_the_number_one() -> None:
    # In Python True == 1; in a rule, yes and the number 1 are different answers.
    is_yes = Condition.model_validate({"question": "q", "is": True})
    assert evaluate_condition(is_yes, {"q": True}) is True
    assert evaluate_condition(is_yes, {"q": 1}) is False
    is_one = Condition.model_validate({"question": "q", "in": [1, 2]})
    assert evaluate_condition(is_one, {"q": True}) is False
    assert evaluate_condition(is_one, {"q": 1.0}) is True


@pytest.mark.parametrize(
    ("answers", "where", "rule"),
    [
        ({"age": "forty"}, "screening question age", "must be a number"),
        ({"age": 45.5}, "screening question age", "must be a whole number"),
        ({"age": 130}, "screening question age", "must be at most 120"),
        ({"age": True}, "screening question age", "must be a number"),
        ({"age": float("inf")}, "screening question age", "finite"),
        ({"cancer": "no"}, "screening question cancer", "must be true (yes) or false (no)"),
        ({"cancer": 0}, "screening question cancer", "must be true (yes) or false (no)"),
        ({"sex": "f"}, "screening question sex", "must be one of the choices of question sex"),
        ({"shoe_size": 9}, "screening question 'shoe_size'", "is not a question of this protocol"),
    ],
)
def test_invalid_screening_answers_are_refused(
    reference: Protocol, answers: dict[str, Any], where: str, rule: str
) -> None:
    with pytest.raises(AnswerError) as caught:
        evaluate_eligibility(reference, answers)
    problem = caught.value.problems[0]
    assert problem.where == where
    assert rule in problem.rule


def test_conditions_read_as_words(reference: Protocol) -> None:
    questions = {question.id: question for question in reference.eligibility.questions}
    chronic = next(r for r in reference.eligibility.inclusion if r.id == "chronic_low_back_pain")
    assert describe_condition(chronic.when, questions) == (
        "pain_duration is one of months_3_to_6, months_6_to_12, years_1_to_5, over_5_years "
        "and pain_frequency is one of every_day, half_the_days"
    )
    age = next(r for r in reference.eligibility.inclusion if r.id == "adult_under_65")
    assert describe_condition(age.when, questions) == "age from 20 to 64 years"
    nested = Condition.model_validate(
        {"not": {"any": [{"question": "age", "at_most": 19}, {"question": "cancer", "is": True}]}}
    )
    assert describe_condition(nested, questions) == "not (age at most 19 years or cancer is yes)"


# ---------------------------------------------------------------- strata


def _rdq_scores(total: int) -> dict[str, Any]:
    rdq = get_instrument("rdq")
    answers = {item.id: 1 if index < total else 0 for index, item in enumerate(rdq.items)}
    return {"rdq": score_answers(rdq, answers)}


@pytest.mark.parametrize(
    ("total", "level"),
    [(0, "rdq_under_12"), (11, "rdq_under_12"), (12, "rdq_12_or_more"), (24, "rdq_12_or_more")],
)
def test_stratum_follows_the_baseline_rdq_cutpoint(
    reference: Protocol, total: int, level: str
) -> None:
    levels = assign_stratum(reference, eligible_answers(reference), _rdq_scores(total))
    assert levels == {"baseline_rdq": level}
    assert stratum_key(levels) == f"baseline_rdq={level}"


def test_stratum_needs_the_baseline_score(reference: Protocol) -> None:
    with pytest.raises(AnswerError, match="needs the baseline rdq score"):
        assign_stratum(reference, eligible_answers(reference), {})


def test_strata_from_a_question_and_a_score(reference_data: dict[str, Any]) -> None:
    reference_data["randomization"]["block_sizes"] = [6]
    reference_data["randomization"]["strata"].append(
        {
            "id": "sex",
            "label": "Sex",
            "question": "sex",
            "levels": [
                {"id": "female", "label": "Female", "values": ["female"]},
                {"id": "male", "label": "Male", "values": ["male"]},
            ],
        }
    )
    protocol = Protocol.model_validate(reference_data)
    assert protocol.randomization.stratum_count == 4
    assert [stratum_key(s) for s in all_strata(protocol.randomization)] == [
        "baseline_rdq=rdq_under_12;sex=female",
        "baseline_rdq=rdq_under_12;sex=male",
        "baseline_rdq=rdq_12_or_more;sex=female",
        "baseline_rdq=rdq_12_or_more;sex=male",
    ]
    answers = eligible_answers(protocol) | {"sex": "male"}
    assert assign_stratum(protocol, answers, _rdq_scores(15)) == {
        "baseline_rdq": "rdq_12_or_more",
        "sex": "male",
    }


def test_a_trial_without_strata_has_one_stratum(reference_data: dict[str, Any]) -> None:
    reference_data["randomization"]["strata"] = []
    protocol = Protocol.model_validate(reference_data)
    assert all_strata(protocol.randomization) == ({},)
    assert stratum_key({}) == "all"
