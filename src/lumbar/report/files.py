"""Every results file lumbar writes, written one way: JSON, stamped CSV tables, figures.

:class:`ResultsFolder` is the one writer behind ``lumbar analyze``, ``lumbar meta``,
``lumbar power``, the report and the demo:

- ``results.json`` (or another JSON document) through :func:`json_ready`: NumPy
  numbers become Python's, NaN, infinity and missing become ``null``;
- one CSV per table, opening with ``#`` lines of provenance (read them with
  ``pandas.read_csv(path, comment="#")`` or R's ``read.csv(path, comment.char = "#")``);
  for synthetic data the first says so (:func:`lumbar.formatting.synthetic_stamp`);
- each figure as SVG and PNG, marked :data:`lumbar.formatting.SYNTHETIC` when the
  data are synthetic (the same mark, in the same place, on every figure).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lumbar import __version__
from lumbar.analysis.plan import RESULTS_FORMAT, OutcomeAnalysis
from lumbar.analysis.results import Provenance
from lumbar.formatting import synthetic_stamp
from lumbar.report.figures import Figure

__all__ = ["ResultsFolder", "json_ready", "provenance_stamp", "write_csv", "write_results"]


class ResultsFolder:
    """A folder of results being written; remembers every file, tables and figures apart.

    Every CSV opens with the synthetic note (when ``synthetic``), ``# lumbar VERSION``
    and the folder's ``stamp`` lines; every figure is marked when ``synthetic``.
    """

    def __init__(self, folder: Path, *, synthetic: bool, stamp: Sequence[str] = ()) -> None:
        self.folder = folder
        self.synthetic = synthetic
        self.stamp = [*synthetic_stamp(synthetic), f"# lumbar {__version__}", *stamp]
        self.tables: list[Path] = []
        """JSON documents and CSV tables, in the order written."""
        self.figures: list[Path] = []
        """SVG and PNG files, in the order written."""
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def written(self) -> list[Path]:
        return [*self.tables, *self.figures]

    def json(self, name: str, document: Mapping[str, Any]) -> Path:
        """``document`` as ``name`` (e.g. ``results.json``), indented, strict JSON."""
        path = self.folder / name
        text = json.dumps(json_ready(document), indent=2, allow_nan=False) + "\n"
        path.write_text(text, encoding="utf-8")
        self.tables.append(path)
        return path

    def table(self, name: str, frame: pd.DataFrame, stamp: Sequence[str] = ()) -> Path:
        """``frame`` as ``name``.csv, after the folder's stamp and ``stamp``'s lines."""
        path = write_csv(self.folder / f"{name}.csv", frame, [*self.stamp, *stamp])
        self.tables.append(path)
        return path

    def figure(self, figure: Figure) -> tuple[Figure, str]:
        """Write ``figure`` as SVG and PNG and close it; return it as written (marked, and its
        caption saying so, when the data are synthetic) and its SVG text, to inline."""
        drawn = figure.marked() if self.synthetic else figure
        try:
            svg = drawn.svg()
            svg_path = self.folder / f"{drawn.name}.svg"
            svg_path.write_text(svg, encoding="utf-8")
            png_path = self.folder / f"{drawn.name}.png"
            png_path.write_bytes(drawn.png())
        finally:
            drawn.close()
        self.figures += [svg_path, png_path]
        return drawn, svg


def write_results(
    folder: ResultsFolder,
    analyses: Sequence[OutcomeAnalysis],
    *,
    extra: Mapping[str, Any] | None = None,
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
) -> None:
    """The pre-specified analysis into ``folder``: results.json (``lumbar_results`` format
    :data:`~lumbar.analysis.plan.RESULTS_FORMAT`, schema in docs/analysis.md, with
    ``extra``'s keys beside the outcomes) and one CSV per table, each outcome's stamped
    with its provenance (data and protocol hashes, seed, options)."""
    document: dict[str, Any] = {
        "lumbar_results": RESULTS_FORMAT,
        "lumbar_version": __version__,
        "outcomes": {analysis.outcome: analysis.to_dict() for analysis in analyses},
    }
    document.update(extra or {})
    folder.json("results.json", document)
    for analysis in analyses:
        stamp = provenance_stamp(analysis.provenance)
        for name, table in analysis.tables().items():
            folder.table(name, table, stamp)
    for name, table in (extra_tables or {}).items():
        folder.table(name, table)


def provenance_stamp(provenance: Provenance) -> list[str]:
    """The ``#`` lines of a result's provenance, for the top of its CSV files."""
    options = json.dumps(json_ready(provenance.options), sort_keys=True)
    return [
        f"# data sha256 {provenance.data_hash}",
        f"# protocol sha256 {provenance.protocol_hash or '-'}",
        f"# seed {provenance.seed}",
        f"# options {options}",
    ]


def write_csv(path: Path, table: pd.DataFrame, stamp: Sequence[str]) -> Path:
    """``table`` as CSV after ``stamp``'s comment lines (read with comment="#")."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        if stamp:
            handle.write("\n".join(stamp) + "\n")
        table.to_csv(handle, index=False)
    return path


def json_ready(value: Any) -> Any:
    """JSON-ready: numpy numbers to Python, NaN, infinity and missing to None, tuples to
    lists (every JSON document lumbar writes goes through it)."""
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value
