"""Reading what a user gives: a long data file, a study table.

Files are read here, once, with errors that name the file and say what to give.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lumbar.errors import AnalysisError, Problem
from lumbar.synthesis import shipped_studies

__all__ = ["SHIPPED_SOURCE", "published_studies", "read_table"]

SHIPPED_SOURCE = "shipped"
"""The study source that names lumbar's own table of massage trials."""


def read_table(path: Path, what: str = "the data") -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame, with a clear error when it cannot be read.

    A CSV may open with ``#`` lines (the provenance stamps lumbar writes); a ``#`` later
    on is data (a label such as "Smith 2001 #2"), not a comment.
    """
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        with path.open(encoding="utf-8-sig") as handle:
            stamps = 0
            for line in handle:
                if not line.startswith("#"):
                    break
                stamps += 1
        return pd.read_csv(path, skiprows=stamps, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise AnalysisError(
            f"cannot read {what}",
            [Problem(str(path), str(error), hint="give a CSV (UTF-8) or Parquet file")],
        ) from None


def published_studies(source: str) -> pd.DataFrame:
    """A study table: :data:`SHIPPED_SOURCE` for lumbar's massage trials, else a CSV or
    Parquet file with an ``outcome`` column (see ``lumbar meta``)."""
    if source == SHIPPED_SOURCE:
        return shipped_studies()
    return read_table(Path(source), "the studies")
