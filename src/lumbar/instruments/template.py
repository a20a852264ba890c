"""Answer files to fill in: every item of an instrument with its allowed answers.

:func:`questionnaire_template` writes a YAML file that a coordinator fills in and
hands to ``lumbar questionnaire add --answers``. Each item is a key with a blank
value (YAML's null: *not answered*), below a comment with the item's label and
the answers it accepts: choice codes with their labels, ranges, steps and skip
rules. Labels are lumbar's own short descriptions unless the user loads licensed
wording (:func:`lumbar.instruments.apply_wording`); lumbar never ships it.

>>> from lumbar.instruments import get_instrument
>>> for line in item_lines(get_instrument("medication_use"))[:5]:
...     print(line)
# took any medication for back pain in the past week: 1 = yes, 0 = no
any_medication:
# took a non-opioid pain reliever (paracetamol, anti-inflammatory): 1 = yes, 0 = no; asked
#   only if any_medication = 1 (leave blank when not asked)
non_opioid_analgesic:
"""

from __future__ import annotations

import textwrap

from lumbar.instruments.model import Instrument, Item

__all__ = [
    "FILL_IN",
    "allowed_answers",
    "comment",
    "header_lines",
    "item_lines",
    "questionnaire_template",
]

FILL_IN = "Write each answer after its colon; leave it blank when not answered."

COMMENT_WIDTH = 92
"""Comment lines wrap here, so a filled file reads well in any editor."""


def questionnaire_template(instrument: Instrument) -> str:
    """A fillable YAML file with every item of ``instrument`` (the answers blank)."""
    lines = [
        *header_lines(instrument),
        f"# {FILL_IN}",
        f"# Then: lumbar questionnaire add STUDY_ID VISIT {instrument.name} --answers FILE",
        "",
        *item_lines(instrument),
    ]
    return "\n".join(lines) + "\n"


def header_lines(instrument: Instrument) -> list[str]:
    """Comment lines naming the instrument, its recall period, wording and scores."""
    lines = comment(f"{instrument.name}: {instrument.title}")
    if instrument.recall_period:
        lines += comment(f"Recall period: {instrument.recall_period}.")
    if instrument.wording is not None:
        lines += comment(f"Wording: {instrument.wording.source}")
    else:
        lines += comment(
            "Labels are lumbar's own short descriptions, not the questionnaire's wording."
        )
    for score in instrument.scores:
        lines += comment(f"{score.label}: {instrument.missing_rule(score.id)}.")
    return lines


def item_lines(instrument: Instrument, indent: str = "") -> list[str]:
    """Each item as a comment (label and allowed answers) above its blank key."""
    lines = []
    for item in instrument.items:
        lines += comment(f"{instrument.text_of(item.id)}: {allowed_answers(item)}", indent)
        lines.append(f"{indent}{item.id}:")
    return lines


def comment(text: str, indent: str = "") -> list[str]:
    """``text`` as YAML comment lines, wrapped (continuation lines indented)."""
    return [
        f"{indent}# {line}" for line in textwrap.wrap(text, COMMENT_WIDTH, subsequent_indent="  ")
    ]


def allowed_answers(item: Item) -> str:
    """The answers an item accepts, with its rules, in words."""
    text = item.response.describe()
    if item.only_if is not None:
        text += (
            f"; asked only if {item.only_if.item} = {item.only_if.equals} "
            "(leave blank when not asked)"
        )
    if item.at_most_item is not None:
        text += f"; at most {item.at_most_item}"
    return text
