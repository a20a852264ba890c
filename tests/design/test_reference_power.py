"""lumbar's analytic sample size and power against R: tests/reference/power.R wrote power.json.

Each case gives its inputs and R's answer: the smallest whole number analysed
per reference arm reaching the target power (exactly equal), and the power at
that size or at a given size (to 1e-6 absolute). The t-test cases are R's own
``power.t.test(strict = TRUE)``; the ANCOVA cases are Borm et al.'s rule written
with ``power.t.test``, and the exact ANCOVA power integrated with ``integrate``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from lumbar.design import PowerCalculation, power_ancova, sample_size_ancova

pytestmark = pytest.mark.reference

POWER_TOLERANCE = 1e-6
REFERENCE = Path(__file__).resolve().parents[1] / "reference"
R: dict[str, Any] = json.loads((REFERENCE / "power.json").read_text("utf-8"))


def _lumbar(case: dict[str, Any]) -> PowerCalculation:
    options: dict[str, Any] = {
        "baseline_correlation": case["baseline_correlation"],
        "alpha": case["alpha"],
        "two_sided": case["two_sided"],
        "arms": case["arms"],
        "allocation_ratio": case["allocation_ratio"],
        "multiplicity": case["multiplicity"],
        "method": "exact" if case["method"] == "exact" else "borm",
    }
    if case["solve"] == "n":
        return sample_size_ancova(
            case["difference"], case["sd"], power=case["target_power"], **options
        )
    return power_ancova(case["n_per_arm"], case["difference"], case["sd"], **options)


@pytest.mark.parametrize("case", R["cases"], ids=[case["id"] for case in R["cases"]])
def test_sample_size_and_power_match_r(case: dict[str, Any]) -> None:
    result = _lumbar(case)
    assert result.analysed_reference == case["n"]
    assert result.power == pytest.approx(case["power"], abs=POWER_TOLERANCE)
    if "n_power_t_test" in case:  # power.t.test's own root, rounded up (+1 for Borm)
        assert result.analysed_reference == case["n_power_t_test"]
    if "power_t_test" in case:
        assert result.power == pytest.approx(case["power_t_test"], abs=POWER_TOLERANCE)


def test_textbook_example_is_64_per_arm() -> None:
    # power.t.test(delta = 0.5, sd = 1, power = 0.8): n = 63.77 -> 64 per arm.
    textbook = R["textbook"]
    assert textbook["n_raw"] == pytest.approx(63.77, abs=0.005)
    result = sample_size_ancova(0.5, 1.0, power=0.8)
    assert result.randomized_per_arm == (textbook["n"], textbook["n"]) == (64, 64)
    assert result.randomized_total == 128


def test_the_reference_grid_covers_every_method_and_both_questions() -> None:
    kinds = {(case["method"], case["solve"]) for case in R["cases"]}
    assert kinds == {(m, s) for m in ("t", "borm", "exact") for s in ("n", "power")}
    assert any(not case["two_sided"] for case in R["cases"])
    assert any(case["arms"] > 2 for case in R["cases"])
    assert any(case["allocation_ratio"] != 1 for case in R["cases"])
    assert any(case["multiplicity"] == "bonferroni" for case in R["cases"])
    assert all(math.isfinite(case["power"]) for case in R["cases"])
