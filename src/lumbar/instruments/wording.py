"""Licensed wording, loaded by the user from a file and never shipped.

Some instruments' exact wording belongs to their authors. A team that holds the
right to use it writes a wording file and lumbar shows those texts in place
of its own labels. The file is YAML (or JSON, which is YAML too)::

    lumbar_wording: 1
    instrument: rdq
    language: en
    source: Where this wording comes from and the licence you hold for it
    instructions: Optional text shown before the items
    items:
      rdq_01: "..."
      rdq_02: "..."
      # one entry for every item of the instrument

Every item must have a text, and only the instrument's items may appear.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from lumbar._declared import (
    YamlSyntaxError,
    problems_from_validation,
    read_text_limited,
    read_yaml,
)
from lumbar.errors import InstrumentError, Problem
from lumbar.instruments.model import Instrument, Wording
from lumbar.instruments.registry import INSTRUMENTS, Registry

__all__ = ["apply_wording", "load_wording"]


def load_wording(path: str | Path, registry: Registry = INSTRUMENTS) -> Wording:
    """Read and check a wording file against the instrument it names."""
    path = Path(path)
    source = str(path)
    try:
        text = read_text_limited(path)
    except (OSError, UnicodeDecodeError) as error:
        raise InstrumentError(
            "cannot read the wording file",
            [Problem("file", str(error), hint="check the path and that the file is UTF-8 text")],
            source=source,
        ) from None
    except YamlSyntaxError as error:
        raise InstrumentError("cannot read the wording file", [error.problem], source) from None
    try:
        data, lines = read_yaml(text)
    except YamlSyntaxError as error:
        raise InstrumentError(
            "the wording file is not valid YAML", [error.problem], source
        ) from None
    try:
        wording = Wording.model_validate(data)
    except ValidationError as error:
        raise InstrumentError(
            "the wording file is not valid",
            problems_from_validation(error, Wording, lines),
            source,
        ) from None
    if wording.instrument not in registry:
        raise InstrumentError(
            "the wording file is not valid",
            [
                Problem(
                    "instrument",
                    "is not in the registry",
                    wording.instrument,
                    registry.suggest(wording.instrument),
                    lines.line_of(("instrument",)),
                )
            ],
            source,
        )
    instrument = registry.get(wording.instrument)
    expected = [item.id for item in instrument.items]
    problems = [
        Problem(
            f"items.{key}",
            f"is not an item of {instrument.name}",
            hint="the items are: " + ", ".join(expected),
            line=lines.line_of(("items", key)),
        )
        for key in wording.items
        if key not in expected
    ]
    absent = [item_id for item_id in expected if item_id not in wording.items]
    if absent:
        problems.append(
            Problem(
                "items",
                f"must give a text for every item of {instrument.name}; missing: "
                + ", ".join(absent),
                line=lines.line_of(("items",)),
            )
        )
    if problems:
        raise InstrumentError("the wording file is not valid", problems, source)
    return wording


def apply_wording(instrument: Instrument, wording: Wording) -> Instrument:
    """A copy of ``instrument`` that shows ``wording``'s texts instead of lumbar's labels."""
    if wording.instrument != instrument.name:
        raise InstrumentError(
            "the wording is for another instrument",
            [Problem("instrument", f"must be {instrument.name}", wording.instrument)],
        )
    return instrument.model_copy(update={"wording": wording})
