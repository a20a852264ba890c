"""One client's change against measurement error: reliable change and the trial's thresholds.

A group analysis (:mod:`lumbar.analysis.responders`) counts how many participants
improved; this module judges one person's change, for a chart a client can read.

For a score where higher is worse the improvement is ``baseline - current``
(``current - baseline`` where higher is better). Measurement error is the
instrument's *published* standard error of measurement (SEM); when only a
published test-retest reliability r and a stated reference SD are known,
SEM = SD x sqrt(1 - r). Following Jacobson & Truax (J Consult Clin Psychol
1991;59:12):

- S_diff = sqrt(2) x SEM (the spread of a difference of two scores);
- RCI = improvement / S_diff; reliable at 95% when abs(RCI) >= 1.96;
- so the reliable change in points is 1.96 x sqrt(2) x SEM. For the
  Roland-Morris questionnaire (SEM 3.7, Davidson & Keating 2002) that is
  1.96 x 1.414 x 3.7 = 10.26 points.

The change itself falls in one of four categories: *reliably improved* (RCI >=
1.96), *improved but within measurement error* (improved, RCI < 1.96), *no
reliable change* (no improvement, RCI > -1.96) and *reliably worse* (RCI <=
-1.96). With no published measurement error the category is *cannot be judged*.

Each of the trial report's thresholds (the point and percent definitions of
:func:`~lumbar.analysis.responders.definitions_from`: 30%, 5 points, 2 points for
the RDQ) is reported as met or not met, and in the same four categories. As in
Jacobson & Truax's clinically significant change, *reliably improved* under a
threshold needs both: the threshold met and the change beyond measurement
error. A threshold met inside measurement error is *improved but within
measurement error*; a threshold not met is *no reliable change* unless the
score got reliably worse. A percent threshold cannot be met from a baseline of
0 (as in the group analysis).

Every verdict carries a ``reason`` in plain words for the client.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

from lumbar.analysis.responders import RELIABLE_CHANGE_Z, Definition, definitions_from
from lumbar.errors import AnalysisError, Problem
from lumbar.instruments import Instrument, MeasurementProperties, get_instrument

__all__ = [
    "CATEGORIES",
    "Category",
    "ClientChange",
    "MeasurementError",
    "ThresholdVerdict",
    "Trajectory",
    "TrajectoryPoint",
    "client_change",
    "measurement_error",
    "trajectory",
]

Category = Literal[
    "reliably improved",
    "improved but within measurement error",
    "no reliable change",
    "reliably worse",
    "cannot be judged",
]
CATEGORIES: tuple[Category, ...] = (
    "reliably improved",
    "improved but within measurement error",
    "no reliable change",
    "reliably worse",
    "cannot be judged",
)

When = str | int | date
"""A point of a trajectory: a session number, a visit name or a date."""


@dataclass(frozen=True)
class MeasurementError:
    """How far a score moves between two occasions without any real change.

    ``sem`` is None when it cannot be known; ``why`` then says what is missing.
    """

    sem: float | None
    source: str
    method: str
    why: str = ""

    @property
    def s_diff(self) -> float | None:
        """sqrt(2) x SEM: the standard error of a difference of two scores."""
        return None if self.sem is None else math.sqrt(2) * self.sem

    @property
    def reliable_change(self) -> float | None:
        """1.96 x sqrt(2) x SEM: the smallest change in points beyond error at 95%."""
        s_diff = self.s_diff
        return None if s_diff is None else RELIABLE_CHANGE_Z * s_diff


@dataclass(frozen=True)
class ThresholdVerdict:
    """One of the trial report's thresholds applied to one client's change."""

    definition: Definition
    needed: float
    """The improvement in points the threshold asks for (for a percent: of this baseline)."""
    met: bool
    category: Category
    reason: str


@dataclass(frozen=True)
class ClientChange:
    """One client's change on one score between two occasions."""

    instrument: str
    score: str
    direction: str
    baseline: float
    current: float
    change: float
    """current - baseline, as measured."""
    improvement: float
    """The change with its sign turned so that positive is better."""
    error: MeasurementError
    rci: float | None
    category: Category
    reason: str
    thresholds: tuple[ThresholdVerdict, ...]

    @property
    def reliable_change(self) -> float | None:
        return self.error.reliable_change

    def to_dict(self) -> dict[str, Any]:
        """Every field, with the reliable change in points, for JSON or a chart."""
        return {**asdict(self), "reliable_change": self.reliable_change}


