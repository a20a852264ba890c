"""`lumbar report` on a trial made with `lumbar init` and the operations CLI, and `lumbar demo`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lumbar.cli import app
from lumbar.formatting import SYNTHETIC_NOTE
from tests.clitools import Cli, answers_file, runner

pytestmark = pytest.mark.integration

PARTICIPANTS = 15
SEXES = ("female", "male")


def _rdq(total: int) -> dict[str, object]:
    return {f"rdq_{n:02d}": int(n <= total) for n in range(1, 25)}


def _visit(rdq: int, bother: int, *, baseline: bool) -> dict[str, dict[str, object]]:
    answers: dict[str, dict[str, object]] = {
        "rdq": _rdq(rdq),
        "bothersomeness": {"bothersomeness": bother},
        "satisfaction": {"satisfaction": 3},
        "disability_days": {"restricted_days": rdq // 3, "bed_days": 0},
        "medication_use": {"any_medication": 0},
        "lifestyle": {"sleep_hours": 7.0, "exercise_days": 2},
    }
    if not baseline:
        answers["global_improvement"] = {"global_change": 3}
    return answers


def test_report_on_a_trial_run_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    cli(
        "user",
        "add",
        "una",
        "--role",
        "statistician",
        "--all-sites",
        "--unblinded",
        "--reason",
        "x",
    )
    answers = answers_file(tmp_path / "answers.yaml")
    rng = np.random.default_rng(8)
    for number in range(1, PARTICIPANTS + 1):
        screening = f"S{number:05d}"
        study_id = f"SEA-{number:04d}"
        person = [f"--answer=age={rng.integers(20, 65)}", f"--answer=sex={SEXES[number % 2]}"]
        assert f"{screening}: eligible" in cli(
            "screening", "add", "--site", "SEA", "--answers", str(answers), *person, user="carol"
        )
        cli("consent", screening, "--version", "1.0", user="carol")
        assert cli("enrol", screening, user="carol").strip() == study_id
        baseline = int(rng.integers(6, 20))
        path = tmp_path / f"{study_id}-baseline.yaml"
        path.write_text(yaml.safe_dump(_visit(baseline, int(rng.integers(3, 10)), baseline=True)))
        cli("questionnaire", "visit", study_id, "baseline", "--answers", str(path), user="carol")
        cli("randomize", study_id, user="carol")
        for week, visit in enumerate(("week_10", "week_26", "week_52")):
            if number % 5 == 0 and week == 2:
                continue  # some participants miss the last visit
            path = tmp_path / f"{study_id}-{visit}.yaml"
            rdq = int(np.clip(baseline - 3 + rng.normal(0, 3), 0, 24))
            bother = int(rng.integers(0, 9))
            path.write_text(yaml.safe_dump(_visit(rdq, bother, baseline=False)))
            cli("questionnaire", "visit", study_id, visit, "--answers", str(path), user="carol")
    out = tmp_path / "report"
    output = cli("report", "--out", str(out), "--imputations", "5", user="una")
    assert "Report: file://" in output
    assert "SYNTHETIC" not in output
    html = (out / "report.html").read_text("utf-8")
    assert 'id="synthetic-banner"' not in html
    # Too few people to impute in every arm: the report says so and stands without it.
    assert "Multiple imputation was not done" in html
    assert '<section id="consort">' in html
    assert '<section id="baseline">' in html
    tables = out / "tables"
    consort = pd.read_csv(tables / "consort.csv", comment="#")
    counts = consort.groupby(["stage", "visit"])["count"].sum()
    assert counts[("completed", "week_10")] == PARTICIPANTS
    assert counts[("completed", "week_52")] == PARTICIPANTS - PARTICIPANTS // 5
    ancova = pd.read_csv(tables / "rdq_total_ancova.csv", comment="#")
    assert set(ancova["visit"]) == {"week_10", "week_26", "week_52"}
    assert not (tables / "rdq_total_ancova.csv").read_text().startswith(f"# {SYNTHETIC_NOTE}")
    results = json.loads((tables / "results.json").read_text())
    assert results["synthetic"] is False
    assert (out / "figures" / "consort.svg").exists()
    # A blinded reader gets all participants together, no arm; an unknown user is refused.
    pooled = cli("report", "--out", str(tmp_path / "pooled"), "--imputations", "5", user="sam")
    assert "all participants" in pooled
    assert "You are blinded" in pooled
    blinded = (tmp_path / "pooled" / "report.html").read_text("utf-8")
    assert '<section id="outcome-rdq_total">' not in blinded
    assert '<section id="follow-up">' in blinded
    assert "is not an active member of staff" in cli(
        "report", "--out", str(tmp_path / "x"), user="mallory", code=2
    )


def test_report_on_a_trial_with_baseline_but_no_follow_up_yet(cli: Cli, tmp_path: Path) -> None:
    """Before anyone reaches a follow-up visit the report is an enrolment and baseline report:
    the flow so far, Table 1, and the visits to come, instead of an error."""
    cli(
        "user",
        "add",
        "una",
        "--role",
        "statistician",
        "--all-sites",
        "--unblinded",
        "--reason",
        "x",
    )
    answers = answers_file(tmp_path / "answers.yaml")
    for number in range(1, 7):
        screening, study_id = f"S{number:05d}", f"SEA-{number:04d}"
        sex = f"--answer=sex={SEXES[number % 2]}"
        cli("screening", "add", "--site", "SEA", "--answers", str(answers), sex, user="carol")
        cli("consent", screening, "--version", "1.0", user="carol")
        cli("enrol", screening, user="carol")
        path = tmp_path / f"{study_id}-baseline.yaml"
        path.write_text(yaml.safe_dump(_visit(6 + number, 3 + number % 5, baseline=True)))
        cli("questionnaire", "visit", study_id, "baseline", "--answers", str(path), user="carol")
        cli("randomize", study_id, user="carol")
    for user in ("una", "sam"):  # unblinded, and blinded
        out = tmp_path / user
        output = cli("report", "--out", str(out), user=user)
        assert "enrolment and baseline report" in output
        assert "Report: file://" in output
        html = (out / "report.html").read_text("utf-8")
        for section in ("consort", "baseline", "follow-up", "outcomes-pooled", "missing"):
            assert f'<section id="{section}">' in html, (user, section)
        assert '<section id="outcome-rdq_total">' not in html
        follow = pd.read_csv(out / "tables" / "follow_up.csv", comment="#")
        week_10 = follow[follow["visit"] == "week_10"].iloc[0]
        assert week_10["participants"] == week_10["upcoming"] == 6
        baseline = pd.read_csv(out / "tables" / "baseline_table.csv", comment="#")
        assert baseline.iloc[0]["all"] == "6"
    by_arm = (tmp_path / "una" / "report.html").read_text("utf-8")
    assert "Baseline characteristics by arm" in by_arm


def test_demo_command_runs_a_small_synthetic_trial(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--participants", "45", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC DATA" in result.output
    assert "randomized 45" in result.output
    assert "Audit trail:" in result.output
    assert "intact" in result.output
    assert (out / "report" / "report.html").exists()
    # It ends by saying how to open the trial in a browser, with an account of each role.
    accounts = out / "accounts.txt"
    assert accounts.stat().st_mode & 0o777 == 0o600
    assert accounts.read_text().startswith("SYNTHETIC DEMO ACCOUNTS")
    ending = result.output[result.output.index("Open the demo trial in a browser") :]
    assert f"serve --db {out / 'trial.db'}" in ending
    assert "http://127.0.0.1:8000/" in ending
    # And with a synthetic participant whose 10-week questionnaires are due today, to answer
    # through the link the printed command issues (tests/web/test_demo_link_browser.py).
    assert f"invite show SEA-0046 week_10 --db {out / 'trial.db'} --as coordinator" in ending
    invite = ["invite", "show", "SEA-0046", "week_10", "--db", str(out / "trial.db")]
    invited = runner.invoke(app, [*invite, "--as", "coordinator"])
    assert invited.exit_code == 0, invited.output
    assert "http://127.0.0.1:8000/survey/lms_" in invited.output
    for line in accounts.read_text().splitlines()[-6:]:
        _role, username, password = line.rsplit(maxsplit=2)
        assert f"{username} " in ending
        assert password in ending
    again = runner.invoke(app, ["demo", "--participants", "45", "--out", str(out)])
    assert again.exit_code == 2
    assert "--replace" in again.output
    few = runner.invoke(app, ["demo", "--participants", "10", "--out", str(tmp_path / "few")])
    assert few.exit_code == 2
    assert "--participants" in few.output
    assert "at least 30" in few.output
