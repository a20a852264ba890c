"""The registry: instruments by name, with helpful errors for names that do not exist."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from lumbar.errors import InstrumentError, Problem
from lumbar.instruments.catalogue import CATALOGUE
from lumbar.instruments.model import Instrument

__all__ = ["INSTRUMENTS", "Registry", "get_instrument"]


class Registry:
    """An immutable collection of instruments keyed by name."""

    def __init__(self, instruments: Iterable[Instrument]):
        by_name: dict[str, Instrument] = {}
        for instrument in instruments:
            if instrument.name in by_name:
                raise InstrumentError(f"two instruments are named {instrument.name!r}")
            by_name[instrument.name] = instrument
        self._by_name = by_name

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def get(self, name: str) -> Instrument:
        """The instrument called ``name``; InstrumentError with suggestions otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise InstrumentError(
                "unknown instrument",
                [Problem("instrument", "is not in the registry", name, hint=self.suggest(name))],
            ) from None

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3)
        known = ", ".join(self.names())
        if close:
            return f"did you mean {' or '.join(close)}? The instruments are: {known}"
        return f"the instruments are: {known} (see 'lumbar instruments list')"

    def with_instrument(self, instrument: Instrument) -> Registry:
        """A new registry with one more instrument (for a site's own questionnaire)."""
        return Registry([*self, instrument])


INSTRUMENTS = Registry(CATALOGUE)
"""Every instrument lumbar ships."""


def get_instrument(name: str) -> Instrument:
    """The shipped instrument called ``name``."""
    return INSTRUMENTS.get(name)
