"""Running the ``lumbar`` command in tests, as a user of one trial database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from lumbar.cli import app
from lumbar.protocol import shipped_protocol

runner = CliRunner()

NO_EXCLUSIONS = [
    question.id
    for question in shipped_protocol("massage-clbp").eligibility.questions
    if question.type == "yes_no"
    and question.id
    not in {
        "health_plan_member",
        "recent_primary_care_visit",
        "nonspecific_diagnosis",
        "physician_willing",
        "near_therapist",
    }
]


class Cli:
    def __init__(self, url: str, key_file: Path):
        self.url = url
        self.key_file = key_file

    def __call__(
        self, *args: str, user: str | None = "admin", code: int = 0, input: str | None = None
    ) -> str:
        """Run ``lumbar *args`` as ``user``; ``input`` is what is typed (or piped) to it."""
        options = ["--db", self.url, "--key-file", str(self.key_file)]
        if user:
            options += ["--as", user]
        result = runner.invoke(app, [*args, *options], input=input)
        assert result.exit_code == code, result.output
        return str(result.output)


def answers_file(path: Path) -> Path:
    """Screening answers of an eligible person, as a YAML file."""
    answers: dict[str, Any] = {
        "health_plan_member": True,
        "age": 47,
        "sex": "female",
        "pain_duration": "years_1_to_5",
        "pain_frequency": "every_day",
        "recent_primary_care_visit": True,
        "nonspecific_diagnosis": True,
        "physician_willing": True,
        "near_therapist": True,
    }
    answers.update(dict.fromkeys(NO_EXCLUSIONS, False))
    path.write_text("\n".join(f"{k}: {str(v).lower()}" for k, v in answers.items()) + "\n")
    return path


def invoke(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    """Run ``lumbar`` with exactly these arguments (no --db, --as or --key-file added)."""
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, str(result.output)


BASELINE = {
    "bothersomeness": ["bothersomeness=7"],
    "satisfaction": ["satisfaction=2"],
    "disability_days": ["restricted_days=6", "bed_days=1"],
    "medication_use": ["any_medication=0"],
    "lifestyle": ["sleep_hours=6.5", "exercise_days=2"],
}
"""Baseline answers (besides the RDQ) of one participant, as --answer pairs."""


def randomized(cli: Cli, answers: Path, rdq_yes: int = 13, user: str = "carol") -> str:
    """Screen, consent, enrol, take the baseline and randomize one person; their study id."""
    screened = cli("screening", "add", "--site", "SEA", "--answers", str(answers), user=user)
    number = screened.split(":")[0].strip()
    cli("consent", number, "--version", "1.0", user=user)
    study_id = cli("enrol", number, user=user).strip()
    rdq = [f"--answer=rdq_{n:02d}={int(n <= rdq_yes)}" for n in range(1, 25)]
    cli("questionnaire", "add", study_id, "baseline", "rdq", *rdq, user=user)
    for instrument, pairs in BASELINE.items():
        cli(
            "questionnaire", "add", study_id, "baseline", instrument,
            *(f"--answer={pair}" for pair in pairs), user=user,
        )  # fmt: skip
    cli("randomize", study_id, user=user)
    return study_id
