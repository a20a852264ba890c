"""Questionnaires: definitions, answer checking and scoring (pure; no I/O but reading files).

The registry :data:`INSTRUMENTS` holds every instrument lumbar ships;
:func:`score_answers` checks a participant's answers and scores them;
:func:`load_wording` reads licensed item wording a user supplies.
"""

from lumbar.instruments.model import (
    Direction,
    Gate,
    Instrument,
    Item,
    MeasurementProperties,
    Option,
    Reference,
    Response,
    Score,
    Wording,
)
from lumbar.instruments.registry import INSTRUMENTS, Registry, get_instrument
from lumbar.instruments.scoring import Answer, Scores, ScoreValue, check_answers, score_answers
from lumbar.instruments.wording import apply_wording, load_wording

__all__ = [
    "INSTRUMENTS",
    "Answer",
    "Direction",
    "Gate",
    "Instrument",
    "Item",
    "MeasurementProperties",
    "Option",
    "Reference",
    "Registry",
    "Response",
    "Score",
    "ScoreValue",
    "Scores",
    "Wording",
    "apply_wording",
    "check_answers",
    "get_instrument",
    "load_wording",
    "score_answers",
]
