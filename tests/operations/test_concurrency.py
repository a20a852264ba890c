"""100 coordinators randomize at once: every one gets a distinct slot, in list order per stratum.

Each test starts from 100 enrolled participants with complete baselines in both
strata (RDQ below 12, and 12 or more) and randomizes all of them at once, each
randomization from its own ``Trial`` (its own engine and database connections):

- in 100 threads of the test process;
- in 100 separate OS processes, one randomization each. They are forked
  (multiprocessing's "fork" start method) from the test process, which has
  already imported lumbar: a fresh "spawn" interpreter spends over two seconds
  importing lumbar (pandas, SQLAlchemy, Alembic), which for 100 processes on a
  two-core machine is minutes. Each child opens the trial itself after the fork;
  no database connection crosses the fork.

Every thread or process opens its ``Trial`` first, then all wait at a barrier
and randomize together. On SQLite all 100 contend at once. On PostgreSQL each
randomization in progress holds a server connection, and the server's
connections are shared with any other test run (PostgreSQL's default
``max_connections`` is 100 in all): there at most half of ``max_connections``
(50 on a default server) randomize at once, and the rest queue to take their
place as soon as one finishes.

Afterwards each participant holds exactly one allocation; each stratum's taken
slots are exactly positions 1..k; the arms assigned, in position order, are the
concealed list's arms in order; the audit trail records one randomization per
participant, committed in list order within each stratum; and lumbar's own
checks (``verify_randomization``, ``verify_audit``) pass.

Preparing 100 participants takes 900 writes, so the first test on each backend
keeps a backup of its prepared trial (``lumbar.operations.backups``) and the
second restores it into its own fresh database (or prepares its own, when no
backup could be made, e.g. without ``pg_dump``).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import queue
import shutil
import threading
import time
import traceback
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from lumbar.errors import StoreError
from lumbar.operations import Trial, backup, restore
from lumbar.operations.context import arm_context
from lumbar.protocol import shipped_protocol
from lumbar.store.schema import Allocation, AllocationSlot, AuditHead, AuditRecord, Participant
from tests.operations.world import (
    Clock,
    World,
    answers_for,
    build_world,
    eligible_answers,
    rdq_answers,
)

pytestmark = pytest.mark.integration

PARTICIPANTS = 100
LOW = "baseline_rdq=rdq_under_12"
HIGH = "baseline_rdq=rdq_12_or_more"
TIMEOUT = 120
"""Seconds any wait (barrier, report, join) may take before the test fails."""


# ---------------------------------------------------------------------------- preparation


def enrol_with_baselines(world: World, count: int) -> dict[str, str]:
    """Enrol ``count`` participants at SEA with complete baselines; study id -> expected stratum.

    RDQ scores run through 0..23 (7 * i mod 24), so both strata fill about evenly and
    the cut point (12) is crossed both ways many times.
    """
    coord = world.as_("coord")
    expected: dict[str, str] = {}
    try:
        for index in range(count):
            screening = coord.screen("SEA", eligible_answers(world.protocol))
            coord.consent(screening.screening_number, "1.0", world.clock.today)
            study_id = coord.enrol(screening.screening_number)
            rdq_yes = (7 * index) % 24
            for instrument in world.protocol.baseline.instruments:
                answers = (
                    rdq_answers(rdq_yes) if instrument == "rdq" else answers_for(instrument, 1)
                )
                coord.record_questionnaire(
                    study_id, "baseline", instrument, answers, completed_on=world.clock.today
                )
            expected[study_id] = LOW if rdq_yes < 12 else HIGH
    finally:
        coord.close()
    assert 0.4 * count <= Counter(expected.values())[LOW] <= 0.6 * count
    return expected


@dataclass(frozen=True)
class Snapshot:
    """A backup of a prepared trial, its vault key, and where each participant belongs."""

    backup: Path
    key_file: Path
    expected: dict[str, str]


@dataclass(frozen=True)
class Prepared:
    world: World
    expected: dict[str, str]
    """Study id -> the stratum the participant's baseline puts them in."""
    in_flight: int
    """How many randomizations may hold a database connection at once."""


@pytest.fixture(scope="module")
def snapshots() -> dict[str, Snapshot]:
    """Prepared trials by backend, kept for the next test of this module."""
    return {}


