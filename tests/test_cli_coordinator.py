"""The coordinator's path through the CLI, on SQLite and PostgreSQL: answer templates that
load back, what a therapist may log, missed visits, and reading that creates nothing."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lumbar.instruments import INSTRUMENTS
from lumbar.protocol import shipped_protocol
from tests.clitools import Cli, answers_file, invoke, randomized
from tests.operations.world import eligible_answers
from tests.templates import filled_in, some_answers

pytestmark = pytest.mark.integration

LATER = dt.date.today() + dt.timedelta(days=100)
"""After week 10's window has closed (day 91) and before week 26's opens (day 161)."""


def _yes_no(answers: dict[str, Any]) -> dict[str, Any]:
    return {k: ("yes" if v else "no") if isinstance(v, bool) else v for k, v in answers.items()}


def test_a_filled_in_screening_template_screens_the_person(cli: Cli, tmp_path: Path) -> None:
    code, template = invoke("screening", "template", "--db", cli.url)
    assert code == 0, template
    _, shipped = invoke("screening", "template", "--protocol", "massage-clbp")
    assert template == shipped  # the trial's protocol is the one it was made from
    protocol = shipped_protocol("massage-clbp")
    filled = tmp_path / "ann.yaml"
    filled.write_text(filled_in(template, _yes_no(eligible_answers(protocol))))
    assert "S00001: eligible" in cli(
        "screening", "add", "--site", "SEA", "--answers", str(filled), user="carol"
    )
    # The blank form is refused, and nothing is stored.
    blank = tmp_path / "blank.yaml"
    blank.write_text(template)
    refused = cli(
        "screening", "add", "--site", "SEA", "--answers", str(blank), user="carol", code=2
    )
    assert "no screening answers" in refused
    assert "--answers: a screening records the person's answers" in refused
    assert "S00002" not in cli("participants", user="carol")


def test_filled_in_questionnaire_templates_are_recorded(cli: Cli, tmp_path: Path) -> None:
    people = []
    screening = answers_file(tmp_path / "a.yaml")
    for _ in range(2):
        screened = cli(
            "screening", "add", "--site", "SEA", "--answers", str(screening), user="carol"
        )
        number = screened.split(":")[0]
        cli("consent", number, "--version", "1.0", user="carol")
        people.append(cli("enrol", number, user="carol").strip())
    first, second = people
    protocol = shipped_protocol("massage-clbp")
    # One questionnaire at a time, for 'questionnaire add'.
    for name in protocol.baseline.instruments:
        code, template = invoke("questionnaire", "template", name)
        assert code == 0, template
        filled = tmp_path / f"{name}.yaml"
        filled.write_text(filled_in(template, some_answers(INSTRUMENTS.get(name))))
        cli("questionnaire", "add", first, "baseline", name, "--answers", str(filled), user="carol")
    assert "randomized" in cli("randomize", first, user="carol")
    # The whole visit, for 'questionnaire visit'.
    code, template = invoke("questionnaire", "template", "--visit", "baseline", "--db", cli.url)
    assert code == 0, template
    answers: dict[str, Any] = {}
    for name in protocol.baseline.instruments:
        answers |= some_answers(INSTRUMENTS.get(name))
    filled = tmp_path / "baseline.yaml"
    filled.write_text(filled_in(template, answers, indent="  "))
    recorded = cli(
        "questionnaire", "visit", second, "baseline", "--answers", str(filled), user="carol"
    )
    assert recorded.count(f"{second} baseline ") == len(protocol.baseline.instruments)
    assert "randomized" in cli("randomize", second, user="carol")


def test_questionnaire_template_needs_one_instrument_or_a_visit() -> None:
    code, output = invoke("questionnaire", "template")
    assert code == 2
    assert "give an instrument or --visit" in output
    code, output = invoke("questionnaire", "template", "rdqq")
    assert code == 2
    assert "did you mean rdq" in output
    code, output = invoke(
        "questionnaire", "template", "--visit", "week_3", "--protocol", "massage-clbp"
    )
    assert code == 2
    assert "the visits are: baseline, week_10, week_26, week_52" in output


def test_session_log_help_lists_the_trials_techniques_and_regions(
    database_url: str, tmp_path: Path, reference_data: dict[str, Any], write_protocol: Any
) -> None:
    reference_data["vocabulary"]["body_regions"].append({"id": "scalp", "label": "Scalp"})
    relaxation = next(arm for arm in reference_data["arms"] if arm["id"] == "relaxation")
    relaxation["techniques"].remove("holding")
    key = tmp_path / "own.key"
    code, output = invoke(
        "init", str(write_protocol(reference_data)), "--db", database_url, "--key-file", str(key)
    )
    assert code == 0, output
    cases: list[tuple[list[str], dict[str, str | None] | None]] = [
        (["--db", database_url], None),
        ([f"--db={database_url}"], None),
        ([], {"LUMBAR_DB": database_url}),
    ]
    for help_args, env in cases:
        code, shown = invoke("session", "log", "--help", *help_args, env=env)
        assert code == 0, shown
        assert f"Techniques by arm (the trial in {database_url})" in shown
        assert "scalp" in shown
        assert "rocking_jostling\n" in shown  # 'holding' is gone from this trial's list
        assert "holding" not in shown
        assert "usual_care  no sessions" in shown


def test_session_log_help_without_a_trial_shows_the_shipped_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, shown = invoke("session", "log", "--help", env={"LUMBAR_DB": None})
    assert code == 0, shown
    assert "no trial in lumbar.db: the shipped protocol massage-clbp" in shown
    assert "holding" in shown
    assert "low_back" in shown
    assert os.listdir(tmp_path) == []


def test_a_technique_of_another_arm_is_refused_naming_the_allowed_ones(
    cli: Cli, tmp_path: Path
) -> None:
    study_id = randomized(cli, answers_file(tmp_path / "a.yaml"))  # seed 11: relaxation
    plan = cli("session", "plan", study_id, user="tom")
    assert f"{study_id}: relaxation (Relaxation massage)" in plan
    assert "techniques: effleurage, petrissage" in plan
    assert "is blinded" in cli("session", "plan", study_id, user="carol", code=2)
    refused = cli(
        "session", "log", study_id, "--minutes", "60", "--technique", "myofascial",
        "--region", "low_back", "--region", "knees", user="tom", code=2,
    )  # fmt: skip
    assert (
        f"--technique: is not one of the techniques of the relaxation arm ({study_id}'s arm)"
        in refused
    )
    assert "choose from: effleurage, petrissage, circular_friction, vibration" in refused
    assert "--region: is not one of the body regions (received 'knees')" in refused
    assert "choose from: low_back, buttocks" in refused
    assert "session 1 logged" in cli(
        "session", "log", study_id, "--minutes", "60", "--technique", "effleurage",
        "--region", "low_back", user="tom",
    )  # fmt: skip
    assert "1 of 10 logged" in cli("session", "plan", study_id, user="tom")


def test_a_session_is_logged_with_its_ratings_and_a_bad_one_is_named_by_its_flag(
    cli: Cli, tmp_path: Path
) -> None:
    study_id = randomized(cli, answers_file(tmp_path / "a.yaml"))  # seed 11: relaxation
    plan = cli("session", "plan", study_id, user="tom")
    assert "ratings before a session (0-10, each may be left out): " in plan
    assert "bothersomeness, pain_intensity" in plan
    session = ["session", "log", study_id, "--minutes", "60", "--technique", "effleurage"]
    session += ["--region", "low_back"]
    refused = cli(
        *session, "--rating", "bothersomeness=11", "--rating", "mood=3", user="tom", code=2
    )
    assert "--rating bothersomeness: must be a whole number from 0 to 10 (received 11)" in refused
    assert "--rating mood: is not a rating the protocol asks before a session" in refused
    assert "the protocol's ratings are: bothersomeness, pain_intensity" in refused
    not_a_number = cli(*session, "--rating", "pain_intensity=some", user="tom", code=2)
    assert "--rating pain_intensity: must be a whole number from 0 to 10" in not_a_number
    assert "0 of 10 logged" in cli("session", "plan", study_id, user="tom")
    assert "session 1 logged" in cli(
        *session, "--rating", "bothersomeness=6", "--rating", "pain_intensity=", user="tom"
    )


def test_due_lists_missed_visits_when_asked(cli: Cli, tmp_path: Path) -> None:
    study_id = randomized(cli, answers_file(tmp_path / "a.yaml"))
    soon = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    assert "Due or overdue: none" in cli("due", "--missed", "--on", soon, user="carol")
    overdue = cli(
        "due", "--on", (dt.date.today() + dt.timedelta(days=75)).isoformat(), user="carol"
    )
    assert f"SEA    {study_id}   week_10   overdue" in overdue
    assert "Due or overdue: none" in cli("due", "--on", LATER.isoformat(), user="carol")
    missed = cli("due", "--missed", "--on", LATER.isoformat(), user="carol")
    assert f"SEA    {study_id}   week_10   missed" in missed
    assert "week_26" not in missed  # not open yet
    assert "week_10   missed" in cli(
        "due", "--missed", "--site", "SEA", "--on", LATER.isoformat(), user="sam"
    )
    cli("withdraw", study_id, "--kind", "lost_to_follow_up", "--reason", "no answer", user="carol")
    assert "Due or overdue: none" in cli("due", "--missed", "--on", LATER.isoformat(), user="carol")


def test_follow_up_prints_completion_and_whom_to_call(cli: Cli, tmp_path: Path) -> None:
    study_id = randomized(cli, answers_file(tmp_path / "a.yaml"))
    day_75 = (dt.date.today() + dt.timedelta(days=75)).isoformat()
    shown = cli("follow-up", "--on", day_75, "--within", "20", user="carol")
    # Week 10's window opened on day 63: one due, none complete; it closes on day 91.
    assert re.search(r"all\s+All sites\s+week_10\s+1\s+0\s+0\.0%", shown)
    assert re.search(r"site\s+SEA\s+week_10\s+1\s+0\s+0\.0%", shown)
    assert re.search(rf"SEA\s+{study_id}\s+week_10\s+\S+\s+16\s+none", shown)
    assert study_id not in cli("follow-up", "--on", day_75, "--within", "15", user="carol")


READING = [
    ["participants"],
    ["due"],
    ["follow-up"],
    ["due", "--missed"],
    ["site", "list"],
    ["user", "list"],
    ["user", "grants"],
    ["audit", "verify"],
    ["randomization", "verify"],
    ["schedule", "SEA-0001"],
    ["adherence"],
    ["ae", "list"],
    ["session", "plan", "SEA-0001"],
    ["identity", "show", "S00001"],
    ["export", "--out", "data.csv"],
    ["backup", "copy.db"],
    ["report", "--out", "report"],
    ["analyze", "--db", "lumbar.db", "--out", "results"],
]


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_reading_commands_create_no_database(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env: dict[str, str | None] = {"LUMBAR_DB": None, "LUMBAR_KEY": None, "LUMBAR_KEY_FILE": None}
    code, output = invoke(*command, "--as", "admin", env=env)
    assert code == 2, output
    assert "there is no trial" in output
    assert "lumbar init PROTOCOL" in output
    assert os.listdir(tmp_path) == []


def test_screening_template_without_a_trial_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = invoke("screening", "template", env={"LUMBAR_DB": None})
    assert code == 2
    assert "there is no trial here" in output
    assert os.listdir(tmp_path) == []
    code, output = invoke("screening", "template", "--protocol", "massage-clbp")
    assert code == 0
    assert yaml.safe_load(output)["sex"] is None


def test_a_questionnaire_outside_its_window_is_flagged_at_once(cli: Cli, tmp_path: Path) -> None:
    """Issue 10: a week-26 questionnaire entered on randomization day was accepted silently.
    It is stored, and the command says it is outside the window, by how much, and what the
    protocol's rule does with it; an edit says it again, and a corrected date is checked."""
    study_id = randomized(cli, answers_file(tmp_path / "a.yaml"))
    added = cli(
        "questionnaire", "add", study_id, "week_26", "bothersomeness",
        "--answer=bothersomeness=3", user="carol",
    )  # fmt: skip
    assert f"{study_id} week_26 bothersomeness: score 3" in added
    assert "warning: outside the window of week_26: completed on day 0" in added
    assert "161 days before its window opens" in added
    assert "analysis.out_of_window: include" in added
    later = (dt.date.today() + dt.timedelta(days=182)).isoformat()
    # Dates are checked against today: a date 182 days ahead is refused until then.
    refused = cli(
        "questionnaire", "edit", study_id, "week_26", "bothersomeness",
        "--completed", later, "--reason", "wrong date", user="carol", code=2,
    )  # fmt: skip
    assert "completed_on" in refused
    corrected = cli(
        "questionnaire", "edit", study_id, "week_26", "bothersomeness",
        "--answer=bothersomeness=4", "--reason", "misread", user="carol",
    )  # fmt: skip
    assert "score 4" in corrected
    assert "warning: outside the window of week_26" in corrected  # still early


def test_invite_show_prints_a_link_to_send_and_revoke_ends_it(cli: Cli, tmp_path: Path) -> None:
    study_id = randomized(cli, answers_file(tmp_path / "a.yaml"))
    shown = cli(
        "invite", "show", study_id, "week_10", "--base-url", "https://t.example/", user="carol"
    )
    link = next(line for line in shown.splitlines() if line.startswith("https://"))
    assert link.startswith("https://t.example/survey/lms_")
    opens = (dt.date.today() + dt.timedelta(days=63)).isoformat()
    assert f"opens {opens}" in shown
    cli("invite", "show", study_id, "week_10", user="carol")  # a new link: the first revoked
    listed = cli("invite", "list", study_id, user="carol")
    assert "revoked" in listed
    assert "not open yet" in listed
    assert link.rsplit("/", 1)[1] not in listed  # only its prefix
    assert "link revoked" in cli("invite", "revoke", study_id, "week_10", user="carol")
    assert "no link to revoke" in cli("invite", "revoke", study_id, "week_10", user="carol", code=2)
