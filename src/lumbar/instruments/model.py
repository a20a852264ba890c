"""What an instrument is: items, their response scales, scores and measurement properties.

An :class:`Instrument` is declared data. It holds item labels in lumbar's own
words (short descriptions of what each item asks about), never an instrument's
licensed wording; a user who holds a licence loads the wording from a file
(:mod:`lumbar.instruments.wording`) and gets a copy of the instrument with it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from lumbar._declared import (
    Frozen,
    Identifier,
    Number,
    Text,
    Whole,
    find_by_id,
    format_number,
    refuse,
)

__all__ = [
    "Direction",
    "Gate",
    "Instrument",
    "Item",
    "MeasurementProperties",
    "Option",
    "Reference",
    "Response",
    "Score",
    "Wording",
]

Direction = Literal["higher_is_worse", "higher_is_better", "none"]
"""Which way a score improves. ``none`` for descriptive items such as hours of sleep."""


class Option(Frozen):
    """One response option of a choice item: the stored code and its label."""

    code: int
    label: Text


class Response(Frozen):
    """The answers an item accepts.

    - ``choice``: one of ``options`` (stored as the option's code; yes/no is 1/0);
    - ``integer``: a whole number from ``minimum`` to ``maximum`` (a 0-10 rating, a count of days);
    - ``decimal``: a number from ``minimum`` to ``maximum`` in multiples of ``step``.
    """

    kind: Literal["choice", "integer", "decimal"]
    options: tuple[Option, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    low_anchor: str = ""
    high_anchor: str = ""
    unit: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Response:
        if self.kind == "choice":
            if len(self.options) < 2:
                raise ValueError("a choice response needs at least two options")
            codes = [option.code for option in self.options]
            if len(set(codes)) != len(codes):
                raise ValueError(f"option codes must be distinct, got {codes}")
            if self.minimum is not None or self.maximum is not None:
                raise ValueError("a choice response takes its range from its options")
        else:
            if self.options:
                raise ValueError(f"an {self.kind} response has no options")
            if self.minimum is None or self.maximum is None or self.minimum >= self.maximum:
                raise ValueError(f"an {self.kind} response needs minimum < maximum")
            if self.kind == "integer" and not (
                float(self.minimum).is_integer() and float(self.maximum).is_integer()
            ):
                raise ValueError("an integer response needs whole-number bounds")
            if self.kind == "decimal" and (self.step is None or self.step <= 0):
                raise ValueError("a decimal response needs a positive step")
        return self

    @property
    def lowest(self) -> float:
        if self.kind == "choice":
            return float(min(option.code for option in self.options))
        assert self.minimum is not None
        return float(self.minimum)

    @property
    def highest(self) -> float:
        if self.kind == "choice":
            return float(max(option.code for option in self.options))
        assert self.maximum is not None
        return float(self.maximum)

    def describe(self) -> str:
        """The accepted answers in words, for error messages and ``instruments show``."""
        if self.kind == "choice":
            return ", ".join(f"{option.code} = {option.label}" for option in self.options)
        unit = f" {self.unit}" if self.unit else ""
        text = f"{format_number(self.lowest)} to {format_number(self.highest)}{unit}"
        if self.kind == "integer":
            text = "a whole number from " + text
        else:
            assert self.step is not None
            text = f"a number from {text} in steps of {format_number(self.step)}"
        if self.low_anchor or self.high_anchor:
            text += f" ({format_number(self.lowest)} = {self.low_anchor}; "
            text += f"{format_number(self.highest)} = {self.high_anchor})"
        return text

    def option_label(self, code: int) -> str:
        for option in self.options:
            if option.code == code:
                return option.label
        raise KeyError(code)


class Gate(Frozen):
    """Branching: an item is asked only when another item has a given answer."""

    item: Identifier
    equals: int
    skipped_value: float = Field(
        default=0, description="the value a skipped item contributes to scores"
    )


class Item(Frozen):
    """One question of an instrument, labelled in lumbar's own words."""

    id: Identifier
    label: Text
    response: Response
    only_if: Gate | None = None
    at_most_item: Identifier | None = Field(
        default=None,
        description="another item this one may not exceed (e.g. bed days within restricted days)",
    )


class Score(Frozen):
    """How one score is computed from items, and what to do about missing items.

    - ``sum``: the sum of the items. With up to ``max_missing`` items unanswered the
      sum is prorated: sum of answered items x (number of items / number answered);
    - ``mean``: the mean of the answered items, when at most ``max_missing`` are missing;
    - ``item``: the value of the one item (``max_missing`` must be 0).

    With more items missing than the rule allows the score is missing, with the
    reason recorded; lumbar never fills in a guess.
    """

    id: Identifier
    label: Text
    method: Literal["sum", "mean", "item"]
    items: tuple[Identifier, ...]
    max_missing: int = Field(default=0, ge=0)
    direction: Direction

    @model_validator(mode="after")
    def _consistent(self) -> Score:
        if not self.items:
            raise ValueError("a score needs at least one item")
        if len(set(self.items)) != len(self.items):
            raise ValueError("a score lists each item once")
        if self.method == "item" and (len(self.items) != 1 or self.max_missing):
            raise ValueError("an 'item' score takes exactly one item and allows none missing")
        if self.max_missing >= len(self.items):
            raise ValueError("max_missing must leave at least one item answered")
        return self


class Reference(Frozen):
    """A published number with where it was published (finite: the base model refuses NaN)."""

    value: Number
    source: Text


class MeasurementProperties(Frozen):
    """Numbers that say how big a change in a score matters, each with its source.

    Used as an instrument's published defaults and as a protocol's pre-specified
    thresholds (which override the defaults field by field).
    """

    minimal_important_change: Reference | None = Field(
        default=None, description="within-person improvement in points that patients notice"
    )
    minimal_important_percent: Reference | None = Field(
        default=None, description="within-person improvement as a percentage of baseline"
    )
    small_change: Reference | None = Field(
        default=None, description="a smaller improvement in points some readers count"
    )
    meaningful_group_difference: Reference | None = Field(
        default=None, description="between-arm difference in mean score judged meaningful"
    )
    reliability: Reference | None = Field(
        default=None, description="test-retest reliability (ICC) in stable patients"
    )
    sem: Reference | None = Field(default=None, description="standard error of measurement")
    reference_sd: Reference | None = Field(
        default=None, description="SD of the score used for reliable change (SEM = SD x sqrt(1-r))"
    )
    minimal_detectable_change: Reference | None = Field(
        default=None, description="smallest change beyond measurement error (90% confidence)"
    )

    @field_validator("*")
    @classmethod
    def _in_range(cls, reference: Reference | None, info: ValidationInfo) -> Reference | None:
        # One field at a time, so every broken threshold is reported at its own path.
        if reference is None:
            return None
        name, value = info.field_name, format_number(reference.value)
        if name == "reliability":
            if not 0 < reference.value < 1:
                raise refuse(
                    f"must be between 0 and 1, got {value}", "give the test-retest ICC, e.g. 0.53"
                )
        elif name == "minimal_important_percent":
            if not 0 < reference.value <= 100:
                raise refuse(
                    f"must be above 0 and at most 100, got {value}",
                    "give a percentage of the baseline score, e.g. 30",
                )
        elif reference.value <= 0:
            raise refuse(f"must be positive, got {value}", "give a number of points")
        return reference

    def merged(self, overrides: MeasurementProperties) -> MeasurementProperties:
        """These properties with every field set in ``overrides`` replaced."""
        changes = {
            name: getattr(overrides, name)
            for name in type(self).model_fields
            if getattr(overrides, name) is not None
        }
        return self.model_copy(update=changes)

    def set_fields(self) -> dict[str, Reference]:
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if getattr(self, name) is not None
        }


