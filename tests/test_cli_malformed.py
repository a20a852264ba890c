"""Malformed input to every command that reads a file, an answer or a database: an error
that says why (exit status 2), never a Python traceback, and never a machine exhausted.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import typer

from lumbar.cli import app
from tests.clitools import BASELINE, Cli, answers_file, invoke, runner
from tests.test_declared import BILLION_LAUGHS, DOUBLING

pytestmark = pytest.mark.integration

MALFORMED_YAML = {
    "billion laughs": BILLION_LAUGHS,
    "doubling aliases": DOUBLING,
    "recursive alias": "age: &a [*a]\n",
    "too deep": "age: " + "[" * 40 + "]" * 40 + "\n",
    "endless number": "age: " + "1" * 5_000 + "\n",
    "impossible date": "age: 2024-13-45\n",
    "not YAML": "age: [1\n",
    "python tag": "age: !!python/object/apply:os.system [echo]\n",
}

MALFORMED_ANSWERS = {
    "unclosed list": ("age=[1", "is not a YAML value"),
    "5,000 digits": ("age=" + "1" * 5_000, "a number of 5,000 characters"),
    "recursive alias": ("age=&a [*a]", "recursive alias"),
    "nan": ("age=.nan", "must be a finite number"),
    "inf": ("age=.inf", "must be a finite number"),
    "-inf": ("age=-.inf", "must be a finite number"),
    "400 digits, beyond a float": ("age=" + "9" * 400, "a number of 400 characters"),
}


def refused(output: str) -> None:
    assert "Traceback" not in output
    assert "error:" in output


@pytest.mark.parametrize("text", MALFORMED_YAML.values(), ids=MALFORMED_YAML.keys())
def test_a_malformed_protocol_is_refused_by_check_and_init(tmp_path: Path, text: str) -> None:
    path = tmp_path / "protocol.yaml"
    path.write_text("lumbar_protocol: 1\n" + text)
    started = time.perf_counter()
    code, output = invoke("protocol", "check", str(path))
    assert time.perf_counter() - started < 5  # took 39 s before; a loaded machine's margin
    assert code == 2, output
    refused(output)
    code, output = invoke("init", str(path), "--db", str(tmp_path / "t.db"))
    assert code == 2, output
    refused(output)
    assert not (tmp_path / "t.db").exists() or (tmp_path / "t.db").stat().st_size == 0


def test_a_malformed_wording_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wording.yaml"
    path.write_text("lumbar_wording: 1\ninstrument: rdq\n" + BILLION_LAUGHS)
    code, output = invoke("questionnaire", "template", "rdq", "--wording", str(path))
    assert code == 2, output
    refused(output)
    assert "aliases" in output


def test_a_protocol_with_300_000_unknown_keys_is_refused_fast_and_short(
    tmp_path: Path, reference_text: str
) -> None:
    path = tmp_path / "protocol.yaml"
    path.write_text(reference_text + "".join(f"unknown_{n}: 1\n" for n in range(300_000)))
    started = time.perf_counter()
    code, output = invoke("protocol", "check", str(path))
    assert time.perf_counter() - started < 5  # took 39 s before; a loaded machine's margin
    assert code == 2, output
    refused(output)
    assert len(output.splitlines()) < 10


@pytest.mark.parametrize(("pair", "rule"), MALFORMED_ANSWERS.values(), ids=MALFORMED_ANSWERS.keys())
def test_a_malformed_screening_answer_names_the_field(cli: Cli, pair: str, rule: str) -> None:
    output = cli("screening", "add", "--site", "SEA", f"--answer={pair}", user="carol", code=2)
    refused(output)
    assert "age" in output
    assert rule in output


@pytest.mark.parametrize("text", MALFORMED_YAML.values(), ids=MALFORMED_YAML.keys())
def test_a_malformed_answers_file_is_refused(cli: Cli, tmp_path: Path, text: str) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text(text)
    output = cli("screening", "add", "--site", "SEA", "--answers", str(path), user="carol", code=2)
    refused(output)


@pytest.mark.parametrize(
    "value",
    ["[1", ".nan", ".inf", "1" * 5_000, "9" * 400, "{a: 1"],
    ids=["unclosed list", "nan", "inf", "5,000 digits", "400 digits", "unclosed mapping"],
)
def test_a_malformed_questionnaire_answer_is_refused(cli: Cli, tmp_path: Path, value: str) -> None:
    study_id = _enrolled(cli, tmp_path)
    output = cli(
        "questionnaire", "add", study_id, "baseline", "bothersomeness",
        f"--answer=bothersomeness={value}", user="carol", code=2,
    )  # fmt: skip
    refused(output)
    assert "bothersomeness" in output


def _eligible(cli: Cli, tmp_path: Path) -> str:
    screened = cli(
        "screening", "add", "--site", "SEA", "--answers", str(answers_file(tmp_path / "a.yaml")),
        user="carol",
    )  # fmt: skip
    return screened.split(":")[0].strip()


# ---------------------------------------------------------------- a damaged or busy database

COMMANDS_ON_A_TRIAL = [
    ("participants",),
    ("audit", "verify"),
    ("randomization", "verify"),
    ("export", "--out", "{tmp}/dataset.csv"),
    ("screening", "add", "--site", "SEA", "--answer", "age=45"),
    ("site", "add", "POR", "Portland"),
]


@pytest.mark.parametrize("damage", ["truncated", "not a database"])
@pytest.mark.parametrize("command", COMMANDS_ON_A_TRIAL, ids=" ".join)
def test_a_damaged_trial_database_is_named_as_such(
    tmp_path: Path, damage: str, command: tuple[str, ...]
) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'trial.db'}", tmp_path / "trial.key")
    cli("init", "massage-clbp", "--seed", "11", user=None)
    path = tmp_path / "trial.db"
    if damage == "truncated":
        with path.open("r+b") as file:
            file.truncate(8192)
    else:
        path.write_bytes(b"\x00not sqlite\x00" * 4_000)
    args = [part.format(tmp=tmp_path) for part in command]
    output = cli(*args, code=2)
    refused(output)
    assert "not a lumbar trial database, or the file is damaged" in output


def test_a_writer_kept_waiting_past_the_busy_timeout_is_told_to_try_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lumbar.store.database.BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "trial.db"
    cli = Cli(f"sqlite:///{path}", tmp_path / "trial.key")
    cli("init", "massage-clbp", "--seed", "11", user=None)
    cli("site", "add", "SEA", "Seattle")
    cli("user", "add", "carol", "--role", "coordinator", "--site", "SEA")
    study_id = randomized_ready(cli, tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        output = cli("randomize", study_id, user="carol", code=2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    refused(output)
    assert "the trial is busy, try again" in output
    assert "Randomized" not in output
    cli("randomize", study_id, user="carol")  # no slot was consumed: it works now


def _enrolled(cli: Cli, tmp_path: Path) -> str:
    number = _eligible(cli, tmp_path)
    cli("consent", number, "--version", "1.0", user="carol")
    return cli("enrol", number, user="carol").strip()


def randomized_ready(cli: Cli, tmp_path: Path) -> str:
    """A participant enrolled with a complete baseline, ready to randomize."""
    study_id = _enrolled(cli, tmp_path)
    rdq = [f"--answer=rdq_{n:02d}={int(n <= 13)}" for n in range(1, 25)]
    cli("questionnaire", "add", study_id, "baseline", "rdq", *rdq, user="carol")
    for instrument, pairs in BASELINE.items():
        cli(
            "questionnaire", "add", study_id, "baseline", instrument,
            *(f"--answer={pair}" for pair in pairs), user="carol",
        )  # fmt: skip
    return study_id


# ---------------------------------------------------------------- every command


def _commands(command: Any = None, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    command = command if command is not None else typer.main.get_command(app)
    if hasattr(command, "commands"):
        return [
            found
            for name, sub in sorted(command.commands.items())
            for found in _commands(sub, (*path, name))
        ]
    return [path]


def _command(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _malformed_arguments(path: tuple[str, ...], damaged: str) -> list[str] | None:
    """``path`` with "x!" for every required argument and option and ``damaged`` as its
    database, or None when it takes neither (running it would simply run it)."""
    arguments = list(path)
    malformed = False
    parameters = _command(path).params
    for parameter in parameters:
        if parameter.required and parameter.param_type_name == "argument":
            arguments.append("x!")
            malformed = True
        elif parameter.required and not getattr(parameter, "is_flag", False):
            arguments += [parameter.opts[0], "x!"]
            malformed = True
    names = {parameter.name for parameter in parameters}
    if "db" in names:
        arguments += ["--db", damaged, "--key-file", damaged]
        arguments += ["--as", "admin"] if "actor" in names else []
        malformed = True
    return arguments if malformed else None


DAMAGED = "{damaged}"
SWEPT = [path for path in _commands() if _malformed_arguments(path, DAMAGED) is not None]


def test_the_sweep_covers_nearly_every_command() -> None:
    assert len(SWEPT) >= len(_commands()) - 5


@pytest.mark.parametrize("path", SWEPT, ids=" ".join)
def test_every_command_on_a_damaged_database_or_with_malformed_arguments_exits_2(
    tmp_path: Path, path: tuple[str, ...]
) -> None:
    damaged = tmp_path / "trial.db"
    damaged.write_bytes(b"\x00not sqlite\x00" * 4_000)
    arguments = _malformed_arguments(path, str(damaged))
    assert arguments is not None
    result = runner.invoke(app, arguments, input="y\n")
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
