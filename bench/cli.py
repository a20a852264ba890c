"""Benchmark: how fast ``lumbar`` starts, against importing SQLAlchemy in the same run.

Run by hand from the repository root (it is not a test; about 30 seconds)::

    .venv/bin/python bench/cli.py
    .venv/bin/python bench/cli.py --runs 15

What is measured, each as a subprocess started the way a user starts it (the venv's
``lumbar`` console script), so interpreter start-up and every import count:

- ``lumbar --version`` and ``lumbar --help``;
- ``lumbar site add`` (a new site each run) and ``lumbar due`` on a throwaway SQLite
  trial made with ``lumbar init`` in a temporary folder: the commands a coordinator
  runs many times a day, which analyse nothing;
- the peer: ``python -c "import sqlalchemy"``, the one library every command on a
  trial needs, and ``python -c "pass"``, the interpreter alone.

The runs go round robin (one of each command per round), so a busy moment of a
shared machine falls on every command alike; each command's median is shown with
its ratio to the peer's median. The targets (issue 9): ``lumbar --version`` under
0.3 s, and the light commands within 2x of the peer. Then, for ``lumbar --version``,
the packages that took longest to import (``python -X importtime``), and for each
command which of the analysis packages (pandas, NumPy, SciPy, statsmodels, numba,
matplotlib) it loaded: none should be (tests/test_startup.py checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common import machine

LUMBAR = Path(sys.executable).parent / "lumbar"
"""The venv's console script, so each command starts as a user starts it."""
PYTHON = sys.executable
VERSION_TARGET = 0.3
"""Issue 9: ``lumbar --version`` under 0.3 s of wall time."""
PEER_FACTOR = 2.0
"""Issue 9: light commands within 2x of ``python -c "import sqlalchemy"``."""
PEER = "python -c 'import sqlalchemy'"
HEAVY = ("pandas", "numpy", "scipy", "statsmodels", "numba", "matplotlib")
PROBE = """
import json, sys
import lumbar.cli
try:
    lumbar.cli.app({args!r}, standalone_mode=False)
except SystemExit:
    pass
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


@dataclass
class Command:
    """One command line to time; ``{site}`` in it becomes a new site code each run."""

    name: str
    argv: list[str]
    light: bool
    """A command that analyses nothing (held to the peer target)."""
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (default 9)")
    return parser.parse_args(argv)


def environment() -> dict[str, str]:
    """The user's environment without lumbar's own variables, so nothing else is read.

    PYTHONDONTWRITEBYTECODE is dropped too: a user's Python keeps compiled modules
    (``__pycache__``), and a sandbox that forbids them would time compiling lumbar's
    source on every run instead of starting it.
    """
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LUMBAR_") and key != "PYTHONDONTWRITEBYTECODE"
    }


def run(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def make_trial(folder: Path, env: dict[str, str]) -> list[str]:
    """A throwaway trial; the options that open it as its administrator."""
    url = f"sqlite:///{folder / 'trial.db'}"
    key = folder / "trial.db.key"
    options = ["--db", url, "--key-file", str(key)]
    subprocess.run([str(LUMBAR), "init", "massage-clbp", *options], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return [*options, "--as", "admin"]


def commands(trial: list[str]) -> list[Command]:
    return [
        Command("python -c 'pass'", [PYTHON, "-c", "pass"], light=False),
        Command(PEER, [PYTHON, "-c", "import sqlalchemy"], light=False),
        Command("lumbar --version", [str(LUMBAR), "--version"], light=True),
        Command("lumbar --help", [str(LUMBAR), "--help"], light=True),
        Command("lumbar site add", [str(LUMBAR), "site", "add", "{site}", "Site", *trial], True),
        Command("lumbar due", [str(LUMBAR), "due", *trial], light=True),
    ]


def heavy_loaded(args: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [PYTHON, "-c", PROBE.format(args=args, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return [f"(probe failed: {done.stderr.strip().splitlines()[-1:]})"]
    loaded: list[str] = json.loads(lines[-1])
    return loaded


def import_times(env: dict[str, str], shown: int = 10) -> list[tuple[float, str]]:
    """Where ``lumbar --version`` spends its import time: each package's own import time
    (``python -X importtime``'s self column, summed over the package's modules), the
    largest first; lumbar's own modules are split by subpackage."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", "import lumbar.cli; lumbar.cli.main()", "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        if not own.strip().isdigit():
            continue
        parts = name.strip().split(".")
        package = ".".join(parts[:2]) if parts[0] == "lumbar" else parts[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1e6
    return sorted(((seconds, name) for name, seconds in totals.items()), reverse=True)[:shown]


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments(argv)
    env = environment()
    print(
        "lumbar start-up benchmark: wall time of each command as a subprocess (the venv's "
        f"console script), interpreter start-up included; {options.runs} runs each, round "
        "robin, median shown"
    )
    with tempfile.TemporaryDirectory(prefix="lumbar-bench-cli-") as folder:
        trial = make_trial(Path(folder), env)
        timed = commands(trial)
        for round_ in range(options.runs):
            for command in timed:
                argv = [part.replace("{site}", f"S{round_:03d}") for part in command.argv]
                command.seconds.append(run(argv, env))
        peer = next(command for command in timed if command.name == PEER).median
        print()
        print(f"{'command':<32}{'median s':>10}{'min s':>9}{'max s':>9}{'x peer':>9}")
        print("-" * 69)
        for command in timed:
            print(
                f"{command.name:<32}{command.median:>10.3f}{min(command.seconds):>9.3f}"
                f"{max(command.seconds):>9.3f}{command.median / peer:>8.2f}x"
            )
        print(f"peer: {PEER}")
        print()
        print("where `lumbar --version` spends its imports (python -X importtime, own time):")
        for seconds, name in import_times(env):
            print(f"  {seconds:7.3f} s  {name}")
        print()
        print("analysis packages loaded (" + ", ".join(HEAVY) + "):")
        probes = {
            "lumbar --version": ["--version"],
            "lumbar --help": ["--help"],
            "lumbar site add": ["site", "add", "SX", "Site", *trial],
            "lumbar due": ["due", *trial],
        }
        for name, args in probes.items():
            print(f"  {name:<20} {', '.join(heavy_loaded(args, env)) or 'none'}")
    print()
    for line in machine():
        print(line)
    version = next(command for command in timed if command.name == "lumbar --version").median
    worst = max((command for command in timed if command.light), key=lambda c: c.median)
    print(
        f"target: `lumbar --version` under {VERSION_TARGET} s: "
        f"{'met' if version < VERSION_TARGET else 'not met'} (median {version:.3f} s)"
    )
    ratio = worst.median / peer
    print(
        f"target: light commands within {PEER_FACTOR:g}x of `{PEER}`: "
        f"{'met' if ratio <= PEER_FACTOR else 'not met'} (slowest: {worst.name}, "
        f"{ratio:.2f}x the peer's {peer:.3f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
