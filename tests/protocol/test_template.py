"""Screening and visit templates: every question with its allowed answers, accepted once filled."""

from __future__ import annotations

import pytest
import yaml

from lumbar.errors import ProtocolError
from lumbar.instruments import INSTRUMENTS, score_answers
from lumbar.protocol import Protocol, check_screening_answers, evaluate_eligibility
from lumbar.protocol.template import screening_template, visit_template
from tests.operations.world import eligible_answers
from tests.templates import filled_in, some_answers

pytestmark = pytest.mark.unit


def test_the_screening_template_holds_every_question_blank(reference: Protocol) -> None:
    template = screening_template(reference)
    questions = reference.eligibility.questions
    assert yaml.safe_load(template) == dict.fromkeys(question.id for question in questions)
    about = comments(template)
    assert about["sex"].startswith("Sex recorded for analysis: one of female (Female), male (Male)")
    assert about["age"].startswith("Age in years: a whole number from 0 to 120 years")
    assert about["pregnant"] == "Is pregnant: yes or no"
    # The covariates randomization will ask for are marked, and only they.
    marked = sorted(key for key, text in about.items() if "needed before randomization" in text)
    assert marked == ["age", "sex"]


def comments(template: str) -> dict[str, str]:
    """Each key of a template with the comment above it (wrapped lines joined)."""
    found: dict[str, str] = {}
    above: list[str] = []
    for line in template.splitlines():
        if line.startswith("#"):
            above.append(line.removeprefix("#").strip())
        elif line.endswith(":"):
            found[line.removesuffix(":").strip()] = " ".join(above)
            above = []
        else:
            above = []
    return found


def test_a_filled_in_screening_template_is_eligible(reference: Protocol) -> None:
    answers = {
        key: ("yes" if value else "no") if isinstance(value, bool) else value
        for key, value in eligible_answers(reference).items()
    }
    loaded = yaml.safe_load(filled_in(screening_template(reference), answers))
    check_screening_answers(reference.eligibility, loaded)
    assert evaluate_eligibility(reference, loaded).status == "eligible"


def test_a_visit_template_holds_each_questionnaire_of_the_visit(reference: Protocol) -> None:
    visit = reference.visit("week_10")
    template = visit_template(reference, "week_10")
    loaded = yaml.safe_load(template)
    assert list(loaded) == list(visit.instruments)
    answers: dict[str, object] = {}
    for name in visit.instruments:
        instrument = INSTRUMENTS.get(name)
        assert loaded[name] == dict.fromkeys(item.id for item in instrument.items)
        answers |= some_answers(instrument)
    filled = yaml.safe_load(filled_in(template, answers, indent="  "))
    for name in visit.instruments:
        score_answers(INSTRUMENTS.get(name), filled[name])
    assert "questionnaire visit STUDY_ID week_10 --answers FILE" in template


def test_the_baseline_template_says_which_score_randomization_needs(reference: Protocol) -> None:
    template = visit_template(reference, "baseline")
    assert "stratified by Baseline Roland-Morris score" in template


def test_an_unknown_visit_is_refused_naming_the_visits(reference: Protocol) -> None:
    with pytest.raises(ProtocolError, match="baseline, week_10, week_26, week_52"):
        visit_template(reference, "week_11")
