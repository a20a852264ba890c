"""Write tests/reference/data/early_response.csv: SYNTHETIC session ratings of 60 made-up
participants for tests/reference/early_response.R.

One row per participant: the 0-10 rating before session 1 (``baseline``) and
before session 2 (``rating``), whether they responded at the primary timepoint
(``responder``; responders improve more by session 2, on average 2.5 against 0.8
points) and a cross-validation fold 0..4 drawn by lumbar's stratified folds, so
that R can reproduce the cross-validation. Deterministic (seed 20261210, chosen
so that the five training folds pick different thresholds and the in-sample
optimism shows); no real person is in it. Run from the repository root:
``PYTHONPATH=src python tests/reference/make_early_response.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lumbar.analysis.early_response import _folds

SEED = 20261210
FOLD_SEED = 7
PARTICIPANTS = 60
FOLDS = 5
OUTPUT = Path(__file__).parent / "data" / "early_response.csv"


def make() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    baseline = rng.integers(4, 11, PARTICIPANTS)
    responder = rng.random(PARTICIPANTS) < 0.45
    drop = np.where(
        responder, rng.normal(2.5, 1.5, PARTICIPANTS), rng.normal(0.8, 1.5, PARTICIPANTS)
    )
    rating = np.clip(np.round(baseline - drop), 0, 10).astype(int)
    return pd.DataFrame(
        {
            "participant": [f"synthetic-{i:03d}" for i in range(1, PARTICIPANTS + 1)],
            "baseline": baseline,
            "rating": rating,
            "responder": np.where(responder, "TRUE", "FALSE"),
            "fold": _folds(~responder, FOLDS, FOLD_SEED),
        }
    )


if __name__ == "__main__":
    make().to_csv(OUTPUT, index=False)
