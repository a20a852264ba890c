"""lumbar starts fast: the commands that do not analyse import none of the analysis' packages.

Each check runs ``lumbar.cli`` in a fresh interpreter (``python -c``), so nothing another test
imported counts, and lists which of the heavy packages the command loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lumbar.cli import app

pytestmark = pytest.mark.integration

HEAVY = ("pandas", "matplotlib", "numba", "statsmodels", "scipy", "numpy")
"""What only analysing commands may import: each costs a good part of a second to load."""

PROBE = """
import json, sys
import lumbar.cli
try:
    status = lumbar.cli.app({args!r}, standalone_mode=False)
except SystemExit as exit_:
    status = exit_.code
print(json.dumps({{"status": status, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _heavy_loaded(args: list[str]) -> list[str]:
    """The heavy packages loaded by running ``lumbar ARGS`` in a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    assert reply["status"] in (0, None), run.stdout + run.stderr
    loaded: list[str] = reply["heavy"]
    return loaded


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["site", "add", "--help"],
        ["due", "--help"],
        # The analysing commands' help is light too: they import what they run when they run.
        ["analyze", "--help"],
        ["report", "--help"],
        ["meta", "--help"],
        ["power", "--help"],
    ],
    ids=" ".join,
)
def test_starting_lumbar_imports_no_analysis_package(args: list[str]) -> None:
    assert _heavy_loaded(args) == []


@pytest.fixture(scope="module")
def trial_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("startup")
    url = f"sqlite:///{folder / 'trial.db'}"
    key = folder / "trial.db.key"
    result = CliRunner().invoke(app, ["init", "massage-clbp", "--db", url, "--key-file", str(key)])
    assert result.exit_code == 0, result.output
    return url, key


def test_site_add_and_due_import_no_analysis_package(trial_file: tuple[str, Path]) -> None:
    url, key = trial_file
    common = ["--db", url, "--key-file", str(key), "--as", "admin"]
    assert _heavy_loaded(["site", "add", "SEA", "Seattle", *common]) == []
    assert _heavy_loaded(["due", *common]) == []


def test_the_check_sees_an_analysing_command_load_them() -> None:
    loaded = _heavy_loaded(["power", "--difference", "0.5", "--sd", "1"])
    assert {"numpy", "scipy"} <= set(loaded)


def test_names_kept_in_the_cli_for_its_help_agree_with_the_packages() -> None:
    from lumbar import design, synthesis
    from lumbar.analysis import STRUCTURES
    from lumbar.cli import analysis as analyze_command
    from lumbar.cli import design as power_command
    from lumbar.cli import meta as meta_command

    assert tuple(STRUCTURES) == analyze_command.COVARIANCES
    assert meta_command.MEASURES == synthesis.MEASURES
    assert meta_command.METHODS == synthesis.METHODS
    assert meta_command.SHIPPED_NAME == synthesis.SHIPPED
    assert power_command.DEFAULT_ALPHA == design.DEFAULT_ALPHA
    assert power_command.DEFAULT_POWER == design.DEFAULT_POWER
