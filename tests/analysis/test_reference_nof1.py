"""lumbar's N-of-1 analysis against R: tests/reference/nof1.R wrote
tests/reference/nof1.json from the synthetic tests/reference/data/nof1.csv.

Per client: the pair differences, mean, SD and t CI (R's ``t.test(paired = TRUE)``)
agree to 1e-9 relative (closed form; R writes 15 significant digits); the exact
randomization counts are equal. Pooled: ``nlme::lme(d ~ 1, random = ~ 1 | client,
method = "REML")``'s fixed effect, SE, variance components and REML
log-likelihood agree to 1e-6 relative (both sides optimise iteratively). The CI
is compared with R's on (clients - 1) df, which lumbar uses; nlme's own df
(pairs - clients) is recorded but not used. The JSON is committed, so these
tests need no R.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from lumbar.analysis.nof1 import nof1_analysis, nof1_pooled
from tests.analysis.datasets import REFERENCE

pytestmark = pytest.mark.reference

R: dict[str, Any] = json.loads((REFERENCE / "nof1.json").read_text("utf-8"))
DATA = pd.read_csv(REFERENCE / "data" / "nof1.csv")


def test_reference_covers_every_client() -> None:
    assert [c["client"] for c in R["clients"]] == sorted(DATA["client"].unique())


@pytest.mark.parametrize("index", range(len(R["clients"])), ids=[c["client"] for c in R["clients"]])
def test_single_client_matches_r(index: int) -> None:
    theirs = R["clients"][index]
    mine = nof1_analysis(DATA[DATA["client"] == theirs["client"]].drop(columns="client"))
    assert list(mine.pairs) == theirs["pairs"]
    assert list(mine.differences) == pytest.approx(theirs["differences"], rel=1e-9)
    assert (mine.mean_difference, mine.sd, mine.lower, mine.upper) == pytest.approx(
        (theirs["mean_difference"], theirs["sd"], theirs["lower"], theirs["upper"]), rel=1e-9
    )
    assert mine.df == theirs["df"]
    assert (mine.as_extreme, mine.patterns) == (theirs["as_extreme"], theirs["patterns"])
    assert mine.p_value == theirs["p_value"]


def test_pooled_matches_nlme_reml() -> None:
    theirs = R["pooled"]
    mine = nof1_pooled(DATA)
    assert (mine.clients, mine.pairs, mine.df) == (theirs["clients"], theirs["pairs"], theirs["df"])
    for name in ("mu", "se", "lower", "upper", "tau2", "sigma2", "log_likelihood"):
        assert getattr(mine, name) == pytest.approx(theirs[name], rel=1e-6), name
