"""Instruments summarised as tables, for ``lumbar instruments`` and the docs."""

from __future__ import annotations

from collections.abc import Iterable

from lumbar._declared import format_number
from lumbar._summary import SummaryTable
from lumbar.instruments.model import Instrument

__all__ = ["list_instruments", "summarize_instrument"]


def list_instruments(instruments: Iterable[Instrument]) -> SummaryTable:
    """One row per instrument: name, title, items, primary score and its range."""
    rows = []
    for instrument in instruments:
        low, high = instrument.score_range()
        rows.append(
            (
                instrument.name,
                instrument.title,
                str(len(instrument.items)),
                ", ".join(score.id for score in instrument.scores),
                f"{format_number(low)}-{format_number(high)}",
                instrument.primary_score.direction.replace("_", " "),
                instrument.recall_period or "-",
            )
        )
    return SummaryTable(
        "Instruments",
        ("name", "title", "items", "scores", "range", "direction", "recall"),
        tuple(rows),
    )


def summarize_instrument(instrument: Instrument) -> tuple[SummaryTable, ...]:
    """An instrument in full: about, items, scores, measurement properties."""
    about = [
        ("title", instrument.title),
        ("measures", instrument.measures),
        ("recall period", instrument.recall_period or "-"),
        ("description", instrument.description),
        ("citation", instrument.citation),
        ("wording", instrument.licence),
    ]
    if instrument.wording is not None:
        about.append(
            ("wording loaded", f"{instrument.wording.language}: {instrument.wording.source}")
        )
        if instrument.wording.instructions:
            about.append(("instructions", instrument.wording.instructions))
    item_header = "text (licensed wording)" if instrument.wording is not None else "asks about"
    items = tuple(
        (
            item.id,
            instrument.text_of(item.id),
            item.response.describe(),
            _item_rules(item.id, instrument),
        )
        for item in instrument.items
    )
    scores = []
    for score in instrument.scores:
        low, high = instrument.score_range(score.id)
        scores.append(
            (
                score.id,
                score.label,
                score.method,
                f"{format_number(low)}-{format_number(high)}",
                score.direction.replace("_", " "),
                instrument.missing_rule(score.id),
            )
        )
    properties = tuple(
        (name.replace("_", " "), format_number(reference.value), reference.source)
        for name, reference in instrument.properties.set_fields().items()
    )
    return (
        SummaryTable(instrument.name, ("field", "value"), tuple(about)),
        SummaryTable("Items", ("item", item_header, "answers", "rules"), items),
        SummaryTable(
            "Scores",
            ("score", "label", "method", "range", "direction", "missing items"),
            tuple(scores),
        ),
        SummaryTable(
            "Measurement properties",
            ("property", "value", "source"),
            properties,
            note="" if properties else "No published measurement properties are recorded.",
        ),
    )


def _item_rules(item_id: str, instrument: Instrument) -> str:
    item = instrument.item(item_id)
    rules = []
    if item.only_if is not None:
        rules.append(
            f"asked only if {item.only_if.item} = {item.only_if.equals} "
            f"(scores {format_number(item.only_if.skipped_value)} when skipped)"
        )
    if item.at_most_item is not None:
        rules.append(f"at most {item.at_most_item}")
    return "; ".join(rules)
