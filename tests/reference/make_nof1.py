"""Write tests/reference/data/nof1.csv: SYNTHETIC N-of-1 series of 6 made-up clients for
tests/reference/nof1.R.

One row per period: ``client``, ``pair`` (1..pairs), ``condition`` (massage or
none, in the order drawn by :func:`lumbar.analysis.nof1.nof1_plan`) and
``score``, the period's mean 0-10 rating rounded to 0.1. Clients have 4 to 6
pairs; each has a true benefit drawn around 1.2 points (between-client SD 0.8)
and a within-client SD of the pair differences near 1. Deterministic (seed
20261208); no real person is in it. Run from the repository root:
``PYTHONPATH=src python tests/reference/make_nof1.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lumbar.analysis.nof1 import nof1_plan

SEED = 20261208
PAIRS = (4, 5, 6, 4, 6, 5)
OUTPUT = Path(__file__).parent / "data" / "nof1.csv"


def make() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    rows: list[dict[str, object]] = []
    for index, pairs in enumerate(PAIRS):
        client = f"synthetic-{index + 1:02d}"
        benefit = rng.normal(1.2, 0.8)
        level = rng.uniform(4, 7)
        plan = nof1_plan(pairs, 7, SEED + index)
        for period in plan.periods:
            noise = rng.normal(0, 0.7)
            score = level + noise - (benefit if period.condition == "massage" else 0)
            rows.append(
                {
                    "client": client,
                    "pair": period.pair,
                    "condition": period.condition,
                    "score": round(float(np.clip(score, 0, 10)), 1),
                }
            )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    make().to_csv(OUTPUT, index=False)
