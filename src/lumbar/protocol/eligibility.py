"""Screening: check answers to the protocol's questions and evaluate its eligibility rules.

Pure functions. Rules are evaluated in three-valued logic: a rule whose
question has not been answered yet is *undecided* rather than failed, so a
coordinator can screen in stages and see which questions remain. A person is

- **ineligible** as soon as one inclusion rule fails or one exclusion rule holds
  (every such reason is reported: each feeds the CONSORT diagram);
- **eligible** when every inclusion rule holds and no exclusion rule holds;
- **incomplete** otherwise, with the questions still to ask.

Example::

    >>> from lumbar.protocol import shipped_protocol, evaluate_eligibility
    >>> protocol = shipped_protocol("massage-clbp")
    >>> evaluate_eligibility(protocol, {"age": 19}).status
    'ineligible'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Literal

from lumbar._declared import format_number
from lumbar.errors import AnswerError, Problem
from lumbar.protocol.model import Condition, Eligibility, Protocol, Question, Rule, ScalarValue

__all__ = [
    "EligibilityResult",
    "RuleOutcome",
    "check_screening_answers",
    "describe_condition",
    "evaluate_condition",
    "evaluate_eligibility",
]

Status = Literal["eligible", "ineligible", "incomplete"]
ScreeningAnswer = ScalarValue | None


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule came out for one person."""

    rule: Rule
    kind: Literal["inclusion", "exclusion"]
    holds: bool | None
    """Whether the rule's condition is true (None: not decided yet)."""

    @property
    def passed(self) -> bool | None:
        """Whether the person passes this rule (None: not decided yet)."""
        if self.holds is None:
            return None
        return self.holds if self.kind == "inclusion" else not self.holds

    @property
    def reason(self) -> str:
        """The reason for ineligibility this rule gives, in words."""
        if self.kind == "inclusion":
            return f"does not meet: {self.rule.label}"
        return f"excluded: {self.rule.label}"


@dataclass(frozen=True)
class EligibilityResult:
    """The verdict of screening, with every rule's outcome."""

    status: Status
    outcomes: tuple[RuleOutcome, ...]
    unanswered: tuple[str, ...]
    """Questions whose answers would decide the undecided rules."""

    @property
    def eligible(self) -> bool:
        return self.status == "eligible"

    @property
    def reasons(self) -> tuple[RuleOutcome, ...]:
        """Every rule that makes the person ineligible."""
        return tuple(outcome for outcome in self.outcomes if outcome.passed is False)

    @property
    def undecided(self) -> tuple[RuleOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if outcome.passed is None)


def check_screening_answers(
    eligibility: Eligibility, answers: Mapping[str, object]
) -> dict[str, ScreeningAnswer]:
    """Validate screening answers against their questions; return them normalised.

    yes/no questions take true/false; choice questions take a choice id;
    numeric questions take a number within the question's bounds. None means
    not answered. Raises :class:`AnswerError` listing every broken rule.
    """
    questions = {question.id: question for question in eligibility.questions}
    problems = [
        Problem(
            f"screening question {key!r}",
            "is not a question of this protocol",
            hint="the questions are: " + ", ".join(questions),
        )
        for key in answers
        if key not in questions
    ]
    normalised: dict[str, ScreeningAnswer] = {}
    for question in eligibility.questions:
        value = answers.get(question.id)
        rule = question.problem_with(value)
        if rule is not None:
            problems.append(
                Problem(f"screening question {question.id}", rule, value, question.expected())
            )
            normalised[question.id] = None
        else:
            normalised[question.id] = _normalise(question, value)
    if problems:
        raise AnswerError("screening answers were not accepted", problems)
    return normalised


def _normalise(question: Question, value: object) -> ScreeningAnswer:
    """An accepted answer in its canonical type (a whole number as int)."""
    if value is None or isinstance(value, bool | str):
        return value
    assert isinstance(value, Real)
    number = float(value)
    return int(number) if question.type == "integer" else number


