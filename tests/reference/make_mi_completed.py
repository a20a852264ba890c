"""Write tests/reference/data/mi_completed_synthetic.csv: lumbar's completed data sets.

Five imputations (predictive mean matching, seed 7) of the SYNTHETIC trial in
synthetic_clbp.csv. tests/reference/pool.R pools ANCOVA fits on exactly these
data sets with mice::pool, so Rubin's rules are compared on the same inputs.
Run from the repository root: ``python -m tests.reference.make_mi_completed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tests.analysis import datasets

from lumbar.analysis.imputation import impute

if __name__ == "__main__":
    data = datasets.load("synthetic")
    completed = impute(data, m=5, method="pmm", rng=np.random.default_rng(7))
    frames = []
    kept = ["participant", "arm", "visit", "y", "baseline", "age", "sex", "imputed"]
    for number, completed_frame in enumerate(completed, start=1):
        frame = completed_frame[kept].copy()
        frame.insert(0, "imputation", number)
        frames.append(frame)
    target = datasets.DATA / "mi_completed_synthetic.csv"
    pd.concat(frames).to_csv(target, index=False, float_format="%.17g")
    print(f"wrote {target}")
