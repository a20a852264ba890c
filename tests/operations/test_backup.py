"""Backups are consistent while coordinators keep writing; a restore is checked, needs an
admin, and leaves nothing behind when it fails."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from lumbar.errors import AccessError, StoreError
from lumbar.operations import Restored, Trial, backup, create_trial, restore
from lumbar.store.database import Database
from lumbar.store.lease import exclusive_lease
from lumbar.store.schema import AuditRecord
from lumbar.store.vault import create_key_file
from tests import postgres as pg
from tests.operations.world import World, eligible_answers

pytestmark = pytest.mark.integration


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
        database.dispose()  # a connection left open would be someone using it: refused
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


# ---------------------------------------------------------------------- safe restore (issue 10)

WRITER = """
import sys, time
from pathlib import Path
from lumbar.operations import Trial
from tests.operations.world import eligible_answers
url, key_file, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
trial = Trial.open(url, "coord", key_file=key_file)
trial.screen("SEA", eligible_answers(trial.protocol))
print("writing", flush=True)
while not stop.exists():
    trial.screen("SEA", eligible_answers(trial.protocol))
    time.sleep(0.01)
trial.close()
"""


def fingerprint(url: str) -> object:
    """What a database holds: its file's bytes (SQLite), else every table's rows (PostgreSQL)."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return path.read_bytes(), Path(f"{path}-wal").exists() and Path(f"{path}-wal").read_bytes()
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            names = sorted(inspect(connection).get_table_names())
            return {
                name: sorted(map(repr, connection.execute(text(f'SELECT * FROM "{name}"'))))
                for name in names
            }
    finally:
        database.dispose()


def drop_kept(world: World, restored: Restored) -> None:
    """Drop the database a PostgreSQL restore kept (its name is the restore's, not the helper's)."""
    if restored.kept is None or world.url.startswith("sqlite"):
        return
    with psycopg.connect(pg.conninfo(pg.server_url()), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restored.kept))
        )