def evaluate_eligibility(protocol: Protocol, answers: Mapping[str, object]) -> EligibilityResult:
    """Evaluate every inclusion and exclusion rule of ``protocol`` on ``answers``."""
    eligibility = protocol.eligibility
    checked = check_screening_answers(eligibility, answers)
    outcomes = tuple(
        RuleOutcome(rule, "inclusion", evaluate_condition(rule.when, checked))
        for rule in eligibility.inclusion
    ) + tuple(
        RuleOutcome(rule, "exclusion", evaluate_condition(rule.when, checked))
        for rule in eligibility.exclusion
    )
    if any(outcome.passed is False for outcome in outcomes):
        status: Status = "ineligible"
    elif any(outcome.passed is None for outcome in outcomes):
        status = "incomplete"
    else:
        status = "eligible"
    unanswered: dict[str, None] = {}
    if status == "incomplete":
        for outcome in outcomes:
            if outcome.passed is None:
                for question_id in sorted(outcome.rule.when.questions()):
                    if checked.get(question_id) is None:
                        unanswered[question_id] = None
    return EligibilityResult(status, outcomes, tuple(unanswered))


def describe_condition(condition: Condition, questions: Mapping[str, Question]) -> str:
    """A condition in words, for summaries and the CONSORT diagram's legend."""
    if condition.all is not None:
        return " and ".join(_grouped(member, questions) for member in condition.all)
    if condition.any is not None:
        return " or ".join(_grouped(member, questions) for member in condition.any)
    if condition.not_ is not None:
        return f"not {_grouped(condition.not_, questions)}"
    assert condition.question is not None
    question = questions.get(condition.question)
    name = condition.question
    unit = f" {question.unit}" if question is not None and question.unit else ""
    if condition.between is not None:
        low, high = condition.between
        return f"{name} from {format_number(low)} to {format_number(high)}{unit}"
    if condition.at_least is not None:
        return f"{name} at least {format_number(condition.at_least)}{unit}"
    if condition.at_most is not None:
        return f"{name} at most {format_number(condition.at_most)}{unit}"
    if condition.in_ is not None:
        return f"{name} is one of {', '.join(_value(value) for value in condition.in_)}"
    return f"{name} is {_value(condition.is_)}"


def _grouped(condition: Condition, questions: Mapping[str, Question]) -> str:
    text = describe_condition(condition, questions)
    if condition.all is not None or condition.any is not None:
        return f"({text})"
    return text


def _value(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def evaluate_condition(condition: Condition, answers: Mapping[str, ScreeningAnswer]) -> bool | None:
    """Whether ``condition`` holds for checked ``answers``; None when it cannot tell yet.

    Kleene's three-valued logic: an unanswered question is unknown, ``all`` is
    false if any member is false, ``any`` is true if any member is true, and
    ``not`` of unknown is unknown. Pass answers checked by
    :func:`check_screening_answers`.
    """
    if condition.all is not None:
        results = [evaluate_condition(member, answers) for member in condition.all]
        if False in results:
            return False
        return None if None in results else True
    if condition.any is not None:
        results = [evaluate_condition(member, answers) for member in condition.any]
        if True in results:
            return True
        return None if None in results else False
    if condition.not_ is not None:
        result = evaluate_condition(condition.not_, answers)
        return None if result is None else not result
    assert condition.question is not None
    value = answers.get(condition.question)
    if value is None:
        return None
    if condition.is_ is not None:
        return _same(value, condition.is_)
    if condition.in_ is not None:
        return any(_same(value, option) for option in condition.in_)
    assert isinstance(value, int | float)
    if condition.between is not None:
        return condition.between[0] <= value <= condition.between[1]
    if condition.at_least is not None:
        return value >= condition.at_least
    assert condition.at_most is not None
    return value <= condition.at_most


def _same(answer: ScalarValue, expected: ScalarValue) -> bool:
    # True == 1 in Python; a yes/no answer must never match a number or vice versa.
    if isinstance(answer, bool) or isinstance(expected, bool):
        return isinstance(answer, bool) and isinstance(expected, bool) and answer is expected
    return answer == expected
