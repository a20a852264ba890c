"""The lumbar command, run in-process (and once as a real process) as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lumbar import __version__
from lumbar.application import read_table
from lumbar.cli import app
from lumbar.errors import LumbarError
from lumbar.instruments import INSTRUMENTS
from lumbar.protocol import Protocol, shipped_protocol, shipped_text

pytestmark = pytest.mark.integration

runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"lumbar {__version__} (protocol format 1)"


def test_check_accepts_the_shipped_protocol_and_summarises_it(
    reference_data: dict[str, Any], write_protocol: Callable[..., Path]
) -> None:
    path = write_protocol(reference_data)
    result = run("protocol", "check", str(path))
    assert result.exit_code == 0, result.output
    output = result.output
    assert f"{path}: valid lumbar protocol (format 1), trial massage-clbp version 1.0" in output
    for heading in (
        "Arms",
        "Visit schedule",
        "Instruments per visit",
        "Inclusion rules",
        "Exclusion rules",
        "Randomization",
        "Outcomes",
        "Pre-specified analysis",
    ):
        assert heading in output
    assert "10 x 60 min, weekly (first 90 min)" in output
    assert "age from 20 to 64 years" in output
    assert "63 to 91" in output  # the week-10 window
    assert shipped_protocol("massage-clbp").content_hash in output


def test_check_refuses_a_missing_file_with_exit_2(tmp_path: Path) -> None:
    result = run("protocol", "check", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "cannot read the protocol file" in result.output
    assert "nope.yaml" in result.output


def test_errors_go_to_stderr_not_stdout(tmp_path: Path) -> None:
    result = run("protocol", "check", str(tmp_path / "nope.yaml"))
    assert result.stdout == ""
    assert "error:" in result.stderr


def test_show_by_name() -> None:
    result = run("protocol", "show", "massage-clbp")
    assert result.exit_code == 0
    assert "Relaxation massage" in result.output
    assert "week_52" in result.output


def test_show_yaml_prints_the_source() -> None:
    result = run("protocol", "show", "massage-clbp", "--yaml")
    assert result.exit_code == 0
    assert result.output == shipped_text("massage-clbp")


def test_show_json_is_the_protocol(
    reference_data: dict[str, Any], write_protocol: Callable[..., Path]
) -> None:
    result = run("protocol", "show", str(write_protocol(reference_data)), "--json")
    assert result.exit_code == 0
    assert Protocol.model_validate(json.loads(result.output)) == shipped_protocol("massage-clbp")


def test_show_unknown_protocol_exits_2() -> None:
    result = run("protocol", "show", "no-such-trial")
    assert result.exit_code == 2
    assert "cannot read the protocol file" in result.output


def test_list_shows_shipped_protocols() -> None:
    result = run("protocol", "list")
    assert result.exit_code == 0
    assert "massage-clbp" in result.output


def test_schema_is_json_schema_of_the_protocol() -> None:
    result = run("protocol", "schema")
    schema = json.loads(result.output)
    assert set(schema["properties"]) == {
        "lumbar_protocol",
        "trial",
        "arms",
        "vocabulary",
        "eligibility",
        "visits",
        "randomization",
        "outcomes",
        "analysis",
        "access",
        "messages",
        "session_rating",
        "consent",
    }


def test_instruments_list_names_every_instrument() -> None:
    result = run("instruments", "list")
    assert result.exit_code == 0
    for name in INSTRUMENTS.names():
        assert name in result.output


def test_instruments_show_gives_items_scoring_and_sources() -> None:
    result = run("instruments", "show", "rdq")
    assert result.exit_code == 0
    output = result.output
    assert "rdq_24" in output
    assert "with up to 2 of 24 items unanswered" in output
    assert "Ostelo" in output
    assert "not shipped" in output


def test_instruments_show_unknown_exits_2_with_a_suggestion() -> None:
    result = run("instruments", "show", "rdqq")
    assert result.exit_code == 2
    assert "did you mean rdq" in result.output


def test_instruments_show_with_wording_file(tmp_path: Path) -> None:
    items = "\n".join(f"  bothersomeness: Licensed text {n}" for n in range(1))
    path = tmp_path / "wording.yaml"
    path.write_text(
        "lumbar_wording: 1\ninstrument: bothersomeness\nlanguage: en\n"
        f"source: Our licence 2026\ninstructions: Read carefully.\nitems:\n{items}\n"
    )
    result = run("instruments", "show", "bothersomeness", "--wording", str(path))
    assert result.exit_code == 0, result.output
    assert "Licensed text 0" in result.output
    assert "Our licence 2026" in result.output


def test_the_installed_command_exits_2_on_a_bad_protocol(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("lumbar_protocol: 1\ntrial: {id: x}\n")
    lumbar = Path(sys.executable).parent / "lumbar"
    completed = subprocess.run(
        [str(lumbar), "protocol", "check", str(path)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 2
    assert f"{path}:2: trial.title: is required" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_read_table_skips_leading_stamps_but_keeps_a_hash_in_the_data(tmp_path: Path) -> None:
    path = tmp_path / "studies.csv"
    path.write_text("# SYNTHETIC DATA\n# lumbar 0.1.0\nstudy,n1\nSmith 2001 #2,40\n", "utf-8")
    frame = read_table(path, "the studies")
    assert frame["study"].tolist() == ["Smith 2001 #2"]
    assert frame["n1"].tolist() == [40]
    with pytest.raises(LumbarError, match="cannot read the studies"):
        read_table(tmp_path / "missing.csv", "the studies")
