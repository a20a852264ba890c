"""Filling in answer templates the way a coordinator would, for tests."""

from __future__ import annotations

from typing import Any

from lumbar.instruments import Instrument

__all__ = ["filled_in", "some_answers"]


def filled_in(template: str, answers: dict[str, Any], indent: str = "") -> str:
    """``template`` with each blank ``key:`` line at ``indent`` given its answer."""
    lines = []
    for line in template.splitlines():
        key = line.removeprefix(indent).removesuffix(":")
        blank = line.startswith(indent) and line.endswith(":") and key in answers
        lines.append(f"{line} {answers[key]}" if blank else line)
    return "\n".join(lines) + "\n"


def some_answers(instrument: Instrument) -> dict[str, Any]:
    """A valid answer to every item: a choice's first code, a number's highest value."""
    answers: dict[str, Any] = {}
    for item in instrument.items:
        response = item.response
        if response.kind == "choice":
            answers[item.id] = response.options[0].code
        else:
            answers[item.id] = response.highest
    return answers
