"""A writer killed with SIGKILL mid-stream loses no acknowledged write.

A child process opens the trial and screens people as fast as it can; after
each screening commits it sends the screening number to the test (its
acknowledgement). As soon as the test has read ``ACKS`` acknowledgements it
kills the child with SIGKILL. The child does nothing but write, so by then it is
almost always inside its next transaction: the kill lands mid-transaction
(when it lands after a commit, before the acknowledgement went out, that write
is stored unacknowledged, which is allowed). The test then opens the database
again (on SQLite, recovering from the write-ahead log the dead writer left
behind) and checks that every acknowledged screening is stored with its audit
record, that at most the one write in flight was stored without an
acknowledgement, and that the audit chain is intact. This is done ``ROUNDS``
times on the same trial, each new writer continuing on the recovered database.

The child is forked (multiprocessing's "fork" start method) from the test
process, which has already imported lumbar (a fresh interpreter spends over two
seconds importing it), and opens the trial itself after the fork; the test holds
no connection to the database while the child runs. Acknowledgements travel
over a pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from lumbar.operations import Trial
from lumbar.store.schema import AuditRecord, Participant
from tests.operations.world import World, eligible_answers

pytestmark = pytest.mark.integration

ACKS = 30
"""Acknowledged writes to wait for before each kill."""
ROUNDS = 3
TIMEOUT = 60
"""Seconds to wait for the writer's next acknowledgement before the test fails."""


def _screen_until_killed(url: str, key_file: Path, answers: dict[str, Any], acks: Any) -> None:
    """The writer: screen people one after another, acknowledging each committed screening."""
    try:
        trial = Trial.open(url, "coord", key_file=key_file)
        while True:
            view = trial.screen("SEA", answers)
            acks.send(("ack", view.screening_number))
    except BaseException:
        acks.send(("error", traceback.format_exc()))
        raise


def write_until_killed(world: World) -> list[str]:
    """Run a writer until ``ACKS`` writes are acknowledged, SIGKILL it; return every ack it sent."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    writer = context.Process(
        target=_screen_until_killed,
        args=(world.url, world.key_file, eligible_answers(world.protocol), sending),
        name="screening writer",
    )
    acked: list[str] = []
    try:
        writer.start()
        sending.close()
        while len(acked) < ACKS:
            assert receiving.poll(TIMEOUT), f"no acknowledgement in {TIMEOUT} s"
            try:
                kind, value = receiving.recv()
            except EOFError:
                raise AssertionError(f"the writer died after {len(acked)} writes") from None
            assert kind == "ack", f"the writer failed after {len(acked)} writes:\n{value}"
            acked.append(value)
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(TIMEOUT)
        # Acknowledgements sent before the kill landed count too.
        try:
            while receiving.poll(0):
                kind, value = receiving.recv()
                assert kind == "ack", value
                acked.append(value)
        except EOFError:
            pass
    finally:
        if writer.is_alive():
            writer.kill()
            writer.join()
        receiving.close()
    assert writer.exitcode == -signal.SIGKILL, f"the writer ended by itself ({writer.exitcode})"
    return acked


def stored_screenings(world: World) -> tuple[list[str], list[str]]:
    """Screening numbers stored, and those the audit trail records, in order; audit checked."""
    monitor = world.as_("monitor")
    try:
        audit = monitor.verify_audit()
        assert audit.intact, audit.findings
        with monitor.db.read() as session:
            stored = list(
                session.execute(
                    select(Participant.screening_number).order_by(Participant.screening_number)
                ).scalars()
            )
            audited = list(
                session.execute(
                    select(AuditRecord.entity_id)
                    .where(AuditRecord.action == "screening.record")
                    .order_by(AuditRecord.seq)
                ).scalars()
            )
    finally:
        monitor.close()
    return stored, audited


def test_a_writer_killed_mid_stream_loses_no_acknowledged_write(world: World) -> None:
    url = make_url(world.url)
    sqlite_path = url.database if url.get_backend_name() == "sqlite" else None
    before: list[str] = []
    for _ in range(ROUNDS):
        acked = write_until_killed(world)
        if sqlite_path is not None:
            # The dead writer's log is still there: opening the database must recover from it.
            assert Path(f"{sqlite_path}-wal").exists()
        stored, audited = stored_screenings(world)
        new = stored[len(before) :]
        assert stored[: len(before)] == before
        assert set(acked) <= set(new), "an acknowledged screening was lost"
        # Only the write in flight when the kill landed may be stored unacknowledged.
        assert len(new) - len(acked) in (0, 1)
        assert stored == [f"S{number:05d}" for number in range(1, len(stored) + 1)]
        assert audited == stored
        before = stored
    # The recovered database takes new writes.
    coord = world.as_("coord")
    try:
        view = coord.screen("SEA", eligible_answers(world.protocol))
    finally:
        coord.close()
    assert view.screening_number == f"S{len(before) + 1:05d}"
