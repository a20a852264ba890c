"""lumbar's exceptions: one tree, so a caller catches exactly what it can handle.

::

    LumbarError                 anything lumbar refuses; the message says what to do
    ├── ProtocolError           a protocol file or object breaks a rule
    ├── InstrumentError         an unknown instrument, or a wording file that does not fit one
    ├── AnswerError             an answer breaks its item's or screening question's rule
    ├── OperationError          a trial operation is refused (wrong state, unknown id, bad input)
    │   └── AccessError         the acting user's role, sites or blinding do not allow it
    ├── StoreError              the database or its key cannot be used as asked
    ├── AnalysisError           data that cannot be analysed as asked (a column, a level, a visit)
    │   └── ConvergenceError    a model did not converge: no estimate is returned
    ├── DesignError             a sample-size, power or simulation assumption breaks a rule
    └── SynthesisError          study-level data that cannot be pooled as asked

Every error carries ``problems``: one :class:`Problem` per broken rule, each naming
where (a field path, an instrument item, a screening question), the value received,
the rule, and what to try. The message lists them all, so one run shows every
mistake in a file instead of the first one only.

The CLI translates a ``LumbarError`` into exit status 2 in one place; the web
app (later) translates it into one JSON error shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_SHOWN_PROBLEMS",
    "AccessError",
    "AnalysisError",
    "AnswerError",
    "ConvergenceError",
    "InstrumentError",
    "LumbarError",
    "OperationError",
    "Problem",
    "ProtocolError",
    "StoreError",
]

_MISSING = object()
_MAX_SHOWN_VALUE = 60
_LONG_INTEGER_BITS = 200
"""Integers longer than this (about 60 digits) are shown by their length, not their digits."""

MAX_SHOWN_PROBLEMS = 20
"""Problems a message lists before it only counts the rest: about a screenful (two or
three lines each). Fixing the first few often fixes many more, and a file with
thousands of mistakes is better checked again than scrolled."""


@dataclass(frozen=True)
class Problem:
    """One broken rule: where, what was received, the rule, and what to try."""

    where: str
    rule: str
    received: object = _MISSING
    hint: str = ""
    line: int | None = None
    path: tuple[str | int, ...] = ()
    """The location as keys and list indexes, when the problem is in a document."""

    @property
    def has_value(self) -> bool:
        return self.received is not _MISSING

    def describe(self, source: str | None = None) -> str:
        place = self.where
        if source is not None and self.line is not None:
            place = f"{source}:{self.line}: {self.where}"
        elif source is not None:
            place = f"{source}: {self.where}"
        text = f"{place}: {self.rule}"
        if self.has_value:
            text += f" (received {shown(self.received)})"
        if self.hint:
            text += f"\n    what to do: {self.hint}"
        return text

    def with_line(self, line: int | None) -> Problem:
        return Problem(self.where, self.rule, self.received, self.hint, line, self.path)


def shown(value: object) -> str:
    """A short, unambiguous rendering of a received value for an error message."""
    if isinstance(value, int) and value.bit_length() > _LONG_INTEGER_BITS:
        # Python refuses repr() of an integer beyond 4,300 digits (and it would be unreadable).
        return f"a number of {_digits(value):,} digits"
    text = repr(value)
    if len(text) > _MAX_SHOWN_VALUE:
        text = text[: _MAX_SHOWN_VALUE - 3] + "..."
    return text


def _digits(value: int) -> int:
    """How many decimal digits ``value`` has, without converting it to text."""
    magnitude = abs(value)
    digits = int(math.log10(magnitude)) + 1
    if 10 ** (digits - 1) > magnitude:  # log10 rounded up across a power of ten
        digits -= 1
    elif 10**digits <= magnitude:
        digits += 1
    return digits


class LumbarError(Exception):
    """Base of every error lumbar raises on purpose."""

    def __init__(self, summary: str, problems: Iterable[Problem] = (), source: str | None = None):
        self.summary = summary
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        if not self.problems:
            return self.summary
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{self.summary} ({count:,} {noun}):"]
        shown_problems = self.problems[:MAX_SHOWN_PROBLEMS]
        lines.extend(f"  {problem.describe(self.source)}" for problem in shown_problems)
        if count > len(shown_problems):
            lines.append(
                f"  ... and {count - len(shown_problems):,} more not shown; "
                "fix these and check again"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class ProtocolError(LumbarError):
    """A protocol file or object breaks a rule of the protocol format."""


class InstrumentError(LumbarError):
    """An instrument name that is not in the registry, or a wording file that does not fit."""


class AnswerError(LumbarError):
    """An answer to an instrument item or screening question breaks the item's rule.

    Raised before anything is scored or stored: a questionnaire is accepted whole
    or not at all.
    """


class OperationError(LumbarError):
    """A trial operation is refused: nothing was written.

    For example randomizing someone twice, enrolling an ineligible person, or
    naming a participant who does not exist.
    """


class AccessError(OperationError):
    """The acting user may not do this: their role, sites or blinding forbid it."""


class StoreError(LumbarError):
    """The trial database or its key cannot be used as asked (nothing was changed)."""


class AnalysisError(LumbarError):
    """Data that cannot be analysed as asked: a missing column, a non-numeric outcome,
    an arm with no participants, a visit with no data."""


class ConvergenceError(AnalysisError):
    """A model's fit did not converge; lumbar returns no estimate rather than a wrong one."""


class DesignError(LumbarError):
    """Assumptions of a sample-size, power or simulation calculation break a rule."""


class SynthesisError(LumbarError):
    """Study-level data that cannot be turned into effect sizes or pooled as asked: an
    impossible summary (a negative SD, n < 2), a missing column, too few studies."""