class Wording(Frozen):
    """The texts of one instrument's items, as licensed to the user (never shipped)."""

    lumbar_wording: Annotated[Whole, Field(ge=1, le=1)]
    instrument: Identifier
    language: Text
    source: Text
    instructions: str = ""
    items: dict[str, Text]


class Instrument(Frozen):
    """A questionnaire: items, scores, measurement properties and provenance.

    ``wording`` holds item texts loaded by the user from a licensed file
    (:func:`lumbar.instruments.load_wording`); shipped instruments have none.
    """

    name: Identifier
    title: Text
    measures: Text
    recall_period: str = ""
    description: Text
    items: tuple[Item, ...]
    scores: tuple[Score, ...]
    properties: MeasurementProperties = MeasurementProperties()
    citation: Text
    licence: Text
    wording: Wording | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        ids = [item.id for item in self.items]
        if not ids:
            raise ValueError("an instrument needs at least one item")
        duplicates = sorted({item_id for item_id in ids if ids.count(item_id) > 1})
        if duplicates:
            raise ValueError(f"item ids must be distinct; repeated: {duplicates}")
        known = set(ids)
        for item in self.items:
            gate = item.only_if
            if gate is not None and (gate.item not in known or gate.item == item.id):
                raise ValueError(f"item {item.id} is gated on unknown item {gate.item}")
            if item.at_most_item is not None and item.at_most_item not in known:
                raise ValueError(f"item {item.id} is bounded by unknown item {item.at_most_item}")
        if not self.scores:
            raise ValueError("an instrument needs at least one score")
        score_ids = [score.id for score in self.scores]
        if len(set(score_ids)) != len(score_ids):
            raise ValueError(f"score ids must be distinct, got {score_ids}")
        for score in self.scores:
            unknown = [item_id for item_id in score.items if item_id not in known]
            if unknown:
                raise ValueError(f"score {score.id} uses unknown items {unknown}")
        return self

    def item(self, item_id: str) -> Item:
        return find_by_id(self.items, item_id)

    def score(self, score_id: str | None = None) -> Score:
        """The score with this id, or the instrument's primary (first) score."""
        if score_id is None:
            return self.scores[0]
        return find_by_id(self.scores, score_id)

    @property
    def primary_score(self) -> Score:
        return self.scores[0]

    def score_range(self, score_id: str | None = None) -> tuple[float, float]:
        """The lowest and highest value the score can take."""
        score = self.score(score_id)
        lows = [self.item(item_id).response.lowest for item_id in score.items]
        highs = [self.item(item_id).response.highest for item_id in score.items]
        if score.method == "sum":
            return float(sum(lows)), float(sum(highs))
        return float(min(lows)), float(max(highs))

    def missing_rule(self, score_id: str | None = None) -> str:
        """The missing-item rule of a score, in words."""
        score = self.score(score_id)
        count = len(score.items)
        if score.method == "item":
            return "missing when the item is unanswered"
        if score.max_missing == 0:
            return f"needs all {count} items; missing otherwise"
        if score.method == "sum":
            return (
                f"with up to {score.max_missing} of {count} items unanswered, the sum of the "
                f"answered items is prorated to {count} items (x {count}/answered); "
                "missing otherwise"
            )
        return (
            f"the mean of the answered items when at most {score.max_missing} of {count} "
            "are unanswered; missing otherwise"
        )

    def text_of(self, item_id: str) -> str:
        """The licensed wording of an item when loaded, else lumbar's label."""
        if self.wording is not None and item_id in self.wording.items:
            return self.wording.items[item_id]
        return self.item(item_id).label
