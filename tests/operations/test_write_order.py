"""How writers take turns: SQLite's queue on a lock file, PostgreSQL's late audit-head lock.

On SQLite, lumbar's writers wait for each other on an exclusive ``flock`` of
``<database>-lock`` held for the whole unit of work (woken when it is released, instead of
polling with SQLite's busy handler). On PostgreSQL, a unit of work about one participant
(recording questionnaires, randomizing) locks that participant's row when it looks them
up and the audit head only when it appends its records at the end, so another such unit,
about someone else, runs meanwhile; its records come first in the chain because it
committed first.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from lumbar.store.schema import AuditHead, AuditRecord, Participant
from tests.operations.world import World, answers_for

pytestmark = pytest.mark.integration


def backend(world: World) -> str:
    return make_url(world.url).get_backend_name()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_writer_holds_the_writers_lock_file_until_it_commits(world: World) -> None:
    study_id = world.enrolled()
    trial = world.as_("coord")
    lock_file = Path(str(make_url(world.url).database) + "-lock")

    def free() -> bool:
        descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(descriptor)
        return True

    try:
        with trial.context.unit(trial.principal, "questionnaire") as unit:
            unit.participant(study_id)
            assert not free()
        assert free()
        assert oct(lock_file.stat().st_mode & 0o777) == "0o600"
    finally:
        trial.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_units_about_different_participants_run_side_by_side(world: World) -> None:
    first, second = world.enrolled(), world.enrolled()
    trial = world.as_("coord")
    other = create_engine(world.url)
    finished: list[str] = []

    def record_second() -> None:
        writer = world.as_("coord")
        try:
            writer.record_questionnaire(
                second,
                "baseline",
                "satisfaction",
                answers_for("satisfaction", 1),
                completed_on=world.clock.today,
            )
            finished.append(second)
        finally:
            writer.close()

    try:
        with trial.context.unit(trial.principal, "questionnaire", per_participant=True) as unit:
            participant = unit.participant(first)
            unit.audit("participant.probe", "participant", first)
            with other.connect() as connection:
                # The head is free while the unit works; its participant is locked.
                connection.execute(select(AuditHead.seq).with_for_update(nowait=True)).all()
                connection.rollback()
                with pytest.raises(OperationalError, match="lock"):
                    connection.execute(
                        select(Participant.id)
                        .where(Participant.id == participant.id)
                        .with_for_update(nowait=True)
                    ).all()
                connection.rollback()
            thread = threading.Thread(target=record_second)
            thread.start()
            thread.join(60)
            assert finished == [second], "the unit about another participant had to wait"
        with other.connect() as connection:
            actions = connection.execute(
                select(AuditRecord.action, AuditRecord.entity_id).order_by(AuditRecord.seq)
            ).all()[-2:]
        assert [tuple(row) for row in actions] == [
            ("questionnaire.record", f"{second}/baseline/satisfaction"),
            ("participant.probe", first),
        ]
        audit = world.as_("stat").verify_audit()
        assert audit.intact, audit.findings
    finally:
        other.dispose()
        trial.close()
