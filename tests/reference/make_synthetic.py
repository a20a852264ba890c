"""Write tests/reference/data/synthetic_clbp.csv: a SYNTHETIC three-arm back-pain trial.

Made up, deterministically (seed 20261122), to exercise three arms, three
follow-up visits, covariates and dropout; no real person is in it. Run from the
repository root: ``python tests/reference/make_synthetic.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20261122
PARTICIPANTS = 180
VISITS = ("week_10", "week_26", "week_52")


def make() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    arms = np.array(["usual_care", "structural", "relaxation"])[np.arange(PARTICIPANTS) % 3]
    age = rng.integers(20, 65, PARTICIPANTS)
    sex = rng.choice(["female", "male"], PARTICIPANTS, p=[0.65, 0.35])
    baseline = np.clip(rng.normal(11.5, 4.5, PARTICIPANTS), 0, 24)
    effect = {
        "usual_care": (0.0, 0.0, 0.0),
        "structural": (-2.5, -2.0, -0.8),
        "relaxation": (-2.9, -2.2, -1.3),
    }
    covariance = np.array([[16.0, 10.0, 8.0], [10.0, 18.0, 11.0], [8.0, 11.0, 20.0]])
    noise = rng.multivariate_normal(np.zeros(3), covariance, PARTICIPANTS)
    rows = []
    for i in range(PARTICIPANTS):
        dropped = False
        for v, visit in enumerate(VISITS):
            mean = 3.0 + 0.55 * baseline[i] - 0.6 * v + effect[arms[i]][v] + 0.02 * (age[i] - 45)
            mean += 0.6 * (sex[i] == "female")
            value = mean + noise[i, v]
            # Dropout at random given the last observed value (MAR): higher scores leave more.
            if not dropped and v > 0 and rng.random() < 0.06 + 0.01 * max(value - 8, 0):
                dropped = True
            rows.append(
                {
                    "participant": f"SYN-{i + 1:04d}",
                    "arm": arms[i],
                    "visit": visit,
                    "age": int(age[i]),
                    "sex": sex[i],
                    "rdq_baseline": round(float(baseline[i]), 3),
                    "rdq": None if dropped else round(float(value), 3),
                    "synthetic": True,
                }
            )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    target = Path("tests/reference/data/synthetic_clbp.csv")
    make().to_csv(target, index=False)
    print(f"wrote {target}")