@dataclass(frozen=True)
class TrajectoryPoint:
    """A score in a series; ``change`` is against the first score (None for the first)."""

    when: When
    score: float
    change: ClientChange | None


@dataclass(frozen=True)
class Trajectory:
    """A client's series of scores with the band of measurement error around the first.

    ``band_low``/``band_high`` are baseline -/+ the reliable change, clipped to the
    score's range; None when the measurement error is not known.
    """

    instrument: str
    score: str
    direction: str
    baseline: float
    error: MeasurementError
    band_low: float | None
    band_high: float | None
    points: tuple[TrajectoryPoint, ...]

    def to_dict(self) -> dict[str, Any]:
        """Every field, with the reliable change in points, for JSON or a chart."""
        return {**asdict(self), "reliable_change": self.error.reliable_change}


def measurement_error(properties: MeasurementProperties) -> MeasurementError:
    """The published SEM; else SD x sqrt(1 - r) from published figures; else why not."""
    if properties.sem is not None:
        return MeasurementError(properties.sem.value, properties.sem.source, "published SEM")
    reliability, sd = properties.reliability, properties.reference_sd
    if reliability is not None and sd is not None:
        return MeasurementError(
            sd.value * math.sqrt(1 - reliability.value),
            f"{reliability.source}; SD: {sd.source}",
            f"SD {_number(sd.value)} x sqrt(1 - {_number(reliability.value)})",
        )
    if reliability is not None:
        why = "its reliability is published but no reference SD is given to turn it into points"
    else:
        why = "no measurement error (SEM or reliability) is published for it in the registry"
    return MeasurementError(None, "", "none", why)


def client_change(
    instrument: Instrument | str,
    baseline: float,
    current: float,
    *,
    score: str | None = None,
    properties: MeasurementProperties | None = None,
) -> ClientChange:
    """Judge one client's change from ``baseline`` to ``current``.

    ``properties`` default to the instrument's published ones; pass a protocol's
    (``protocol.thresholds_for(name)``) to use its pre-specified thresholds.

    >>> change = client_change("rdq", 20, 9)
    >>> change.category, round(change.reliable_change, 2)
    ('reliably improved', 10.26)
    """
    found, chosen, low, high = _resolve(instrument, score)
    baseline = _checked("baseline", baseline, low, high, found, chosen)
    current = _checked("current", current, low, high, found, chosen)
    properties = found.properties if properties is None else properties
    return _judge(found, chosen, baseline, current, low, high, properties)


def trajectory(
    instrument: Instrument | str,
    scores: Sequence[tuple[When, float]],
    *,
    score: str | None = None,
    properties: MeasurementProperties | None = None,
) -> Trajectory:
    """Each score in a series judged against the first, and the error band around it."""
    found, chosen, low, high = _resolve(instrument, score)
    if not scores:
        raise AnalysisError(
            "no scores to chart",
            [Problem("scores", "needs at least one (when, score) pair", received=[])],
        )
    seen: set[object] = set()
    values: list[tuple[When, float]] = []
    for index, (when, value) in enumerate(scores):
        if when in seen:
            raise AnalysisError(
                "a point of the series is given twice",
                [Problem(f"scores[{index}].when", "must be distinct", received=when)],
            )
        seen.add(when)
        values.append((when, _checked(f"scores[{index}].score", value, low, high, found, chosen)))
    properties = found.properties if properties is None else properties
    error = measurement_error(properties)
    first = values[0][1]
    points = [TrajectoryPoint(values[0][0], first, None)]
    for when, value in values[1:]:
        points.append(
            TrajectoryPoint(when, value, _judge(found, chosen, first, value, low, high, properties))
        )
    reliable = error.reliable_change
    return Trajectory(
        instrument=found.name,
        score=chosen,
        direction=found.score(chosen).direction,
        baseline=first,
        error=error,
        band_low=None if reliable is None else max(low, first - reliable),
        band_high=None if reliable is None else min(high, first + reliable),
        points=tuple(points),
    )