@pytest.fixture
def prepared(
    database_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    snapshots: dict[str, Snapshot],
) -> Prepared:
    """A trial holding ``PARTICIPANTS`` participants ready to randomize, in a fresh database."""
    backend = make_url(database_url).get_backend_name()
    snapshot = snapshots.get(backend)
    if snapshot is None:
        world = build_world(database_url, tmp_path)
        expected = enrol_with_baselines(world, PARTICIPANTS)
        folder = tmp_path_factory.mktemp(f"prepared-{backend}")
        with contextlib.suppress(StoreError):  # only a shortcut for the next test
            snapshots[backend] = Snapshot(
                backup(
                    database_url, folder / "trial.backup", actor="admin", key_file=world.key_file
                ),
                Path(shutil.copy(world.key_file, folder / "trial.key")),
                expected,
            )
    else:
        restore(snapshot.backup, database_url, actor="admin", key_file=snapshot.key_file)
        protocol = shipped_protocol("massage-clbp")
        world = World(database_url, snapshot.key_file, Clock(), protocol)
        expected = dict(snapshot.expected)
    return Prepared(world, expected, connections_at_once(world))


def connections_at_once(world: World) -> int:
    """All participants on SQLite; on PostgreSQL at most half the server's connections."""
    admin = world.as_("admin")
    try:
        if admin.db.backend != "postgresql":
            return PARTICIPANTS
        with admin.db.read() as session:
            allowed = int(session.execute(text("SHOW max_connections")).scalar_one())
    finally:
        admin.close()
    return min(PARTICIPANTS, allowed // 2)


# ---------------------------------------------------------------------------- checks


def assert_randomized_once_each_in_list_order(world: World, expected: dict[str, str]) -> None:
    """Every participant of ``expected`` took one slot of their stratum, in list order."""
    stat = world.as_("stat")
    randomization = stat.context.key("randomization")
    try:
        report = stat.verify_randomization()
        assert report.valid, report.problems
        assert report.used == len(expected)
        audit = stat.verify_audit()
        assert audit.intact, audit.findings
        with stat.db.read() as session:
            taken = session.execute(
                select(
                    Participant.study_id,
                    Allocation.participant_id,
                    Allocation.slot_id,
                    Allocation.stratum,
                    Allocation.arm_sealed,
                    AllocationSlot.stratum.label("slot_stratum"),
                    AllocationSlot.position,
                )
                .join(Allocation, Allocation.participant_id == Participant.id)
                .join(AllocationSlot, AllocationSlot.id == Allocation.slot_id)
            ).all()
            randomizations = session.execute(
                select(AuditRecord.entity_id, AuditRecord.new)
                .where(AuditRecord.action == "participant.randomize")
                .order_by(AuditRecord.seq)
            ).all()
            list_arms: dict[str, list[str]] = {}
            for stratum in (LOW, HIGH):
                used = sum(1 for row in taken if row.slot_stratum == stratum)
                slots = session.execute(
                    select(AllocationSlot)
                    .where(AllocationSlot.stratum == stratum, AllocationSlot.position <= used)
                    .order_by(AllocationSlot.position)
                ).scalars()
                list_arms[stratum] = [
                    randomization.open(slot.arm_sealed, f"slot:{slot.stratum}:{slot.position}")
                    for slot in slots
                ]
            arm_of = {
                row.study_id: randomization.open(
                    row.arm_sealed, arm_context(row.participant_id, row.slot_id)
                )
                for row in taken
            }
    finally:
        stat.close()

    # Each participant randomized exactly once, into the stratum their baseline gives.
    assert Counter(row.study_id for row in taken) == Counter(expected.keys())
    assert {row.study_id: row.slot_stratum for row in taken} == expected
    assert all(row.stratum == row.slot_stratum for row in taken)

    for stratum in (LOW, HIGH):
        rows = sorted(
            (row for row in taken if row.slot_stratum == stratum), key=lambda row: row.position
        )
        # Slots 1..k of the stratum, none skipped, none taken twice...
        assert [row.position for row in rows] == list(range(1, len(rows) + 1)), stratum
        # ...holding the list's arms in the list's order.
        assert [arm_of[row.study_id] for row in rows] == list_arms[stratum], stratum

    # One audit record per randomization; within a stratum, commits follow list order.
    assert Counter(entity_id for entity_id, _ in randomizations) == Counter(expected.keys())
    position_of = {row.study_id: row.position for row in taken}
    committed: dict[str, list[int]] = {LOW: [], HIGH: []}
    for study_id, new in randomizations:
        record = json.loads(new or "null")
        assert record["stratum"] == expected[study_id]
        assert record["position"] == position_of[study_id]
        committed[record["stratum"]].append(record["position"])
    for stratum, positions in committed.items():
        assert positions == list(range(1, len(positions) + 1)), stratum


# ---------------------------------------------------------------------------- randomizing


def randomize_together(
    url: str,
    key_file: Path,
    clock: Clock,
    study_ids: list[str],
    barrier: Any,
    connection_slot: AbstractContextManager[Any],
) -> None:
    """Open the trial, wait at the barrier for everyone else, then randomize ``study_ids``.

    ``close`` after opening only empties the trial's connection pool (its next
    operation connects again), so nobody holds a connection while waiting.
    """
    trial = Trial.open(url, "coord", key_file=key_file, clock=clock)
    trial.close()
    barrier.wait(timeout=TIMEOUT)
    with connection_slot:
        try:
            for study_id in study_ids:
                trial.randomize(study_id)
        finally:
            trial.close()


def randomize_in_threads(prepared: Prepared, study_ids: list[str]) -> None:
    """One thread per participant, each with its own ``Trial``; all randomize at a barrier."""
    world = prepared.world
    barrier = threading.Barrier(len(study_ids))
    connections = threading.BoundedSemaphore(prepared.in_flight)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def randomize(study_id: str) -> None:
        try:
            randomize_together(
                world.url, world.key_file, world.clock, [study_id], barrier, connections
            )
        except BaseException as error:
            barrier.abort()  # the others stop waiting for a thread that will never come
            with lock:
                errors.append(error)

    threads = [
        threading.Thread(target=randomize, args=(study_id,), name=f"randomize {study_id}")
        for study_id in study_ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a randomizing thread hangs"
    real = [error for error in errors if not isinstance(error, threading.BrokenBarrierError)]
    if errors:
        raise BaseExceptionGroup("randomizing in threads failed", real or errors)


def _randomize_in_child(
    url: str,
    key_file: Path,
    clock: Clock,
    study_ids: list[str],
    barrier: Any,
    connections: Any,
    reports: Any,
) -> None:
    """A child process: randomize ``study_ids`` with the others; report how it went."""
    try:
        randomize_together(url, key_file, clock, study_ids, barrier, connections)
    except BaseException as error:
        barrier.abort()
        reports.put((study_ids, f"{type(error).__name__}: {traceback.format_exc()}"))
        raise
    reports.put((study_ids, None))


def randomize_in_processes(prepared: Prepared, study_ids: list[str], processes: int) -> None:
    """``processes`` forked children, each with its own ``Trial``, share out ``study_ids``."""
    world = prepared.world
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes)
    connections = context.BoundedSemaphore(prepared.in_flight)
    reports = context.Queue()
    shares = [study_ids[index::processes] for index in range(processes)]
    children = [
        context.Process(
            target=_randomize_in_child,
            args=(world.url, world.key_file, world.clock, share, barrier, connections, reports),
            name=f"randomize {share[0]}",
        )
        for share in shares
    ]
    outcomes: list[tuple[list[str], str | None]] = []
    try:
        for child in children:
            child.start()
        deadline = time.monotonic() + TIMEOUT
        while len(outcomes) < processes:
            try:
                outcomes.append(reports.get(timeout=1))
            except queue.Empty:
                if time.monotonic() > deadline or not any(c.is_alive() for c in children):
                    break
        for child in children:
            child.join(timeout=TIMEOUT)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
    failures = [f"{share}: {error}" for share, error in outcomes if error is not None]
    broken = [failure for failure in failures if "BrokenBarrierError" not in failure]
    assert not failures, "\n".join(broken or failures)
    exits = {child.name: child.exitcode for child in children if child.exitcode != 0}
    assert not exits, f"children failed without a report: {exits}"
    assert sorted(study for share, _ in outcomes for study in share) == sorted(study_ids)


# ---------------------------------------------------------------------------- tests


def test_100_threads_randomizing_at_once_take_distinct_slots_in_list_order(
    prepared: Prepared,
) -> None:
    randomize_in_threads(prepared, list(prepared.expected))
    assert_randomized_once_each_in_list_order(prepared.world, prepared.expected)


def test_100_processes_randomizing_at_once_take_distinct_slots_in_list_order(
    prepared: Prepared,
) -> None:
    randomize_in_processes(prepared, list(prepared.expected), processes=PARTICIPANTS)
    assert_randomized_once_each_in_list_order(prepared.world, prepared.expected)


OPEN_PROMPTLY = 2
"""Seconds opening a trial may take while somebody else is writing (it takes ~0.05 s)."""


def test_a_trial_opens_while_another_coordinator_is_writing(world: World) -> None:
    """Opening a trial only reads, and readers do not wait for writers (WAL on SQLite)."""
    errors: list[BaseException] = []
    opened = threading.Event()

    def open_trial() -> None:
        try:
            world.as_("monitor").close()
            opened.set()
        except BaseException as error:
            errors.append(error)

    opener = threading.Thread(target=open_trial, name="open during a write")
    writer = world.as_("coord")
    try:
        with writer.db.write() as session:
            # A write in progress, as every lumbar write begins: the audit head locked.
            session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update())
            opener.start()
            opened_promptly = opened.wait(timeout=OPEN_PROMPTLY)
    finally:
        writer.close()
        opener.join(timeout=TIMEOUT)
    assert not errors, errors
    assert opened_promptly, f"opening the trial waited more than {OPEN_PROMPTLY} s for a writer"
