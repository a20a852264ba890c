"""The README's coordinator walk-through runs as written, so it cannot drift from what works.

Every command of the section "A coordinator's walk-through" runs in bash, one
command at a time and in the README's order, in an empty folder: ``sh`` blocks
command by command (a heredoc or a ``\\`` continuation belongs to its command),
and ``text`` blocks that show a session (``$ command`` followed by what it
prints). Each command must exit 0; for a session, every line the README shows
must appear in the output, in order (runs of spaces count as one, and ``...``
stands for anything). Variables a command exports reach the commands after it,
as in one shell.

Bash does all the shell's work (quoting, variables, ``$(...)``, heredocs,
redirections), and ``lumbar`` is the installed command, as a new user runs it:
the whole walk-through takes about 20 seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTION = "## A coordinator's walk-through"

_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]\w*)\1")


# ---------------------------------------------------------------------------- reading


@dataclass
class Step:
    """One command of the walk-through, and the output the README shows for it."""

    command: str
    line: int
    """Where the command starts in README.md."""
    expected: list[str] = field(default_factory=list)


def walkthrough_steps(readme: str) -> list[Step]:
    """The commands of the walk-through section, in order."""
    lines = readme.splitlines()
    start = next(n for n, line in enumerate(lines) if line.strip() == SECTION)
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("## ")), len(lines))
    steps: list[Step] = []
    position = start + 1
    while position < end:
        fence = lines[position].strip()
        if not fence.startswith("```"):
            position += 1
            continue
        language = fence.removeprefix("```").strip()
        closing = next(n for n in range(position + 1, end) if lines[n].strip() == "```")
        block = lines[position + 1 : closing]
        first = position + 2  # README line numbers count from 1
        if language == "sh":
            steps += shell_commands(block, first)
        elif language == "text" and block and block[0].startswith("$ "):
            steps += session(block, first)
        position = closing + 1
    return steps


def shell_commands(block: list[str], first_line: int) -> list[Step]:
    """The commands of a shell block (with their heredocs and continuation lines)."""
    steps = []
    index = 0
    while index < len(block):
        line = block[index]
        if not line.strip() or line.lstrip().startswith("#"):
            index += 1
            continue
        start = index
        while block[index].endswith("\\"):
            index += 1
        for _, delimiter in _HEREDOC.findall(" ".join(block[start : index + 1])):
            index += 1
            while block[index].strip() != delimiter:
                index += 1
        steps.append(Step("\n".join(block[start : index + 1]), first_line + start))
        index += 1
    return steps


def session(block: list[str], first_line: int) -> list[Step]:
    """``$ command`` lines of a text block, each with the output lines shown below it."""
    steps: list[Step] = []
    for offset, line in enumerate(block):
        if line.startswith("$ "):
            steps.append(Step(line.removeprefix("$ "), first_line + offset))
        elif line.strip() and line.strip() != "...":
            steps[-1].expected.append(line)
    return steps


def _pattern(line: str) -> re.Pattern[str]:
    parts = [re.escape(" ".join(part.split())) for part in line.split("...")]
    return re.compile(".*".join(parts))


def missing_output(expected: list[str], output: str) -> str | None:
    """The first expected line not found (in order) in ``output``; None when all are."""
    printed = [" ".join(line.split()) for line in output.splitlines()]
    position = 0
    for line in expected:
        pattern = _pattern(line)
        while position < len(printed) and not pattern.search(printed[position]):
            position += 1
        if position == len(printed):
            return line
        position += 1
    return None


# ---------------------------------------------------------------------------- running


@pytest.fixture
def shell_env() -> dict[str, str]:
    """The environment the walk-through starts with: lumbar on PATH, no LUMBAR_* set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LUMBAR_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_step(step: Step, env: dict[str, str], folder: Path) -> tuple[int, str, dict[str, str]]:
    """Run one command in bash; its exit status, output, and the environment after it."""
    exported = folder.parent / "walkthrough.env"
    script = f"set -o pipefail\n{step.command}\nstatus=$?\nenv -0 > '{exported}'\nexit $status\n"
    completed = subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    after = dict(
        entry.split("=", 1)
        for entry in exported.read_text().split("\0")
        if "=" in entry and not entry.startswith("_=")
    )
    return completed.returncode, completed.stdout + completed.stderr, after


# ---------------------------------------------------------------------------- tests


@pytest.mark.unit
def test_the_walkthrough_is_read_command_by_command() -> None:
    readme = "\n".join(
        [
            "## A coordinator's walk-through",
            "```sh",
            "lumbar init x   # comment",
            "# a comment line",
            "cat > a.yaml <<'EOF'",
            "a: 1",
            "EOF",
            "lumbar site add SEA \\",
            '  "Seattle"',
            "```",
            "```text",
            "$ lumbar enrol S00001",
            "SEA-0001",
            "...",
            "```",
            "## Next",
            "```sh",
            "lumbar not-this-one",
            "```",
        ]
    )
    steps = walkthrough_steps(readme)
    assert [step.command for step in steps] == [
        "lumbar init x   # comment",
        "cat > a.yaml <<'EOF'\na: 1\nEOF",
        'lumbar site add SEA \\\n  "Seattle"',
        "lumbar enrol S00001",
    ]
    assert [step.line for step in steps] == [3, 5, 8, 12]
    assert steps[-1].expected == ["SEA-0001"]
    assert missing_output(["a ... c", "d"], "x\na  b  c\nd\n") is None
    assert missing_output(["d", "a ... c"], "a b c\nd\n") == "a ... c"


def test_readme_walkthrough_runs_as_written(shell_env: dict[str, str], tmp_path: Path) -> None:
    steps = walkthrough_steps(README.read_text(encoding="utf-8"))
    assert len(steps) > 30, "the walk-through section was not found or not read"
    folder = tmp_path / "walk"
    folder.mkdir()
    env = shell_env
    for step in steps:
        code, output, env = run_step(step, env, folder)
        where = f"README.md:{step.line}: {step.command.splitlines()[0]}"
        assert code == 0, f"{where}\nexited {code}:\n{output}"
        missing = missing_output(step.expected, output)
        assert missing is None, f"{where}\ndoes not print {missing!r}; it printed:\n{output}"
    for made in ("trial.db", "trial.db.key", "data.csv", "trial-backup.db", "restored.db"):
        assert (folder / made).is_file(), f"the walk-through should leave {made}"
    assert not list(folder.glob("*.restoring")), "a restore left its partial copy behind"
