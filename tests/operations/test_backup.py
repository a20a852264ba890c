"""Backups are consistent while coordinators keep writing; a restore is checked, needs an
admin, and leaves nothing behind when it fails."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from lumbar.errors import AccessError, StoreError
from lumbar.operations import Trial, backup, restore
from lumbar.store.database import Database
from lumbar.store.schema import AuditRecord
from lumbar.store.vault import create_key_file
from tests import postgres as pg
from tests.operations.world import World, eligible_answers

pytestmark = pytest.mark.integration


@pytest.fixture
def new_target(world: World, tmp_path: Path) -> Iterator[str]:
    """A database URL on the world's backend where nothing exists yet."""
    if world.url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    url = pg.new_database_url(pg.server_url())
    try:
        yield url
    finally:
        pg.drop_database(url)


def nothing_at(url: str) -> bool:
    """No database (SQLite: no file, nor a partial copy) where ``url`` points."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return not any(path.parent.glob(path.name + "*"))
    return not pg.database_exists(url)


def test_a_backup_taken_during_writes_is_consistent(
    world: World, tmp_path: Path, new_target: str
) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_screening() -> None:
        trial = world.as_("coord")
        try:
            while not stop.is_set():
                trial.screen("SEA", eligible_answers(world.protocol))
        except BaseException as error:
            errors.append(error)
        finally:
            trial.close()

    writer = threading.Thread(target=keep_screening)
    writer.start()
    try:
        copy = backup(world.url, tmp_path / "during.backup", actor="admin", key_file=world.key_file)
    finally:
        stop.set()
        writer.join()
    assert errors == []
    restored = restore(copy, new_target, actor="admin", key_file=world.key_file)
    assert restored.trial_id == "massage-clbp"
    assert restored.audit_intact
    assert not restored.replaced
    trial = Trial.open(new_target, "admin", key_file=world.key_file)
    try:
        report = trial.verify_audit()
        assert report.intact
        assert report.records == restored.audit_records
        screened = len(trial.participants())
        assert report.records >= screened  # every person in the copy has their audit record
    finally:
        trial.close()


def test_a_restore_is_in_the_audit_trail(world: World, tmp_path: Path, new_target: str) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    restore(copy, new_target, actor="admin", key_file=world.key_file)
    database = Database(new_target)
    with database.read() as session:
        last = session.execute(
            select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)
        ).scalar_one()
        assert (last.action, last.actor) == ("trial.restore", "admin")
        assert last.new is not None
        assert last.origin is not None
        recorded = json.loads(last.new)
        assert recorded["backup"] == "trial.backup"
        assert len(recorded["sha256"]) == 64
        assert recorded["replaced"] is False
        assert last.origin.startswith("cli ")
    database.dispose()


def test_backup_and_restore_need_an_admin(world: World, tmp_path: Path, new_target: str) -> None:
    with pytest.raises(AccessError, match="may not back up"):
        backup(world.url, tmp_path / "no.backup", actor="coord", key_file=world.key_file)
    assert not (tmp_path / "no.backup").exists()
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    # A new target: the backup itself decides, and only its admins may restore it.
    with pytest.raises(AccessError, match="may not restore"):
        restore(copy, new_target, actor="coord", key_file=world.key_file)
    assert nothing_at(new_target)
    with pytest.raises(AccessError, match="is not an active member of staff"):
        restore(copy, new_target, actor="mallory", key_file=world.key_file)
    assert nothing_at(new_target)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_trial_is_replaced_only_by_its_own_admin(world: World, tmp_path: Path) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    admin = world.as_("admin")
    admin.add_site("BOS", "Boston")
    admin.close()
    with pytest.raises(StoreError, match="restoring would replace it"):
        restore(copy, world.url, actor="admin", key_file=world.key_file)
    with pytest.raises(AccessError, match="may not restore"):
        restore(copy, world.url, actor="coord", key_file=world.key_file, replace=True)
    assert not list(tmp_path.glob("*.restoring*"))
    trial = world.as_("admin")
    assert "BOS" in {site.code for site in trial.sites()}  # untouched
    trial.close()
    restored = restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    assert restored.replaced
    trial = world.as_("admin")
    assert "BOS" not in {site.code for site in trial.sites()}
    assert trial.verify_audit().intact
    trial.close()
    assert not list(tmp_path.glob("*.restoring*"))


def test_a_restore_with_the_wrong_key_leaves_nothing(
    world: World, tmp_path: Path, new_target: str
) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    wrong = create_key_file(tmp_path / "wrong.key")
    with pytest.raises(StoreError, match="does not belong to this trial"):
        restore(copy, new_target, actor="admin", keys=wrong)
    assert nothing_at(new_target)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_failed_restore_into_an_empty_postgresql_database_empties_it_again(
    world: World, tmp_path: Path
) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    target = pg.create_database(pg.server_url())
    try:
        database = Database(target)
        with database.engine.connect() as connection:
            before = set(inspect(connection).get_table_names())
        with pytest.raises(AccessError, match="may not restore"):
            restore(copy, target, actor="coord", key_file=world.key_file)
        with database.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == before == set()
        database.dispose()
        restored = restore(copy, target, actor="admin", key_file=world.key_file)
        assert restored.audit_intact
        with pytest.raises(StoreError, match="already holds a trial"):
            restore(copy, target, actor="admin", key_file=world.key_file)
    finally:
        pg.drop_database(target)


def test_a_backup_never_overwrites_a_file(world: World, tmp_path: Path) -> None:
    existing = tmp_path / "exists.backup"
    existing.write_text("keep me")
    with pytest.raises(StoreError, match="is never overwritten"):
        backup(world.url, existing, actor="admin", key_file=world.key_file)
    assert existing.read_text() == "keep me"


def test_restore_refuses_a_file_that_is_not_a_backup(
    world: World, tmp_path: Path, new_target: str
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    expected = "not a usable backup" if world.url.startswith("sqlite") else "pg_restore failed"
    with pytest.raises(StoreError, match=expected):
        restore(junk, new_target, actor="admin", key_file=world.key_file)
    assert nothing_at(new_target)