# ----------------------------------------------------------------- internals


def _resolve(
    instrument: Instrument | str, score: str | None
) -> tuple[Instrument, str, float, float]:
    found = get_instrument(instrument) if isinstance(instrument, str) else instrument
    try:
        chosen = found.score(score)
    except KeyError:
        known = ", ".join(entry.id for entry in found.scores)
        raise AnalysisError(
            f"{found.name} has no score {score!r}",
            [Problem("score", f"must be one of {known}", received=score)],
        ) from None
    if chosen.direction == "none":
        raise AnalysisError(
            f"{found.name} {chosen.id} has no better or worse direction",
            [
                Problem(
                    "score",
                    "must be a score where higher is better or higher is worse",
                    received=chosen.id,
                    hint="chart it without judging change",
                )
            ],
        )
    low, high = found.score_range(chosen.id)
    return found, chosen.id, low, high


def _checked(
    where: str, value: float, low: float, high: float, instrument: Instrument, score: str
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AnalysisError(
            f"{where} is not a score",
            [Problem(where, "must be a finite number", received=value)],
        )
    if not low <= value <= high:
        raise AnalysisError(
            f"{where} is outside the {instrument.name} {score} range",
            [
                Problem(
                    where,
                    f"must be from {_number(low)} to {_number(high)} "
                    f"(the range of {instrument.score(score).label})",
                    received=value,
                )
            ],
        )
    return float(value)


def _judge(
    instrument: Instrument,
    score: str,
    baseline: float,
    current: float,
    low: float,
    high: float,
    properties: MeasurementProperties,
) -> ClientChange:
    direction = instrument.score(score).direction
    sign = 1.0 if direction == "higher_is_worse" else -1.0
    improvement = sign * (baseline - current) + 0.0  # no -0.0 when nothing changed
    best = low if direction == "higher_is_worse" else high
    error = measurement_error(properties)
    rci = None if error.s_diff is None else improvement / error.s_diff
    words = _Words(direction, baseline, current, improvement, error, best)
    category = _category(improvement > 0, rci)
    thresholds = tuple(
        _threshold(definition, baseline, improvement, rci, words)
        for definition in definitions_from(properties)
        if definition.kind != "reliable"
    )
    return ClientChange(
        instrument=instrument.name,
        score=score,
        direction=direction,
        baseline=baseline,
        current=current,
        change=current - baseline,
        improvement=improvement,
        error=error,
        rci=rci,
        category=category,
        reason=words.overall(category),
        thresholds=thresholds,
    )


def _category(improved: bool, rci: float | None) -> Category:
    if rci is None:
        return "cannot be judged"
    if rci >= RELIABLE_CHANGE_Z:
        return "reliably improved"
    if rci <= -RELIABLE_CHANGE_Z:
        return "reliably worse"
    return "improved but within measurement error" if improved else "no reliable change"


def _threshold(
    definition: Definition,
    baseline: float,
    improvement: float,
    rci: float | None,
    words: _Words,
) -> ThresholdVerdict:
    if definition.kind == "percent":
        needed = definition.threshold / 100 * abs(baseline)
        met = baseline != 0 and improvement >= needed
    else:
        needed = definition.threshold
        met = improvement >= needed
    if rci is None:
        category: Category = "cannot be judged"
    elif rci <= -RELIABLE_CHANGE_Z:
        category = "reliably worse"
    elif not met:
        category = "no reliable change"
    elif rci >= RELIABLE_CHANGE_Z:
        category = "reliably improved"
    else:
        category = "improved but within measurement error"
    return ThresholdVerdict(
        definition, needed, met, category, words.threshold(definition, needed, met, category)
    )


def _number(value: float) -> str:
    """One decimal at most, as a person writes it: 10.2559 -> 10.3, 6.0 -> 6."""
    rounded = round(value, 1)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}"


