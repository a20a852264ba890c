"""The database layer: migrations match the models, SQLite's durability settings, URLs."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from lumbar.errors import StoreError
from lumbar.store import Database, default_key_file, resolve_url
from lumbar.store.schema import Base

pytestmark = pytest.mark.integration


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    database.dispose()


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    database.migrate()
    with database.read() as session:
        assert session.execute(text("SELECT seq FROM audit_head WHERE id = 1")).scalar_one() == 0
    database.dispose()


def test_sqlite_runs_in_wal_with_full_synchronous_commits(tmp_path: Path) -> None:
    database = Database(str(tmp_path / "trial.db"))
    with database.read() as session:
        pragma = {
            name: session.execute(text(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }
    database.dispose()


def test_a_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    database = Database(str(tmp_path / "trial.db"))
    database.migrate()

    def failing_write() -> None:
        with database.write() as session:
            session.execute(text("UPDATE audit_head SET seq = 99 WHERE id = 1"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_write()
    with database.read() as session:
        assert session.execute(text("SELECT seq FROM audit_head")).scalar_one() == 0
    database.dispose()


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        (None, "sqlite:///lumbar.db"),
        ("trial.db", "sqlite:///trial.db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////abs/t.db", "sqlite:////abs/t.db"),
    ],
)
def test_urls_a_user_types(typed: str | None, url: str) -> None:
    assert resolve_url(typed) == url


def test_key_file_defaults() -> None:
    assert default_key_file("sqlite:///trials/a.db") == Path("trials/a.db.key")
    assert default_key_file("postgresql+psycopg://u@h/db") == Path("lumbar.key")


def test_unsupported_and_unreachable_databases_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="must be SQLite or PostgreSQL"):
        Database("mysql://u@h/db")
    missing_folder = Database(str(tmp_path / "no" / "such" / "folder" / "t.db"))
    assert missing_folder.is_initialised() is False  # asking creates nothing
    assert not (tmp_path / "no").exists()
    with pytest.raises(StoreError, match="cannot open the trial database"):
        missing_folder.migrate()


# ---------------------------------------------------------------- a damaged or busy file


def _migrated_file(tmp_path: Path) -> Path:
    path = tmp_path / "trial.db"
    database = Database(str(path))
    database.migrate()
    database.dispose()
    return path


def _read_every_table(database: Database) -> None:
    with database.read() as session:
        for table in Base.metadata.sorted_tables:
            session.execute(text(f"SELECT * FROM {table.name}")).all()


def _open_and_read(database: Database) -> None:
    assert database.is_initialised()
    _read_every_table(database)


@pytest.mark.parametrize("damage", ["not a database", "truncated", "header overwritten"])
def test_a_damaged_sqlite_file_is_named_as_such_not_a_driver_error(
    tmp_path: Path, damage: str
) -> None:
    path = _migrated_file(tmp_path)
    if damage == "not a database":
        path.write_bytes(b"lumbar? no: just some text that is not SQLite\n" * 200)
    elif damage == "truncated":
        with path.open("r+b") as file:
            file.truncate(path.stat().st_size // 3)
    else:
        with path.open("r+b") as file:
            file.write(b"\xff" * 100)
    database = Database(str(path))
    with pytest.raises(StoreError) as caught:
        _open_and_read(database)
    assert caught.value.summary == "not a lumbar trial database, or the file is damaged"
    (problem,) = caught.value.problems
    assert problem.where == "db"
    assert "restore" in problem.hint
    database.dispose()


def test_a_writer_kept_waiting_past_the_busy_timeout_is_told_the_trial_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr("lumbar.store.database.BUSY_TIMEOUT_MS", 200)
    path = _migrated_file(tmp_path)
    database = Database(str(path))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as caught, database.write() as session:
            session.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
        assert caught.value.summary == "the trial is busy, try again"
        assert "nothing was changed" in caught.value.problems[0].rule
        with database.read() as session:  # a reader is never kept waiting (WAL)
            session.execute(text("SELECT seq FROM audit_head")).all()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with database.write() as session:  # and once the other writer is done, writing works
        session.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
    database.dispose()


def test_migration_0005_fills_the_window_status_of_questionnaires_stored_before_it(
    database_url: str, tmp_path: Path
) -> None:
    """Questionnaires stored before 0005 get their window status from the frozen protocol and
    the randomization date, as lumbar computes it when it stores one."""
    from alembic import command

    from lumbar.store.database import _alembic_config
    from tests.operations.world import build_world, rdq_answers

    world = build_world(database_url, tmp_path)
    coord = world.as_("coord")
    study_id = world.randomized()
    world.clock.advance(72)
    coord.record_questionnaire(  # day 0 at week 26: early
        study_id,
        "week_26",
        "rdq",
        rdq_answers(2),
        completed_on=world.clock.today - dt.timedelta(72),
    )
    coord.record_questionnaire(  # day 72 at week 10 (target 70): inside
        study_id, "week_10", "rdq", rdq_answers(2), completed_on=world.clock.today
    )
    coord.close()
    query = text("SELECT visit, window_status, days_from_target FROM questionnaire ORDER BY visit")
    database = Database(database_url)
    with database.read() as session:
        stored = session.execute(query).all()
    assert {tuple(row) for row in stored if row[0] != "baseline"} == {
        ("week_10", "in_window", 2),
        ("week_26", "early", -182),
    }

    def to(revision: str, step: str) -> None:
        with database.engine.connect() as connection:
            connection.info["lumbar_write"] = True
            with connection.begin():
                config = _alembic_config()
                config.attributes["connection"] = connection
                getattr(command, step)(config, revision)

    to("0004", "downgrade")
    with database.read() as session:
        columns = session.execute(text("SELECT * FROM questionnaire")).keys()
        assert "window_status" not in columns
    to("head", "upgrade")
    with database.read() as session:
        assert session.execute(query).all() == stored
    database.dispose()


def test_the_write_lock_and_the_lease_use_different_advisory_lock_keys() -> None:
    """A restore holds the lease's key while it writes: the same key for the write lock
    deadlocked the restore against itself on PostgreSQL."""
    from lumbar.store.database import WRITE_LOCK
    from lumbar.store.lease import LEASE_KEY

    assert WRITE_LOCK != LEASE_KEY
