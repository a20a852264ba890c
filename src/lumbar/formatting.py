"""How lumbar writes numbers and marks synthetic data, for every place it shows them.

The terminal, the HTML report (and its PDF), the figures and the files format
numbers here and nowhere else, so a difference reads the same in the summary,
in a table and on a forest plot:

- numbers have a fixed number of decimals and a true minus sign (U+2212,
  :data:`MINUS`, as journals set it), and zero never shows a sign;
- p-values have three decimals, below 0.001 shown as "<0.001";
- a missing or not finite value is "-".

Synthetic data are marked one way: :data:`SYNTHETIC` on figures and in short
labels, :data:`SYNTHETIC_NOTE` as the first line of every CSV (after ``#``), of
the terminal output and of the HTML banner.

    >>> number(-3.16355) == MINUS + "3.16", number(-0.001), number(None)
    (True, '0.00', '-')
    >>> interval(-4.1, -2.25, 1).replace(MINUS, "-"), p_value(0.0004), p_sentence(0.0312)
    ('-4.1 to -2.2', '<0.001', 'p = 0.031')
    >>> percent(0.125), percent(0.125, 1)
    ('12%', '12.5%')
"""

from __future__ import annotations

import math
from numbers import Real

__all__ = [
    "MINUS",
    "MISSING",
    "SYNTHETIC",
    "SYNTHETIC_COLOUR",
    "SYNTHETIC_NOTE",
    "interval",
    "number",
    "p_sentence",
    "p_value",
    "percent",
    "synthetic_stamp",
]

MINUS = "\N{MINUS SIGN}"
MISSING = "-"
"""What a missing or not finite value shows as."""

P_FLOOR = 0.001
"""p-values below this show as "<0.001" (three decimals, as CONSORT-style tables print them)."""

SYNTHETIC = "SYNTHETIC DATA"
"""The mark on every figure, table and page made from simulated participants."""
SYNTHETIC_NOTE = f"{SYNTHETIC}: simulated participants, not a real trial"
"""The sentence that opens every file and output made from simulated participants."""
SYNTHETIC_COLOUR = "#b3261e"


def _finite(value: object) -> float | None:
    if value is None or not isinstance(value, Real):
        return None
    number_ = float(value)
    return number_ if math.isfinite(number_) else None


def number(value: float | None, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals and a true minus sign; "-" when missing."""
    finite = _finite(value)
    if finite is None:
        return MISSING
    text = f"{finite:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # "-0.00" is zero
    return text.replace("-", MINUS)


def interval(lower: float | None, upper: float | None, digits: int = 2) -> str:
    """A confidence or prediction interval: "LOWER to UPPER"."""
    return f"{number(lower, digits)} to {number(upper, digits)}"


def p_value(p: float | None) -> str:
    """A p-value for a table: "0.031", "<0.001", or "-" when missing."""
    finite = _finite(p)
    if finite is None:
        return MISSING
    if finite < P_FLOOR:
        return f"<{P_FLOOR:g}"
    return f"{finite:.3f}"


def p_sentence(p: float | None) -> str:
    """A p-value for a sentence: "p = 0.031" or "p < 0.001"."""
    text = p_value(p)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def percent(share: float | None, digits: int = 0) -> str:
    """A share (0.125) as a percentage ("12%", or "12.5%" with one digit)."""
    finite = _finite(share)
    if finite is None:
        return MISSING
    return f"{100 * finite:.{digits}f}%"


def synthetic_stamp(synthetic: bool) -> list[str]:
    """The first lines of a CSV file lumbar writes: the synthetic note, when synthetic."""
    return [f"# {SYNTHETIC_NOTE}"] if synthetic else []
