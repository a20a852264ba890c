"""``lumbar power``, run in-process as a user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from lumbar.cli import app

pytestmark = pytest.mark.integration

runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, ["power", *args])


def test_reproduces_the_textbook_sample_size() -> None:
    # R: power.t.test(delta = 0.5, sd = 1, power = 0.8) -> n = 63.77, 64 per arm.
    result = run("--difference", "0.5", "--sd", "1")
    assert result.exit_code == 0, result.output
    assert "two-sample t test" in result.output
    assert "64 participants analysed per arm (128 in total)" in result.output
    assert "0.8015" in result.output


def test_ancova_with_dropout_and_three_arms() -> None:
    result = run(
        "--difference",
        "2",
        "--sd",
        "5",
        "--correlation",
        "0.55",
        "--dropout",
        "0.12",
        "--arms",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "ANCOVA adjusted for baseline, borm" in result.output
    assert "243 participants are randomized (81, 81, 81 per arm)" in result.output


def test_power_for_a_given_size() -> None:
    result = run("--difference", "0.5", "--sd", "1", "--n", "64")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Power: two-sample t test")
    assert "80.1% power" in result.output


def test_scenarios_are_every_combination() -> None:
    result = run("--difference", "2", "--difference", "3", "--sd", "5", "--correlation", "0.5")
    assert result.exit_code == 0, result.output
    assert "difference 2, SD 5, r 0.5, dropout 0%" in result.output
    assert "difference 3, SD 5, r 0.5, dropout 0%" in result.output


def test_protocol_supplies_the_difference_arms_and_alpha() -> None:
    result = run("--protocol", "massage-clbp", "--sd", "5", "--correlation", "0.55")
    assert result.exit_code == 0, result.output
    assert "From protocol massage-clbp: outcome rdq_10, meaningful difference 2" in result.output
    assert "each of 2 comparisons" in result.output


def test_simulation_writes_the_tables_json_and_curve(tmp_path: Path) -> None:
    out = tmp_path / "power"
    result = run(
        "--difference",
        "2",
        "--sd",
        "5",
        "--correlation",
        "0.5",
        "--simulate",
        "--trials",
        "400",
        "--seed",
        "3",
        "--n-from",
        "30",
        "--n-to",
        "90",
        "--points",
        "3",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "Simulated power (400 trials per point, seed 3)" in result.output
    names = {path.name for path in out.iterdir()}
    assert names == {
        "power.json",
        "sample_size.csv",
        "simulated_power.csv",
        "power_curve.csv",
        "power_curve.png",
        "power_curve.svg",
    }
    document = json.loads((out / "power.json").read_text("utf-8"))
    assert document["analytic"][0]["randomized_per_arm"] == [76, 76]
    assert document["simulation"]["seed"] == 3
    assert sorted(document["simulation"]["n_per_arm"]) == [30, 60, 76, 90]
    curve = pd.read_csv(out / "power_curve.csv", comment="#")
    assert list(curve.columns) == ["n", "power", "scenario", "lower", "upper"]
    assert (out / "power_curve.png").read_bytes().startswith(b"\x89PNG")


def test_analytic_curve_without_simulation(tmp_path: Path) -> None:
    result = run("--difference", "0.5", "--sd", "1", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    curve = pd.read_csv(tmp_path / "power_curve.csv", comment="#")
    assert curve["n"].min() == 32
    assert curve["n"].max() == 96
    assert 64 in set(curve["n"])
    assert "simulation" in json.loads((tmp_path / "power.json").read_text("utf-8"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--difference", "0", "--sd", "5"], "--difference: must not be 0"),
        (["--difference", "2", "--sd", "0"], "--sd: must be greater than 0 (received 0.0)"),
        (
            ["--difference", "2", "--sd", "5", "--correlation", "1"],
            "--correlation: must be between -1 and 1, exclusive (received 1.0)",
        ),
        (["--difference", "2", "--sd", "5", "--power", "1"], "--power: must be between 0 and 1"),
        (["--difference", "2", "--sd", "5", "--dropout", "1"], "--dropout: must be at least 0"),
        (["--difference", "2", "--sd", "5", "--arms", "1"], "--arms: must be a whole number"),
        (["--sd", "5"], "--difference: is required"),
        (["--difference", "2", "--sd", "5", "--simulate"], "--correlation: is required with"),
        (["--difference", "2", "--sd", "5", "--outcome", "rdq_10"], "--outcome: is used only"),
        (
            [
                "--difference",
                "2",
                "--sd",
                "5",
                "--correlation",
                "0.5",
                "--simulate",
                "--trials",
                "0",
            ],
            "--trials: must be a whole number of at least 1",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_option_and_rule(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_every_problem_is_reported_at_once() -> None:
    result = run("--difference", "0", "--sd", "-1", "--dropout", "1.5")
    assert result.exit_code == 2
    assert "(3 problems)" in result.stderr
