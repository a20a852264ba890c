"""Site staff's commands with --server: over the JSON API with a token, as with --db.

Two trials made alike (same protocol, seed, sites and staff): one opened by the commands
with --db, one served by the web application on this machine and reached with --server.
A coordinator's walk-through, refusals included, prints the same on both.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from lumbar.cli import app as cli_app
from lumbar.cli._common import SERVER_COMMANDS
from lumbar.cli.remote import TOKEN_ENV
from lumbar.operations import Trial
from lumbar.operations.vocabulary import PERMISSIONS
from lumbar.web.app import create_app
from tests.operations.world import World, answers_for, build_world, eligible_answers, rdq_answers
from tests.web.conftest import CHEAP, served

pytestmark = pytest.mark.integration

runner = CliRunner()


@dataclass
class Both:
    """The same commands, run against a database and against a server."""

    local: World
    remote: World
    server: str
    tokens: dict[str, str]

    def by_db(self, user: str, *args: str) -> tuple[int, str]:
        result = runner.invoke(
            cli_app,
            [*args, "--db", self.local.url, "--key-file", str(self.local.key_file), "--as", user],
            env={"LUMBAR_SERVER": None, TOKEN_ENV: None},
        )
        return result.exit_code, result.output

    def by_server(self, user: str, *args: str) -> tuple[int, str]:
        result = runner.invoke(
            cli_app,
            [*args, "--server", self.server],
            env={"LUMBAR_DB": None, "LUMBAR_USER": None, TOKEN_ENV: self.tokens[user]},
        )
        return result.exit_code, result.output

    def same(self, user: str, *args: str, code: int = 0) -> str:
        """Run ``lumbar *args`` as ``user`` both ways; both exit with ``code`` and print
        the same; what they printed."""
        local = self.by_db(user, *args)
        remote = self.by_server(user, *args)
        assert local[0] == code, local[1]
        assert remote == local, f"--db printed:\n{local[1]}\n--server printed:\n{remote[1]}"
        return local[1]


def _world(tmp_path: Path, name: str) -> World:
    folder = tmp_path / name
    folder.mkdir()
    return build_world(f"sqlite:///{folder / 'trial.db'}", folder)


@pytest.fixture
def both(tmp_path: Path) -> Iterator[Both]:
    local, remote = _world(tmp_path, "local"), _world(tmp_path, "remote")
    tokens = {}
    for username in ("coord_open", "ther", "coord_nyc", "coord"):
        # Today's clock, as the commands with --db and the server keep it.
        trial = Trial.open(remote.url, username, key_file=remote.key_file)
        role = trial.me().role
        permissions = [name for name, roles in PERMISSIONS.items() if role in roles]
        tokens[username] = trial.create_token("laptop", permissions, 30).token
        trial.close()
    app = create_app(remote.url, key_file=remote.key_file, password_hasher=CHEAP)
    with served(app) as server:
        yield Both(local, remote, server, tokens)


def _write(path: Path, content: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_a_coordinators_walk_through_prints_the_same_by_server_as_by_database(
    both: Both, tmp_path: Path
) -> None:
    protocol = both.local.protocol
    today = dt.datetime.now(dt.UTC).date()
    screening = _write(tmp_path / "ann.yaml", eligible_answers(protocol))
    assert "S00001: eligible" in both.same(
        "coord_open", "screening", "add", "--site", "SEA", "--answers", screening
    )
    # A field error on a bad answer, and an unknown participant: the same refusal.
    refused = both.same(
        "coord_open", "screening", "add", "--site", "SEA", "--answer", "age=abc", code=2
    )
    assert "age" in refused
    assert "S00001: eligible" in both.same(
        "coord_open", "screening", "update", "S00001", "--answer", "age=46", "--reason", "misheard"
    )
    unknown = both.same("coord_open", "consent", "S09999", "--version", "1.0", code=2)
    assert "unknown participant" in unknown
    assert "S00001: consent version 1.0 on" in both.same(
        "coord_open", "consent", "S00001", "--version", "1.0"
    )
    study_id = both.same("coord_open", "enrol", "S00001").strip()
    assert re.fullmatch(r"SEA-\d{4}", study_id)
    # Baseline: one questionnaire alone, then the rest of the visit together.
    visit = {name: answers_for(name, 1) for name in protocol.baseline.instruments}
    visit["rdq"] = rdq_answers(8)
    visit["bothersomeness"] = {"bothersomeness": 1}
    rdq = _write(tmp_path / "rdq.yaml", visit.pop("rdq"))
    assert f"{study_id} baseline rdq" in both.same(
        "coord_open", "questionnaire", "add", study_id, "baseline", "rdq", "--answers", rdq
    )
    rest = _write(tmp_path / "baseline.yaml", visit)
    recorded = both.same(
        "coord_open", "questionnaire", "visit", study_id, "baseline", "--answers", rest
    )
    assert recorded.count(f"{study_id} baseline") == len(visit)
    listed = both.same("coord_open", "questionnaire", "list", study_id, "baseline")
    assert listed.count(f"{study_id} baseline") == len(visit) + 1
    assert "rdq: total 7" in both.same(
        "coord_open",
        "questionnaire",
        "edit",
        study_id,
        "baseline",
        "rdq",
        "--answer",
        "rdq_01=0",
        "--reason",
        "read back to her",
    )
    unchanged = both.same(
        "coord_open",
        "questionnaire",
        "edit",
        study_id,
        "baseline",
        "rdq",
        "--answer",
        "rdq_01=0",
        "--reason",
        "again",
        code=2,
    )
    assert "nothing changed" in unchanged
    randomized = both.same("coord_open", "randomize", study_id)
    arm = randomized.split(": ")[1].split(" ")[0]
    assert arm in {a.id for a in protocol.arms}
    techniques = protocol.arm(arm).techniques
    assert techniques, "the seed allocates an arm with sessions"
    assert f"{study_id}: {arm}" in both.same("ther", "session", "plan", study_id)
    session_log = (
        *("session", "log", study_id, "--minutes", "50", "--technique", techniques[0]),
        *("--region", protocol.vocabulary.body_regions[0].id, "--rating"),
    )
    logged = both.same("ther", *session_log, "bothersomeness=6")
    assert f"{study_id}: session 1 logged" in logged
    out_of_range = both.same("ther", *session_log, "pain_intensity=11", code=2)
    assert "--rating pain_intensity: must be a whole number from 0 to 10" in out_of_range
    reported = both.same(
        "coord_open",
        "ae",
        "add",
        study_id,
        "--description",
        "sore the day after",
        "--severity",
        "mild",
        "--relatedness",
        "possible",
    )
    assert f"recorded for {study_id}" in reported
    listed = both.same("coord_open", "ae", "list")
    assert "possible" in listed
    assert "sore" not in listed  # the list shows no free text
    assert "recovered" in both.same(
        "coord_open", "ae", "update", "1", "--outcome", "recovered", "--reason", "called"
    )
    assert "week_10" in both.same("coord_open", "schedule", study_id)
    week_10 = str(today + dt.timedelta(days=70))
    assert study_id in both.same("coord_open", "due", "--on", week_10, "--site", "SEA")
    assert "none" in both.same("coord_nyc", "due", "--on", week_10)
    assert "missed" in both.same(
        "coord_open", "due", "--missed", "--on", str(today + dt.timedelta(days=100))
    )
    assert "discontinued treatment" in both.same(
        "coord_open",
        "withdraw",
        study_id,
        "--kind",
        "discontinued_treatment",
        "--reason",
        "moved away",
    )
    assert study_id in both.same("coord_open", "participants")
    assert "Whom to call" in both.same("coord_open", "follow-up", "--within", "30")
    assert "not shown (you are blinded)" in both.same("coord", "follow-up")
    # Another site's participant is unknown there, both ways.
    assert "unknown participant" in both.same("coord_nyc", "schedule", study_id, code=2)


def test_a_blinded_coordinator_is_refused_the_adverse_events_the_same_way(both: Both) -> None:
    refused = both.same("coord", "ae", "list", code=2)
    assert "blind" in refused


def test_server_and_db_together_are_refused_naming_the_option(both: Both) -> None:
    result = runner.invoke(
        cli_app,
        ["participants", "--server", both.server, "--db", both.local.url],
        env={TOKEN_ENV: both.tokens["coord"]},
    )
    assert result.exit_code == 2
    assert "--server" in result.output
    assert "--db" in result.output


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in getattr(group, "commands", {}).items():
        if getattr(command, "commands", None) is not None:
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_the_help_names_exactly_the_commands_that_take_server() -> None:
    taking = {
        name
        for name, command in _commands(typer.main.get_command(cli_app))
        if any("--server" in getattr(p, "opts", ()) for p in command.params)
    }
    assert taking == set(SERVER_COMMANDS)
    shown = " ".join(runner.invoke(cli_app, ["--help"]).output.split())
    assert ", ".join(SERVER_COMMANDS) in shown
