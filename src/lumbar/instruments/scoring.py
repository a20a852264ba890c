"""Checking answers and scoring instruments: pure functions, no I/O.

Answers are a mapping of item id to value. ``None`` means *not answered*; a key
that is absent means the same. A float NaN is refused like infinity (not taken
as a blank): a value that is not a number must never pass for a missing answer.
Everything else must fit the item's response exactly: a code of a choice item,
a whole number in range, or a decimal in range on its step. Nothing is
clamped, rounded or guessed: an answer that breaks a rule raises
:class:`~lumbar.errors.AnswerError` naming the instrument, item, value and rule;
a score with more items missing than its rule allows is missing, with the
reason recorded.

Example::

    >>> from lumbar.instruments import get_instrument, score_answers
    >>> answers = {f"rdq_{n:02d}": 1 if n <= 6 else 0 for n in range(1, 25)}
    >>> score_answers(get_instrument("rdq"), answers)["total"].value
    6.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real

from lumbar.errors import AnswerError, Problem
from lumbar.instruments.model import Instrument, Item, Score

__all__ = ["Answer", "ScoreValue", "Scores", "check_answers", "score_answers"]

Answer = int | float | None
"""One item's answer: a number, or None when not answered."""

_STEP_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ScoreValue:
    """One score of one completed questionnaire, with how it was obtained."""

    score: str
    value: float | None
    answered: int
    expected: int
    missing_items: tuple[str, ...]
    prorated: bool
    reason: str | None = None

    @property
    def is_missing(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Scores:
    """Every score of one completed questionnaire."""

    instrument: str
    values: tuple[ScoreValue, ...]

    def __getitem__(self, score_id: str) -> ScoreValue:
        for value in self.values:
            if value.score == score_id:
                return value
        raise KeyError(score_id)

    @property
    def primary(self) -> ScoreValue:
        return self.values[0]

    def as_dict(self) -> dict[str, float | None]:
        return {value.score: value.value for value in self.values}


def check_answers(instrument: Instrument, answers: Mapping[str, object]) -> dict[str, Answer]:
    """Validate every answer and return them normalised (ints for whole-number items).

    Every item of the instrument appears in the result; unanswered items are None.
    Raises :class:`AnswerError` listing every broken rule at once.
    """
    problems: list[Problem] = []
    known = {item.id for item in instrument.items}
    for key, value in answers.items():
        if key not in known:
            problems.append(
                Problem(
                    where=f"{instrument.name}: item {key!r}",
                    rule=f"is not an item of {instrument.name}",
                    received=value,
                    hint="the items are: " + ", ".join(item.id for item in instrument.items),
                )
            )
    normalised: dict[str, Answer] = {}
    for item in instrument.items:
        value, problem = _check_one(instrument, item, answers.get(item.id))
        if problem is not None:
            problems.append(problem)
        normalised[item.id] = value
    problems.extend(_check_between_items(instrument, normalised))
    if problems:
        raise AnswerError(f"answers to {instrument.name} were not accepted", problems)
    return normalised


def score_answers(instrument: Instrument, answers: Mapping[str, object]) -> Scores:
    """Check the answers, then compute every score of the instrument."""
    normalised = check_answers(instrument, answers)
    values = _apply_gates(instrument, normalised)
    return Scores(
        instrument=instrument.name,
        values=tuple(_score_one(score, values) for score in instrument.scores),
    )


def _check_one(instrument: Instrument, item: Item, value: object) -> tuple[Answer, Problem | None]:
    where = f"{instrument.name}: item {item.id}"
    response = item.response

    def refuse(rule: str, hint: str) -> tuple[Answer, Problem]:
        return None, Problem(where, rule, value, hint)

    if value is None:
        return None, None
    if isinstance(value, bool):
        return refuse(
            "must be a number, not true/false",
            "store yes as 1 and no as 0" if response.kind == "choice" else "give a number",
        )
    if not isinstance(value, Real):
        return refuse(f"must be a number ({response.describe()})", "convert the answer to a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float, so beyond every item's range
        return refuse(f"must be {response.describe()}", "check the answer")
    if not math.isfinite(number):
        # .nan is not "unanswered": leave the item out (or give no value) for that.
        return refuse(
            "must be a finite number (not .nan or .inf)",
            f"give {response.describe()}, or leave the item unanswered",
        )
    if response.kind in ("choice", "integer") and not number.is_integer():
        return refuse("must be a whole number", f"give {response.describe()}")
    if response.kind == "choice":
        codes = [option.code for option in response.options]
        if int(number) not in codes:
            return refuse(
                f"must be one of the codes {codes} ({response.describe()})",
                "use the code of one of the options",
            )
        return int(number), None
    if not response.lowest <= number <= response.highest:
        return refuse(
            f"must be {response.describe()}",
            "check the answer; lumbar never moves an answer into range",
        )
    if response.kind == "integer":
        return int(number), None
    assert response.step is not None
    steps = (number - response.lowest) / response.step
    if abs(steps - round(steps)) > _STEP_TOLERANCE:
        return refuse(
            f"must be a multiple of {response.step:g} ({response.describe()})",
            "round the answer to the item's step before entering it",
        )
    return number, None


def _check_between_items(instrument: Instrument, answers: Mapping[str, Answer]) -> list[Problem]:
    """Rules that involve two items: branching and one item bounded by another."""
    problems = []
    for item in instrument.items:
        value = answers[item.id]
        if value is None:
            continue
        gate = item.only_if
        if gate is not None:
            gate_value = answers[gate.item]
            if gate_value is not None and gate_value != gate.equals:
                problems.append(
                    Problem(
                        where=f"{instrument.name}: item {item.id}",
                        rule=(
                            f"is asked only when item {gate.item} is {gate.equals}, "
                            f"and {gate.item} is {gate_value}"
                        ),
                        received=value,
                        hint=f"leave {item.id} unanswered or correct {gate.item}",
                    )
                )
        if item.at_most_item is not None:
            bound = answers[item.at_most_item]
            if bound is not None and value > bound:
                problems.append(
                    Problem(
                        where=f"{instrument.name}: item {item.id}",
                        rule=f"may not exceed item {item.at_most_item} ({bound:g})",
                        received=value,
                        hint=f"check both answers: {item.id} counts a subset of "
                        f"{item.at_most_item}",
                    )
                )
    return problems


def _apply_gates(instrument: Instrument, answers: Mapping[str, Answer]) -> dict[str, Answer]:
    """Give items skipped by branching the value their gate declares."""
    values = dict(answers)
    for item in instrument.items:
        gate = item.only_if
        if gate is None or values[item.id] is not None:
            continue
        gate_value = answers[gate.item]
        if gate_value is not None and gate_value != gate.equals:
            values[item.id] = gate.skipped_value
    return values


def _score_one(score: Score, values: Mapping[str, Answer]) -> ScoreValue:
    answered = [values[item_id] for item_id in score.items if values[item_id] is not None]
    missing = tuple(item_id for item_id in score.items if values[item_id] is None)
    expected = len(score.items)
    if len(missing) > score.max_missing:
        allowed = score.max_missing
        reason = (
            f"{len(missing)} of {expected} items unanswered; the rule allows "
            f"{'none' if allowed == 0 else f'at most {allowed}'}"
        )
        return ScoreValue(score.id, None, len(answered), expected, missing, False, reason)
    total = math.fsum(float(value) for value in answered if value is not None)
    # A sum with missing items is prorated to the full number of items.
    divisor = len(answered) / expected if score.method == "sum" else len(answered)
    value = total / divisor
    prorated = score.method == "sum" and bool(missing)
    return ScoreValue(score.id, value, len(answered), expected, missing, prorated)
