"""A coordinator's walk-through of the reference trial through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from tests import postgres as pg
from tests.clitools import Cli, answers_file

pytestmark = pytest.mark.integration


def test_coordinator_walk_through(cli: Cli, tmp_path: Path) -> None:
    answers = answers_file(tmp_path / "answers.yaml")
    assert "S00001: eligible" in cli(
        "screening", "add", "--site", "SEA", "--answers", str(answers), user="carol"
    )
    refused = cli(
        "screening",
        "add",
        "--site",
        "SEA",
        "--answers",
        str(answers),
        "--answer",
        "age=70",
        user="carol",
    )
    assert "S00002: ineligible" in refused
    assert "does not meet: Aged 20 to 64" in refused
    cli(
        "identity",
        "set",
        "S00001",
        "--name",
        "Ann Example",
        "--birth-date",
        "1979-04-02",
        user="carol",
    )
    cli("consent", "S00001", "--version", "1.0", user="carol")
    assert cli("enrol", "S00001", user="carol").strip() == "SEA-0001"
    rdq = [f"--answer=rdq_{n:02d}={int(n <= 13)}" for n in range(1, 25)]
    assert "total 13.0" in cli(
        "questionnaire", "add", "SEA-0001", "baseline", "rdq", *rdq, user="carol"
    )
    for instrument, pairs in (
        ("bothersomeness", ["bothersomeness=7"]),
        ("satisfaction", ["satisfaction=2"]),
        ("disability_days", ["restricted_days=6", "bed_days=1"]),
        ("medication_use", ["any_medication=0"]),
        ("lifestyle", ["sleep_hours=6.5", "exercise_days=2"]),
    ):
        cli(
            "questionnaire", "add", "SEA-0001", "baseline", instrument,
            *(f"--answer={pair}" for pair in pairs), user="carol",
        )  # fmt: skip
    assigned = cli("randomize", "SEA-0001", user="carol")
    assert "SEA-0001: randomized (arm concealed: you are blinded)" in assigned
    for arm in ("usual_care", "structural", "relaxation", "group "):
        assert arm not in assigned
    assert "stratum baseline_rdq=rdq_12_or_more" in assigned
    assert "already randomized" in cli("randomize", "SEA-0001", user="carol", code=2)
    later = (dt.date.today() + dt.timedelta(days=75)).isoformat()
    due = cli("due", "--on", later, user="carol")
    assert "SEA-0001" in due
    assert "overdue" in due
    assert "week_10" in cli("schedule", "SEA-0001", user="carol")
    cli(
        "ae",
        "add",
        "SEA-0001",
        "--description",
        "sore",
        "--severity",
        "mild",
        "--relatedness",
        "possible",
        user="carol",
    )
    adherence = cli("adherence", user="tom")
    assert "SEA-0001" in adherence
    assert "blinded" in cli("adherence", user="carol", code=2)
    out = tmp_path / "data.csv"
    assert "wrote 4 rows" in cli("export", "--out", str(out), user="sam")
    frame = pd.read_csv(out)
    assert list(frame["participant"].unique()) == ["SEA-0001"]
    assert "Ann Example" not in out.read_text()
    assert "intact" in cli("audit", "verify")
    assert "valid" in cli("randomization", "verify")
    # Emergency unblinding: a grant given with a reason, and the study id typed again.
    reason = ("--reason", "anaphylaxis")
    assert "does not hold the emergency-unblinding grant" in cli(
        "unblind", "SEA-0001", *reason, "--confirm", "SEA-0001", user="carol", code=2
    )
    assert "nobody grants themselves" in cli(
        "user", "grant", "admin", "emergency_unblind", *reason, code=2
    )
    granted = cli("user", "grant", "carol", "emergency_unblind", "--reason", "site lead")
    assert "waiting for a second admin" in granted
    grants = cli("user", "grants")
    assert "WAITING" in grants
    assert "site lead" in grants
    refused = cli("unblind", "SEA-0001", *reason, "--confirm", "SEA-0002", user="carol", code=2)
    assert "--confirm: must repeat the participant's study id" in refused
    arm = cli("unblind", "SEA-0001", *reason, "--confirm", "SEA-0001", user="carol")
    assert arm.split(": ")[1].strip() in ("usual_care", "structural", "relaxation")
    cli(
        "withdraw", "SEA-0001", "--kind", "lost_to_follow_up", "--reason", "no answer", user="carol"
    )
    assert "lost_to_follow_up" in cli("participants", user="carol")


def test_refusals_exit_2_with_the_reason(cli: Cli) -> None:
    assert "may not manage staff" in cli(
        "user", "add", "eve", "--role", "admin", "--all-sites", user="carol", code=2
    )
    assert "is not an active member of staff" in cli("participants", user="mallory", code=2)
    assert "--as: is required" in cli("participants", user=None, code=2)
    assert "is not a study id or screening number" in cli("enrol", "S09999", user="carol", code=2)
    assert "must be written name=value" in cli(
        "screening", "add", "--site", "SEA", "--answer", "age", user="carol", code=2
    )


def test_init_refuses_an_existing_trial_and_keeps_it(cli: Cli) -> None:
    assert "already holds a trial" in cli("init", "massage-clbp", user=None, code=2)
    assert "SEA" in cli("site", "list")


def test_backup_and_restore_round_trip(cli: Cli, tmp_path: Path, database_url: str) -> None:
    backup = tmp_path / "copy.backup"
    assert "backup written" in cli("backup", str(backup))
    assert "may not back up" in cli("backup", str(tmp_path / "other.db"), user="carol", code=2)
    assert not (tmp_path / "other.db").exists()
    cli("site", "add", "NYC", "New York")
    assert "--as: is required" in cli("restore", str(backup), "--replace", user=None, code=2)
    if database_url.startswith("sqlite"):
        assert "restoring would replace it" in cli("restore", str(backup), code=2)
        refused = cli("restore", str(backup), "--replace", user="carol", code=2)
        assert "a coordinator may not restore the trial" in refused
        assert "NYC" in cli("site", "list")
        restored = cli("restore", str(backup), "--replace")
        check = cli
    else:
        assert "already holds a trial" in cli("restore", str(backup), code=2)
        target = pg.new_database_url(pg.server_url())
        try:
            check = Cli(target, cli.key_file)
            refused = check("restore", str(backup), user="carol", code=2)
            assert "a coordinator may not restore the trial" in refused
            assert not pg.database_exists(target)
            restored = check("restore", str(backup))
            assert "the keys open it" in restored
            assert "NYC" not in check("site", "list")
            assert "intact" in check("audit", "verify")
        finally:
            pg.drop_database(target)
        return
    assert "the keys open it" in restored
    assert "audit trail: " in restored
    assert "intact" in restored
    (kept,) = tmp_path.glob("trial.db.replaced-*")
    assert f"the replaced database is kept as {kept}" in restored
    assert "NYC" not in check("site", "list")
    assert "intact" in check("audit", "verify")
    assert not list(tmp_path.glob("*.restoring*"))
