"""The three reference datasets as lumbar :class:`TrialData`, mapped as the R scripts map them.

tests/reference/lib/datasets.R holds the same mappings for R; the data and their
sources are described in tests/reference/data/README.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from lumbar.analysis import Columns, TrialData

__all__ = ["DATA", "DATASETS", "REFERENCE", "load"]

REFERENCE = Path(__file__).resolve().parents[1] / "reference"
"""tests/reference: the R scripts and the JSON files they write."""
DATA = REFERENCE / "data"

DATASETS = ("fev", "acupuncture", "synthetic")


def fev() -> TrialData:
    """fev_data (openpharma/mmrm): FEV1 by ARMCD (PBO reference) at VIS1..VIS4."""
    frame = pd.read_csv(DATA / "fev_data.csv")
    return TrialData.from_frame(
        frame,
        Columns(
            outcome="FEV1",
            participant="USUBJID",
            arm="ARMCD",
            visit="AVISIT",
            baseline="FEV1_BL",
            covariates=("RACE", "SEX"),
            reference="PBO",
            visits=("VIS1", "VIS2", "VIS3", "VIS4"),
        ),
    )


def acupuncture() -> TrialData:
    """Vickers' acupuncture trial: headache score at 3 and 12 months, control reference."""
    frame = pd.read_csv(DATA / "acupuncture.csv")
    frame["arm"] = frame["treat"].map({1: "control", 2: "acupuncture"})
    if frame["arm"].isna().any():
        raise ValueError("acupuncture.csv: treat is not 1 or 2 in some rows")
    frame["time"] = frame["time"].astype(str)
    return TrialData.from_frame(
        frame,
        Columns(
            outcome="head",
            participant="id",
            arm="arm",
            visit="time",
            baseline="head_base",
            covariates=("age", "sex", "migraine", "chronicity"),
            reference="control",
            visits=("3", "12"),
        ),
    )


def synthetic() -> TrialData:
    """The synthetic three-arm back-pain trial: RDQ, usual_care reference."""
    frame = pd.read_csv(DATA / "synthetic_clbp.csv")
    return TrialData.from_frame(
        frame,
        Columns(
            outcome="rdq",
            participant="participant",
            arm="arm",
            visit="visit",
            baseline="rdq_baseline",
            covariates=("age", "sex"),
            reference="usual_care",
            visits=("week_10", "week_26", "week_52"),
        ),
    )


@cache
def load(name: str) -> TrialData:
    """The dataset called ``name`` (one of :data:`DATASETS`), built once per session."""
    builders = {"fev": fev, "acupuncture": acupuncture, "synthetic": synthetic}
    return builders[name]()
