"""Answer templates: every item with its allowed answers, blank, and accepted once filled in."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lumbar.instruments import INSTRUMENTS, apply_wording, load_wording, score_answers
from lumbar.instruments.template import questionnaire_template
from tests.templates import filled_in, some_answers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", INSTRUMENTS.names())
def test_the_template_holds_every_item_blank_with_its_answers(name: str) -> None:
    instrument = INSTRUMENTS.get(name)
    template = questionnaire_template(instrument)
    assert yaml.safe_load(template) == dict.fromkeys(item.id for item in instrument.items)
    flat = " ".join(line.removeprefix("#").strip() for line in template.splitlines())
    for item in instrument.items:
        assert f"{item.label}: {item.response.describe()}" in flat
        if item.only_if is not None:
            assert f"asked only if {item.only_if.item} = {item.only_if.equals}" in flat
    assert instrument.title in flat
    assert f"questionnaire add STUDY_ID VISIT {name} --answers FILE" in template


@pytest.mark.parametrize("name", INSTRUMENTS.names())
def test_a_filled_in_template_is_accepted_and_scored(name: str) -> None:
    instrument = INSTRUMENTS.get(name)
    answers = yaml.safe_load(
        filled_in(questionnaire_template(instrument), some_answers(instrument))
    )
    scores = score_answers(instrument, answers)
    assert all(not value.is_missing for value in scores.values)


def test_the_template_shows_licensed_wording_only_from_the_users_file(tmp_path: Path) -> None:
    peg = INSTRUMENTS.get("peg")
    assert "Licensed" not in questionnaire_template(peg)
    assert "lumbar's own short descriptions" in questionnaire_template(peg)
    wording = tmp_path / "peg.yaml"
    wording.write_text(
        "lumbar_wording: 1\ninstrument: peg\nlanguage: en\nsource: Licensed to our clinic\n"
        "items:\n  peg_pain: Text A\n  peg_enjoyment: Text B\n  peg_activity: Text C\n"
    )
    template = questionnaire_template(apply_wording(peg, load_wording(wording)))
    assert "# Wording: Licensed to our clinic" in template
    assert "# Text A: " in template
    assert peg.item("peg_pain").label not in template