def other_trial(
    tmp_path: Path,
    world: World,
    same_key: bool,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Path:
    """A backup of another trial of the same protocol on the world's backend (made with the
    world's key when asked)."""
    folder = tmp_path / "other"
    folder.mkdir()
    url = f"sqlite:///{folder / 'other.db'}"
    if world.url.startswith("postgresql"):
        url = pg.create_database(pg.server_url())
        request.addfinalizer(lambda: pg.drop_database(url))
    key_file = folder / "other.key"
    with monkeypatch.context() as patch:
        if same_key:
            patch.setenv("LUMBAR_KEY", world.key_file.read_text().strip())
            key_file = world.key_file
        create_trial(world.protocol, url, admin="admin", key_file=key_file, seed=7)
    return backup(url, folder / "other.backup", actor="admin", key_file=key_file)


def test_a_backup_with_another_key_leaves_the_target_byte_identical(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    foreign = other_trial(tmp_path, world, False, monkeypatch, request)
    before = fingerprint(world.url)
    with pytest.raises(StoreError, match="does not belong to this trial"):
        restore(foreign, world.url, actor="admin", key_file=world.key_file, replace=True)
    assert fingerprint(world.url) == before
    assert not list(tmp_path.glob("*.restoring*"))
    assert not list(tmp_path.glob("*.replaced-*"))


def test_another_trial_s_backup_is_refused_naming_both_trials_unless_asked_for(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    foreign = other_trial(tmp_path, world, True, monkeypatch, request)
    before = fingerprint(world.url)
    with pytest.raises(StoreError, match="another trial") as refused:
        restore(foreign, world.url, actor="admin", key_file=world.key_file, replace=True)
    message = str(refused.value)
    assert message.count("massage-clbp (created ") == 2
    assert "2026-01-05" in message  # the world's trial, made by its clock
    assert fingerprint(world.url) == before
    restored = restore(
        foreign, world.url, actor="admin", key_file=world.key_file, replace=True, other_trial=True
    )
    drop_kept(world, restored)
    assert restored.replaced
    assert restored.kept is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_whose_audit_chain_is_broken_is_refused_before_the_target_is_touched(
    world: World, tmp_path: Path
) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    with sqlite3.connect(copy) as connection:
        connection.execute("DROP TRIGGER audit_append_only_update")
        connection.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    connection.close()
    before = fingerprint(world.url)
    with pytest.raises(StoreError, match="audit trail") as refused:
        restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    assert "record 2" in str(refused.value)
    assert fingerprint(world.url) == before


def test_restore_is_refused_while_a_writer_has_the_trial_open_and_works_once_it_stops(
    world: World, tmp_path: Path
) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, world.url, str(world.key_file), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        with pytest.raises(StoreError, match="the trial is in use") as refused:
            restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
        assert f"pid {writer.pid}" in str(refused.value)
    finally:
        stop.touch()
        assert writer.wait(timeout=60) == 0
    trial = world.as_("admin")
    written = len(trial.participants())
    trial.close()
    assert written > 0  # the writer kept writing while the restore was refused
    restored = restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    drop_kept(world, restored)
    assert restored.replaced
    trial = world.as_("admin")
    assert len(trial.participants()) == 0
    trial.close()


def test_a_killed_writer_leaves_no_lease_behind(world: World, tmp_path: Path) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, world.url, str(world.key_file), str(tmp_path / "stop")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()  # SIGKILL: no chance to release anything
    writer.wait(timeout=60)
    refusals: list[str] = []
    restored = None
    for _ in range(100):  # the server ends a killed client's session when it sees the socket close
        try:
            restored = restore(
                copy, world.url, actor="admin", key_file=world.key_file, replace=True
            )
            break
        except StoreError as error:
            refusals.append(str(error))
            time.sleep(0.1)
    assert restored is not None, "the killed writer's lease was never released"
    assert all(f"pid {writer.pid}" in refusal for refusal in refusals)
    drop_kept(world, restored)
    assert restored.replaced
    if world.url.startswith("sqlite"):
        folder = Path(world.url.removeprefix("sqlite:///") + ".in-use")
        assert [path.name for path in folder.iterdir()] == ["lock"]  # its record is gone


def test_a_trial_used_again_after_closing_holds_the_lease_again(
    world: World, tmp_path: Path
) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    trial = world.as_("coord")
    trial.close()  # empties the pool; the next operation connects again, under the lease
    trial.screen("SEA", eligible_answers(world.protocol))
    with pytest.raises(StoreError, match="the trial is in use") as refused:
        restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    assert f"pid {os.getpid()}" in str(refused.value)
    trial.close()
    restored = restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    drop_kept(world, restored)
    assert restored.replaced


def test_a_writer_is_refused_while_a_restore_holds_the_trial(world: World) -> None:
    database = Database(world.url)
    try:
        with exclusive_lease(database, "lumbar restore"):
            with pytest.raises(StoreError, match="is being restored") as refused:
                world.as_("coord")
            assert f"pid {os.getpid()}" in str(refused.value)
    finally:
        database.dispose()
    world.as_("coord").close()  # free again once the restore ends


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_restore_keeps_the_replaced_file_owner_only_whatever_the_umask(
    world: World, tmp_path: Path
) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    admin = world.as_("admin")
    admin.add_site("BOS", "Boston")
    admin.close()
    old = os.umask(0)
    try:
        restored = restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    finally:
        os.umask(old)
    assert restored.kept is not None
    kept = Path(restored.kept)
    assert kept.parent == tmp_path
    assert kept.name.startswith("trial.db.replaced-")
    assert kept.stat().st_mode & 0o777 == 0o600
    target = Path(world.url.removeprefix("sqlite:///"))
    assert target.stat().st_mode & 0o777 == 0o600
    kept_trial = Trial.open(f"sqlite:///{kept}", "admin", key_file=world.key_file)
    assert "BOS" in {site.code for site in kept_trial.sites()}  # the replaced data, whole
    kept_trial.close()
    trial = world.as_("admin")
    assert "BOS" not in {site.code for site in trial.sites()}
    trial.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_damaged_sqlite_file_is_replaced_and_kept_as_it_was(world: World, tmp_path: Path) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    target = Path(world.url.removeprefix("sqlite:///"))
    damaged = b"half a page of a disk that failed" * 100
    target.write_bytes(damaged)
    restored = restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    assert restored.kept is not None
    assert Path(restored.kept).read_bytes() == damaged
    trial = world.as_("admin")
    assert trial.verify_audit().intact
    trial.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgresql_restore_swaps_databases_and_keeps_the_replaced_one(
    world: World, tmp_path: Path
) -> None:
    copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    admin = world.as_("admin")
    admin.add_site("BOS", "Boston")
    admin.close()
    with pytest.raises(StoreError, match="give --replace"):
        restore(copy, world.url, actor="admin", key_file=world.key_file)
    restored = restore(copy, world.url, actor="admin", key_file=world.key_file, replace=True)
    assert restored.replaced
    assert restored.kept is not None
    assert restored.kept.startswith(f"{make_url(world.url).database}_replaced_")
    kept_url = make_url(world.url).set(database=restored.kept).render_as_string(False)
    try:
        kept_trial = Trial.open(kept_url, "admin", key_file=world.key_file)
        assert "BOS" in {site.code for site in kept_trial.sites()}
        kept_trial.close()
        trial = world.as_("admin")
        assert "BOS" not in {site.code for site in trial.sites()}
        assert trial.verify_audit().intact
        trial.close()
    finally:
        drop_kept(world, restored)


def test_backups_are_owner_only_whatever_the_umask(world: World, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        copy = backup(world.url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    finally:
        os.umask(old)
    assert copy.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.glob("trial.backup*")] == ["trial.backup"]


def test_a_backup_that_fails_its_check_is_kept_under_a_failing_name(
    world: World, tmp_path: Path
) -> None:
    trial = world.as_("admin")
    with trial.db.engine.begin() as connection:
        if trial.db.backend == "sqlite":
            connection.execute(text("DROP TRIGGER audit_append_only_update"))
        else:
            connection.execute(text("ALTER TABLE audit DISABLE TRIGGER USER"))
        connection.execute(text("UPDATE audit SET actor = 'mallory' WHERE seq = 2"))
    trial.close()
    target = tmp_path / "trial.backup"
    with pytest.raises(StoreError, match="failed its check") as refused:
        backup(world.url, target, actor="admin", key_file=world.key_file)
    failed = tmp_path / "trial.backup.failed"
    assert str(failed) in str(refused.value)
    assert "record 2" in str(refused.value)
    assert failed.is_file()
    assert not target.exists()
    assert failed.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_tools_get_the_password_through_a_file_never_their_arguments(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cret-Pa55:word"
    url = make_url(world.url).set(password=secret).render_as_string(False)  # trust ignores it
    calls: list[tuple[list[str], str]] = []
    real_run = subprocess.run

    def spy(command: list[str], **options: object) -> object:
        env = options.get("env")
        assert isinstance(env, dict)
        passfile = Path(env["PGPASSFILE"])
        assert passfile.stat().st_mode & 0o777 == 0o600
        calls.append((list(command), passfile.read_text()))
        assert "PGPASSWORD" not in env
        return real_run(command, **options)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", spy)
    copy = backup(url, tmp_path / "trial.backup", actor="admin", key_file=world.key_file)
    target = pg.new_database_url(pg.server_url())
    try:
        restore(
            copy,
            make_url(target).set(password=secret).render_as_string(False),
            actor="admin",
            key_file=world.key_file,
        )
    finally:
        pg.drop_database(target)
    tools = [command[0] for command, _ in calls]
    assert "pg_dump" in tools
    assert "pg_restore" in tools
    for command, passfile in calls:
        assert not any(secret in argument or "s3cret" in argument for argument in command)
        assert passfile.strip().endswith("s3cret-Pa55\\:word")
    assert not any(Path(tempfile.gettempdir()).glob("lumbar-pgpass-*"))
