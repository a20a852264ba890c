"""The demo: a SYNTHETIC reference trial run end to end, analysed, and reported.

:func:`run_demo` creates a fresh SQLite trial of the shipped ``massage-clbp``
protocol, simulates it through the operations API (screening to the 52-week
visit, audit trail included), analyses it as pre-specified as an unblinded
statistician, and writes the report. ``lumbar demo`` and ``make demo`` call it;
bench/demo.py times its phases.

Then :func:`demo_accounts` gives one member of staff of each role a random password
(written to ``accounts.txt``, owner-only), so a new user can open the demo trial in the
staff web pages (``lumbar serve --db lumbar-demo/trial.db``) as each role in turn.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from lumbar.analysis.plan import Settings
from lumbar.application import trial_report
from lumbar.errors import OperationError, Problem
from lumbar.operations import Trial, create_trial
from lumbar.operations.schedule import visit_window
from lumbar.protocol import shipped_protocol
from lumbar.report import ReportContent, ReportFiles, write_report
from lumbar.simulate import (
    DEFAULT_ASSUMPTIONS,
    Assumptions,
    SimulationSummary,
    SyntheticClock,
    join_now,
)
from lumbar.simulate import simulate_trial as simulate
from lumbar.synthesis import shipped_studies

if TYPE_CHECKING:
    from lumbar.operations import AuditReport

__all__ = [
    "ACCOUNTS_BANNER",
    "ACCOUNTS_FILE",
    "DEMO_ADDRESS",
    "DEMO_PROTOCOL",
    "DEMO_START",
    "DemoAccount",
    "DemoResult",
    "OpenFollowUp",
    "SyntheticTrial",
    "demo_accounts",
    "open_follow_up",
    "run_demo",
    "synthetic_trial",
    "write_accounts",
]

DEMO_PROTOCOL = "massage-clbp"
DEMO_START = dt.datetime(2024, 1, 8, 9, 0, tzinfo=dt.UTC)
"""The synthetic trial's first day: fixed, so a seed always gives the same trial, and in the
past, so every visit has happened by the time the report is made."""

DEMO_ADDRESS = "http://127.0.0.1:8000/"
"""Where ``lumbar serve`` answers by default: the demo tells a new user to open it."""

ACCOUNTS_FILE = "accounts.txt"
ACCOUNTS_BANNER = "SYNTHETIC DEMO ACCOUNTS"

DEMO_ROLES = (
    ("coordinator", "coordinator"),
    ("outcome_assessor", "assessor"),
    ("therapist", "therapist1"),
    ("statistician", "statistician"),
    ("monitor", "monitor"),
    ("admin", "admin"),
)
"""One account of each role, as (role, user name): the simulator's staff
(lumbar.simulate.trial.populate_staff), and a monitor, which the simulator does not need
and :func:`demo_accounts` adds."""

DEMO_FILES = (
    ACCOUNTS_FILE,
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
    accounts: list[DemoAccount] = field(default_factory=list)
    accounts_file: Path | None = None
    open_follow_up: OpenFollowUp | None = None


@dataclass(frozen=True)
class OpenFollowUp:
    """A synthetic participant whose follow-up visit is open today and not yet answered."""

    study_id: str
    visit: str
    opens: dt.date
    last_day: dt.date


@dataclass(frozen=True)
class DemoAccount:
    """A demo trial's member of staff, with the password the demo gave them."""

    role: str
    username: str
    password: str = field(repr=False)


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
    accounts: bool = True,
    follow_up_today: bool = True,
    now: dt.datetime | None = None,
) -> DemoResult:
    """Simulate, analyse and report a synthetic trial in ``out``; see the module docstring.

    ``phase`` is told each phase's name as it starts; ``progress`` follows the simulation.
    With ``evidence``, the report places the trial among the shipped massage trials.
    With ``accounts``, one member of staff of each role gets a password to sign in to the
    web pages with (:func:`demo_accounts`). With ``follow_up_today``, after the report one
    more synthetic participant is left with a follow-up open on ``now``'s day (default: the
    real time), to answer through their link (:func:`open_follow_up`); the report, made
    before, describes the simulated trial without them.
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
    made_accounts: list[DemoAccount] = []
    accounts_file = None
    opened = None
    if follow_up_today:
        announce("leaving a follow-up open today")
        mark = time.perf_counter()
        opened = open_follow_up(made, now or dt.datetime.now(dt.UTC), seed=seed)
        timings["open follow-up"] = time.perf_counter() - mark
    if accounts:
        announce("creating the demo accounts")
        mark = time.perf_counter()
        made_accounts = demo_accounts(made)
        accounts_file = write_accounts(made_accounts, out / ACCOUNTS_FILE, made.database)
        timings["accounts"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    return DemoResult(
        out,
        made.database,
        made.summary,
        content,
        report,
        content.audit,
        timings,
        made_accounts,
        accounts_file,
        opened,
    )


def open_follow_up(made: SyntheticTrial, now: dt.datetime, *, seed: int) -> OpenFollowUp:
    """Randomize one more synthetic participant as long before ``now`` as the first follow-up
    visit's target day, so that its window is open on ``now``'s day and nothing of it is
    answered: ``lumbar invite show`` then gives a link that opens on the demo server.

    The demo's report was written before: it describes the simulated trial, without them.
    """
    protocol = shipped_protocol(DEMO_PROTOCOL)
    visit = protocol.follow_up_visits[0]
    clock = SyntheticClock(now - dt.timedelta(days=visit.day))
    coordinator = Trial.open(made.url, "coordinator", key_file=made.key_file, clock=clock)
    try:
        study_id = join_now(
            protocol, coordinator, clock, assumptions=made.assumptions, seed=seed + 1
        )
    finally:
        coordinator.close()
    opens, last_day = visit_window(visit, clock.now.date())
    return OpenFollowUp(study_id, visit.id, opens, last_day)


def demo_accounts(made: SyntheticTrial) -> list[DemoAccount]:
    """Give one member of staff of each role a random password, adding a monitor.

    Through the operations, as the trial's administrator: the passwords are hashed with the
    trial's own argon2id parameters (a fraction of a second each, on purpose), and each
    change is in the audit trail. They are random because a demo trial is still a server
    on the network once served; they are for this synthetic trial only.
    """
    admin = made.open("admin")
    try:
        known = {member.username for member in admin.staff()}
        accounts = []
        for role, username in DEMO_ROLES:
            if username not in known:
                admin.add_staff(username, role, all_sites=True)
            password = secrets.token_urlsafe(18)
            admin.set_password(password, username)
            accounts.append(DemoAccount(role, username, password))
    finally:
        admin.close()
    return accounts


def write_accounts(accounts: list[DemoAccount], path: Path, database: Path) -> Path:
    """Write the demo's accounts to ``path``, readable by its owner only (0600)."""
    lines = [
        f"{ACCOUNTS_BANNER}: passwords for the synthetic demo trial in {database} only.",
        "Never use them, or this trial, for real people.",
        "",
        f"Start the web pages:  lumbar serve --db {database}",
        f"Then open:            {DEMO_ADDRESS}",
        "",
        f"{'role':<18}{'user name':<15}password",
        *(f"{account.role:<18}{account.username:<15}{account.password}" for account in accounts),
    ]
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # whatever the umask
    return path


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
