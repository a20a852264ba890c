"""Invariants of scoring, checked on generated answers (hypothesis).

- every score of every valid questionnaire lies within the score's range;
- raising one answer never lowers a sum or mean score (monotonicity);
- a prorated score lies between the scores the missing items could have given;
- beyond the missing-item rule a score is missing, never a guess;
- the order of answers, and None vs absent, never change a score.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumbar.instruments import INSTRUMENTS, Instrument, Item, score_answers

pytestmark = pytest.mark.unit

ALL = list(INSTRUMENTS)


def _values(item: Item) -> st.SearchStrategy[float | int]:
    response = item.response
    if response.kind == "choice":
        return st.sampled_from([option.code for option in response.options])
    if response.kind == "integer":
        return st.integers(int(response.lowest), int(response.highest))
    assert response.step is not None
    steps = round((response.highest - response.lowest) / response.step)
    return st.integers(0, steps).map(lambda n: response.lowest + n * response.step)  # type: ignore[operator]


def _respect_item_rules(instrument: Instrument, answers: dict[str, Any]) -> dict[str, Any]:
    """Make generated answers obey branching and item bounds, as a real form would."""
    for item in instrument.items:
        gate = item.only_if
        if gate is not None and answers.get(gate.item) not in (None, gate.equals):
            answers[item.id] = None
        bound = item.at_most_item
        if (
            bound is not None
            and answers.get(item.id) is not None
            and answers.get(bound) is not None
        ):
            answers[item.id] = min(answers[item.id], answers[bound])
    return answers


@st.composite
def complete_answers(draw: st.DrawFn, instrument: Instrument) -> dict[str, Any]:
    answers = {item.id: draw(_values(item)) for item in instrument.items}
    return _respect_item_rules(instrument, answers)


@st.composite
def instrument_and_answers(draw: st.DrawFn) -> tuple[Instrument, dict[str, Any]]:
    instrument = draw(st.sampled_from(ALL))
    return instrument, draw(complete_answers(instrument))


@given(instrument_and_answers())
def test_every_score_lies_within_its_range(case: tuple[Instrument, dict[str, Any]]) -> None:
    instrument, answers = case
    for value in score_answers(instrument, answers).values:
        low, high = instrument.score_range(value.score)
        assert value.value is not None
        assert low <= value.value <= high


@given(instrument_and_answers(), st.data())
def test_raising_one_answer_never_lowers_a_score(
    case: tuple[Instrument, dict[str, Any]], data: st.DataObject
) -> None:
    instrument, answers = case
    item = data.draw(st.sampled_from(instrument.items))
    if answers[item.id] is None:
        return
    higher = [
        value
        for value in data.draw(st.lists(_values(item), min_size=1, max_size=3))
        if value > answers[item.id]
    ]
    if not higher:
        return
    raised = _respect_item_rules(instrument, answers | {item.id: min(higher)})
    if any(raised[key] != answers[key] for key in answers if key != item.id):
        return  # the rise changed another item through a rule; not a single-answer change
    before = score_answers(instrument, answers)
    after = score_answers(instrument, raised)
    for old, new in zip(before.values, after.values, strict=True):
        if (
            old.value is not None
            and new.value is not None
            and item.id in instrument.score(old.score).items
        ):
            assert new.value >= old.value


@given(
    st.lists(st.integers(0, 1), min_size=24, max_size=24), st.sets(st.integers(0, 23), max_size=2)
)
def test_rdq_prorated_score_lies_between_the_possible_completions(
    answers: list[int], missing: set[int]
) -> None:
    rdq = INSTRUMENTS.get("rdq")
    ids = [item.id for item in rdq.items]
    given_answers = {ids[i]: answers[i] for i in range(24) if i not in missing}
    prorated = score_answers(rdq, given_answers)["total"]
    all_no = score_answers(rdq, given_answers | {ids[i]: 0 for i in missing})["total"]
    all_yes = score_answers(rdq, given_answers | {ids[i]: 1 for i in missing})["total"]
    assert prorated.value is not None
    assert all_no.value is not None
    assert all_yes.value is not None
    assert all_no.value <= prorated.value <= all_yes.value
    assert prorated.prorated == bool(missing)
    assert prorated.answered == 24 - len(missing)


@given(st.lists(st.integers(0, 1), min_size=24, max_size=24), st.integers(1, 23))
def test_one_more_yes_adds_exactly_one_rdq_point(answers: list[int], position: int) -> None:
    rdq = INSTRUMENTS.get("rdq")
    ids = [item.id for item in rdq.items]
    answers[position] = 0
    before = score_answers(rdq, dict(zip(ids, answers, strict=True)))["total"].value
    answers[position] = 1
    after = score_answers(rdq, dict(zip(ids, answers, strict=True)))["total"].value
    assert before is not None
    assert after == before + 1


@given(instrument_and_answers(), st.data())
def test_beyond_the_missing_rule_a_score_is_missing(
    case: tuple[Instrument, dict[str, Any]], data: st.DataObject
) -> None:
    instrument, answers = case
    score = data.draw(st.sampled_from(instrument.scores))
    askable = [item_id for item_id in score.items if answers[item_id] is not None]
    count = score.max_missing + 1
    if len(askable) < count or any(instrument.item(i).only_if for i in score.items):
        return
    dropped = data.draw(st.permutations(askable))[:count]
    for item_id in dropped:
        answers[item_id] = None
    value = score_answers(instrument, answers)[score.id]
    assert value.value is None
    assert value.reason is not None
    assert len(value.missing_items) >= count


@settings(max_examples=50)
@given(instrument_and_answers(), st.randoms(use_true_random=False))
def test_order_of_answers_and_explicit_none_do_not_matter(
    case: tuple[Instrument, dict[str, Any]], random: Any
) -> None:
    instrument, answers = case
    shuffled = list(answers.items())
    random.shuffle(shuffled)
    without_none = {key: value for key, value in answers.items() if value is not None}
    assert score_answers(instrument, dict(shuffled)) == score_answers(instrument, answers)
    assert score_answers(instrument, without_none) == score_answers(instrument, answers)
