"""What every analysis result carries: its provenance.

Results are frozen. Each has ``to_frame()`` (a DataFrame), ``to_dict()``
(JSON-ready) and a readable ``str()``; the numerical kernels are plain functions.
Estimates with their intervals are :mod:`lumbar.estimates` (shared with synthesis).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Provenance"]


@dataclass(frozen=True)
class Provenance:
    """Where a result came from, so it can be reproduced exactly."""

    lumbar_version: str
    data_hash: str
    protocol_hash: str | None
    options: dict[str, Any]
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
