"""The demo: a SYNTHETIC reference trial run end to end, analysed, and reported.

:func:`run_demo` creates a fresh SQLite trial of the shipped ``massage-clbp``
protocol, simulates it through the operations API (screening to the 52-week
visit, audit trail included), analyses it as pre-specified as an unblinded
statistician, and writes the report. ``lumbar demo`` and ``make demo`` call it;
bench/demo.py times its phases.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lumbar.analysis.plan import Settings
from lumbar.application import trial_report
from lumbar.errors import OperationError, Problem
from lumbar.operations import Trial, create_trial
from lumbar.protocol import shipped_protocol
from lumbar.report import ReportContent, ReportFiles, write_report
from lumbar.simulate import DEFAULT_ASSUMPTIONS, Assumptions, SimulationSummary, SyntheticClock
from lumbar.simulate import simulate_trial as simulate
from lumbar.synthesis import shipped_studies

if TYPE_CHECKING:
    from lumbar.operations import AuditReport

__all__ = [
    "DEMO_PROTOCOL",
    "DEMO_START",
    "DemoResult",
    "SyntheticTrial",
    "run_demo",
    "synthetic_trial",
]

DEMO_PROTOCOL = "massage-clbp"
DEMO_START = dt.datetime(2024, 1, 8, 9, 0, tzinfo=dt.UTC)
"""The synthetic trial's first day: fixed, so a seed always gives the same trial, and in the
past, so every visit has happened by the time the report is made."""

DEMO_FILES = (
    "trial.db",
    "trial.db-wal",
    "trial.db-shm",
    "trial.db-lock",
    "trial.db.key",
    "trial.db.head",
    "trial.db.head.lock",
)


@dataclass
class DemoResult:
    """What the demo made, and how long each phase took (seconds)."""

    folder: Path
    database: Path
    simulation: SimulationSummary
    content: ReportContent
    report: ReportFiles
    audit: AuditReport | None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class SyntheticTrial:
    """A simulated trial in a SQLite file: where it is, what was assumed, what happened."""

    database: Path
    key_file: Path
    assumptions: Assumptions
    summary: SimulationSummary
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.database}"

    def open(self, user: str) -> Trial:
        """Open the trial as ``user`` (the simulator's staff: admin, coordinator, assessor,
        statistician, therapist1...)."""
        return Trial.open(self.url, user, key_file=self.key_file)


def synthetic_trial(
    out: Path,
    *,
    participants: int = DEFAULT_ASSUMPTIONS.participants,
    seed: int = 20110705,
    replace_existing: bool = False,
    assumptions: Assumptions = DEFAULT_ASSUMPTIONS,
    progress: Callable[[str, int, int], None] | None = None,
    phase: Callable[[str], None] | None = None,
) -> SyntheticTrial:
    """Create ``out``/trial.db from the shipped protocol and simulate it to its last visit."""
    announce = phase or (lambda name: None)
    database = _fresh(out, replace_existing)
    url = f"sqlite:///{database}"
    key_file = out / "trial.db.key"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    announce("creating the trial")
    clock = SyntheticClock(DEMO_START)
    protocol = shipped_protocol(DEMO_PROTOCOL)
    create_trial(
        protocol,
        url,
        admin="admin",
        key_file=key_file,
        seed=seed,
        synthetic=True,
        clock=clock,
    )
    timings["create"] = time.perf_counter() - started
    announce("simulating the trial")
    mark = time.perf_counter()
    chosen = replace(assumptions, participants=participants)
    summary = simulate(
        protocol,
        lambda user: Trial.open(url, user, key_file=key_file, clock=clock),
        clock,
        assumptions=chosen,
        seed=seed,
        progress=progress,
    )
    timings["simulate"] = time.perf_counter() - mark
    return SyntheticTrial(database, key_file, chosen, summary, timings)


def run_demo(
    out: Path,
    *,
    participants: int = DEFAULT_ASSUMPTIONS.participants,
    seed: int = 20110705,
    replace_existing: bool = False,
    assumptions: Assumptions = DEFAULT_ASSUMPTIONS,
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    phase: Callable[[str], None] | None = None,
    evidence: bool = True,
) -> DemoResult:
    """Simulate, analyse and report a synthetic trial in ``out``; see the module docstring.

    ``phase`` is told each phase's name as it starts; ``progress`` follows the simulation.
    With ``evidence``, the report places the trial among the shipped massage trials.
    """
    if participants < 30:
        raise OperationError(
            "too few participants",
            [
                Problem(
                    "participants",
                    "must be at least 30 (ten per arm) for the analysis to be estimable",
                    participants,
                )
            ],
        )
    announce = phase or (lambda name: None)
    started = time.perf_counter()
    made = synthetic_trial(
        out,
        participants=participants,
        seed=seed,
        replace_existing=replace_existing,
        assumptions=assumptions,
        progress=progress,
        phase=announce,
    )
    timings = dict(made.timings)
    announce("analysing")
    mark = time.perf_counter()
    statistician = made.open("statistician")
    try:
        content = trial_report(
            statistician,
            settings=settings or Settings(seed=seed),
            assumptions=[*made.assumptions.describe(), ("seed", str(seed), "the demo's --seed")],
            studies=shipped_studies() if evidence else None,
        )
    finally:
        statistician.close()
    timings["analyse"] = time.perf_counter() - mark
    announce("writing the report")
    mark = time.perf_counter()
    report = write_report(content, out / "report")
    timings["report"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return DemoResult(out, made.database, made.summary, content, report, content.audit, timings)


def _fresh(out: Path, replace_existing: bool) -> Path:
    """The demo's database path in ``out``, refusing (or clearing) an earlier demo's files."""
    out.mkdir(parents=True, exist_ok=True)
    database = out / "trial.db"
    if database.exists():
        if not replace_existing:
            raise OperationError(
                "a demo trial exists here",
                [
                    Problem(
                        "out",
                        "already holds trial.db",
                        str(out),
                        "choose another folder, or replace the earlier demo (lumbar demo "
                        "--replace)",
                    )
                ],
            )
        for name in DEMO_FILES:
            (out / name).unlink(missing_ok=True)
    return database