def _points(value: float) -> str:
    text = _number(value)
    return f"{text} point" if text == "1" else f"{text} points"


@dataclass(frozen=True)
class _Words:
    """The client-facing sentences: no jargon, numbers rounded to one decimal."""

    direction: str
    baseline: float
    current: float
    improvement: float
    error: MeasurementError
    best: float

    @property
    def better(self) -> str:
        return "lower" if self.direction == "higher_is_worse" else "higher"

    def moved(self) -> str:
        if self.current == self.baseline:
            return f"Your score stayed at {_number(self.current)} ({self.better} is better)."
        way = "down" if self.current < self.baseline else "up"
        return (
            f"Your score went {way} {_points(abs(self.current - self.baseline))}, from "
            f"{_number(self.baseline)} to {_number(self.current)} ({self.better} is better)."
        )

    def noise(self) -> str:
        assert self.error.reliable_change is not None
        return (
            "scores on this questionnaire can differ by up to about "
            f"{_points(self.error.reliable_change)} between two occasions even when nothing "
            "has really changed"
        )

    def floor(self) -> str:
        """Why a small improvement could not be shown, when the baseline leaves no room."""
        room = abs(self.best - self.baseline)
        reliable = self.error.reliable_change
        if room == 0:
            return f" Your first score, {_number(self.baseline)}, was already the best possible."
        if reliable is not None and room < reliable:
            return (
                f" Your first score, {_number(self.baseline)}, leaves room for at most "
                f"{_points(room)} of improvement, so even a real improvement could not be told "
                "apart from day-to-day variation on this questionnaire."
            )
        return ""

    def overall(self, category: Category) -> str:
        moved = self.moved()
        if category == "cannot be judged":
            return (
                f"{moved} How much scores on this questionnaire move without any real change "
                "has not been published, so we cannot tell whether this is a real change."
            )
        if category == "reliably improved":
            return f"{moved} {self.noise().capitalize()}, so this is a real improvement."
        if category == "reliably worse":
            return f"{moved} {self.noise().capitalize()}, so this is a real worsening."
        if category == "improved but within measurement error":
            return (
                f"{moved} This is an improvement, but {self.noise()}, so we cannot yet be sure "
                f"it is real.{self.floor()}"
            )
        floor = self.floor() if self.improvement >= 0 else ""
        return (
            f"{moved} {self.noise().capitalize()}, so this is not a real change either way.{floor}"
        )

    def threshold(self, definition: Definition, needed: float, met: bool, category: str) -> str:
        if definition.kind == "percent":
            asked = (
                f"The trial report counts an improvement of at least "
                f"{_number(definition.threshold)}% of the first score as meaningful "
                f"(here {_points(needed)})."
            )
        else:
            asked = (
                f"The trial report counts an improvement of at least {_points(needed)} "
                "as meaningful."
            )
        if self.improvement > 0:
            yours = f"Your improvement is {_points(self.improvement)}"
        elif self.improvement < 0:
            yours = f"Your score got worse by {_points(-self.improvement)}"
        else:
            yours = "Your score did not change"
        if definition.kind == "percent" and self.baseline == 0:
            return (
                f"{asked} Your first score was 0, so there was nothing to improve by a percentage."
            )
        if category == "cannot be judged":
            reach = "which reaches it" if met else "which does not reach it"
            return (
                f"{asked} {yours}, {reach}; how much this score moves without any real change "
                "has not been published, so we cannot tell whether it is real."
            )
        if category == "reliably improved":
            return f"{asked} {yours}, which reaches it and is beyond day-to-day variation."
        if category == "improved but within measurement error":
            return (
                f"{asked} {yours}, which reaches it, but {self.noise()}, so we cannot yet be "
                "sure it is real."
            )
        if category == "reliably worse":
            return f"{asked} {yours}, more than day-to-day variation: a real worsening."
        if self.improvement > 0:
            return f"{asked} {yours}, which does not reach it."
        return f"{asked} {yours}."
