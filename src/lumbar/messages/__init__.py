"""The message catalogue: every text a participant reads, by key.

::

    catalogue = Catalogue.load()                    # English, shipped as en.yaml here
    catalogue = Catalogue.load(Path("fr.yaml"))     # another language: the same keys
    catalogue.text("start.intro", count=3)

Both the participant pages (:mod:`lumbar.web.survey`) and the invitations and reminders
the worker sends (:mod:`lumbar.operations.outbox`) take their words from one
:class:`Catalogue`, so a second language is one file (``lumbar serve --messages FILE``,
``lumbar worker --messages FILE``). It lives outside ``lumbar.web`` because operations
may not import the web layer. A catalogue that lacks a key English has, or has a key
lumbar does not show, is refused when it is loaded, naming each key, so a server or a
worker stops at start rather than at the first participant who meets the gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lumbar._declared import read_text_limited
from lumbar.errors import LumbarError, Problem

__all__ = ["MESSAGES", "Catalogue"]

MESSAGES = Path(__file__).parent / "en.yaml"
"""The English catalogue shipped with lumbar."""


@dataclass(frozen=True)
class Catalogue:
    """The texts a participant reads, by key; ``text(key, **values)`` fills ``{name}``
    (a format spec works too: ``{closes:%d %B %Y}`` for a date)."""

    texts: Mapping[str, str]

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        """English, or the catalogue in ``path``, which must give every key English has."""
        english = _read_catalogue(MESSAGES)
        if path is None:
            return cls(english)
        other = _read_catalogue(path)
        missing = sorted(set(english) - set(other))
        unknown = sorted(set(other) - set(english))
        if missing or unknown:
            raise LumbarError(
                "the message catalogue does not match lumbar's",
                [Problem("key", "is missing", key, "copy it from en.yaml") for key in missing]
                + [Problem("key", "is not a message lumbar shows", key) for key in unknown],
                source=str(path),
            )
        return cls(other)

    @property
    def language(self) -> str:
        return self.texts["language"]

    def text(self, key: str, **values: object) -> str:
        return self.texts[key].format(**values)


def _read_catalogue(path: Path) -> dict[str, str]:
    try:
        loaded: Any = yaml.safe_load(read_text_limited(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LumbarError(
            "cannot read the message catalogue",
            [Problem("file", str(error), hint="a UTF-8 YAML file of key: text lines")],
            source=str(path),
        ) from None
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(text, str) for key, text in loaded.items()
    ):
        raise LumbarError(
            "the message catalogue is not a mapping of key to text",
            [Problem("file", "give one 'key: text' a line", hint="see lumbar's en.yaml")],
            source=str(path),
        )
    return dict(loaded)
