"""A trial an older lumbar made is refused when opened, naming both revisions, and
``lumbar upgrade`` backs it up, migrates it and records it; a newer one is refused."""

from __future__ import annotations

import gc
import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from lumbar.errors import AccessError, StoreError
from lumbar.operations import Context, Principal, Trial, restore, upgrade
from lumbar.operations.authentication import resume_web_session, start_web_session
from lumbar.operations.upgrades import OLDEST_UPGRADABLE
from lumbar.store import audit
from lumbar.store.database import (
    Database,
    _alembic_config,
    _alembic_revisions,
    _chain_of_scripts,
    schema_head,
    schema_revisions,
)
from lumbar.store.schema import AuditRecord
from tests.clitools import Cli
from tests.operations.world import World

pytestmark = pytest.mark.integration

OLD = "0005"
"""The revision before web sessions (0006): a trial an older lumbar made."""


def downgrade(url: str, revision: str) -> None:
    """Take the trial at ``url`` back to schema ``revision``, as an older lumbar left it."""
    database = Database(url)
    try:
        with database.engine.connect() as connection, connection.begin():
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        database.dispose()


def snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every table, as text: what "nothing changed" compares."""
    database = Database(url)
    try:
        with database.read() as session:
            connection = session.connection()
            return {
                name: sorted(
                    repr(tuple(row)) for row in connection.execute(text(f"SELECT * FROM {name}"))
                )
                for name in inspect(connection).get_table_names()
            }
    finally:
        database.dispose()


def revision_of(url: str) -> str:
    database = Database(url)
    try:
        revision = database.revision()
    finally:
        database.dispose()
    assert revision is not None
    return revision


def backup_revision(path: Path, url: str) -> str:
    """The schema revision held in a backup file (SQLite file, or pg_dump archive)."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as copy:
            (revision,) = copy.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(revision)
    listing = subprocess.run(
        ["pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = (line for line in listing.splitlines() if line.startswith(tuple("0123456789")))
    return line.strip()


@pytest.fixture
def older(world: World) -> World:
    """The world's trial, with a randomized participant, taken back to revision OLD."""
    world.randomized()
    downgrade(world.url, OLD)
    assert revision_of(world.url) == OLD
    return world


def test_the_head_is_the_last_shipped_migration_script() -> None:
    folder = Path(__file__).parents[2] / "src" / "lumbar" / "store" / "migrations" / "versions"
    scripts = sorted(path.name.split("_", 1)[0] for path in folder.glob("[0-9]*_*.py"))
    assert schema_revisions() == tuple(scripts)
    assert schema_head() == scripts[-1]
    # Read as text (every opening asks), the chain is the one alembic walks.
    assert _chain_of_scripts() == _alembic_revisions()


def test_scripts_that_are_not_one_chain_are_left_to_alembic(tmp_path: Path) -> None:
    def script(name: str, revision: str, down: str | None) -> None:
        parent = "None" if down is None else f'"{down}"'
        (tmp_path / name).write_text(f'revision = "{revision}"\ndown_revision = {parent}\n')

    script("a.py", "0001", None)
    script("b.py", "0002", "0001")
    (tmp_path / "notes.txt").write_text('revision = "0009"\n')
    assert _chain_of_scripts(tmp_path) == ("0001", "0002")
    script("c.py", "0003", "0001")  # a fork: 0002 and 0003 both revise 0001
    assert _chain_of_scripts(tmp_path) is None
    (tmp_path / "c.py").write_text('revision = "0003"\ndown_revision = ("0001", "0002")\n')
    assert _chain_of_scripts(tmp_path) is None  # a merge


def test_opening_an_older_trial_names_both_revisions_and_changes_nothing(older: World) -> None:
    before = snapshot(older.url)
    with pytest.raises(StoreError, match="needs an upgrade") as refused:
        Context.open(older.url, key_file=older.key_file)
    message = str(refused.value)
    assert f"schema revision {OLD}" in message
    assert f"this lumbar needs revision {schema_head()}" in message
    assert "lumbar upgrade --db" in message
    with pytest.raises(StoreError, match="needs an upgrade"):
        older.as_("coord")
    assert snapshot(older.url) == before
    assert revision_of(older.url) == OLD


def test_upgrade_backs_up_then_upgrades_and_the_trial_works(
    older: World, tmp_path: Path, new_target: str
) -> None:
    before = snapshot(older.url)
    backup_file = tmp_path / "before-upgrade.backup"
    upgraded = upgrade(
        older.url,
        actor="admin",
        key_file=older.key_file,
        backup_file=backup_file,
        clock=older.clock,
    )
    assert (upgraded.from_revision, upgraded.to_revision) == (OLD, schema_head())
    assert upgraded.backup == backup_file
    assert revision_of(older.url) == schema_head()

    # The backup holds the trial as it was, and restores (brought up to date on the copy).
    assert backup_file.stat().st_mode & 0o777 == 0o600
    assert backup_revision(backup_file, older.url) == OLD
    restored = restore(backup_file, new_target, actor="admin", key_file=older.key_file)
    assert restored.audit_intact
    copy = Trial.open(new_target, "admin", key_file=older.key_file)
    try:
        assert [p.study_id for p in copy.participants()] == ["SEA-0001"]
    finally:
        copy.close()

    # The upgraded trial opens and works: the audit trail holds the upgrade and verifies,
    # and a web session (the table revision 0006 added) can be started and resumed.
    admin = older.as_("admin")
    try:
        report = admin.verify_audit()
        assert report.intact, report.findings
        assert [p.study_id for p in admin.participants()] == ["SEA-0001"]
        with admin.context.db.read() as session:
            last = session.execute(
                select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)
            ).scalar_one()
        assert (last.action, last.actor) == ("trial.upgrade", "admin")
        assert json.loads(last.old or "") == {"revision": OLD}
        recorded = json.loads(last.new or "")
        assert recorded["revision"] == schema_head()
        assert recorded["backup"] == backup_file.name
        token = start_web_session(admin.context, Principal("coord", "web"))
        assert resume_web_session(admin.context, token).username == "coord"
    finally:
        admin.close()
    assert before.keys() <= snapshot(older.url).keys()


def test_a_second_upgrade_has_nothing_to_do(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a PostgreSQL trial's backup goes to the working folder
    downgrade(cli.url, OLD)
    gc.collect()  # PostgreSQL: close the connections the in-process commands before left
    output = cli("upgrade")
    assert f"from schema revision {OLD} to {schema_head()}" in output
    (made,) = tmp_path.rglob(f"*.{OLD}-*.backup")
    assert str(made.name) in output.replace("\n", "")
    before = snapshot(cli.url)
    again = cli("upgrade", code=2)
    assert f"already at revision {schema_head()}; nothing to do" in again
    assert list(tmp_path.rglob("*.backup")) == [made]
    assert snapshot(cli.url) == before
    cli("site", "add", "BOS", "Boston")  # the trial works


def test_a_database_newer_than_this_lumbar_is_refused(world: World, tmp_path: Path) -> None:
    database = Database(world.url)
    with database.write() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    database.dispose()
    before = snapshot(world.url)
    with pytest.raises(StoreError, match="newer than this lumbar") as refused:
        Context.open(world.url, key_file=world.key_file)
    message = str(refused.value)
    assert "schema revision 9999" in message
    assert f"up to {schema_head()}" in message
    assert "upgrade lumbar" in message
    with pytest.raises(StoreError, match="newer than this lumbar"):
        upgrade(world.url, actor="admin", key_file=world.key_file, backup_file=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert snapshot(world.url) == before


def test_upgrade_needs_an_admin_and_the_trial_closed(older: World, tmp_path: Path) -> None:
    before = snapshot(older.url)
    target = tmp_path / "refused.backup"
    with pytest.raises(AccessError, match="may not upgrade"):
        upgrade(older.url, actor="coord", key_file=older.key_file, backup_file=target)
    # Held open (the shared lease an open trial takes) by someone else: refused, naming them.
    database = Database(older.url)
    from lumbar.store.lease import Lease

    held = Lease.hold(database, "lumbar serve")
    try:
        with pytest.raises(StoreError, match="the trial is in use") as refused:
            upgrade(older.url, actor="admin", key_file=older.key_file, backup_file=target)
        if older.url.startswith("sqlite"):
            assert "lumbar serve" in str(refused.value)
    finally:
        held.release()
        database.dispose()
    assert not target.exists()
    assert snapshot(older.url) == before


def test_upgrade_refuses_a_trial_whose_data_changed_outside_lumbar(
    older: World, tmp_path: Path
) -> None:
    database = Database(older.url)
    with database.write() as session:
        session.execute(text("UPDATE site SET name = 'Tacoma' WHERE code = 'SEA'"))
    database.dispose()
    before = snapshot(older.url)
    with pytest.raises(StoreError, match="audit trail does not verify") as refused:
        upgrade(
            older.url,
            actor="admin",
            key_file=older.key_file,
            backup_file=tmp_path / "kept.backup",
        )
    assert "site id 1: name changed outside lumbar" in str(refused.value)
    assert snapshot(older.url) == before
    assert revision_of(older.url) == OLD
    assert (tmp_path / "kept.backup").exists()  # made first, and kept


def test_upgrade_refuses_a_trial_older_than_the_keyed_audit_trail(world: World) -> None:
    earlier = schema_revisions()[schema_revisions().index(OLDEST_UPGRADABLE) - 1]
    database = Database(world.url)
    with database.write() as session:
        session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": earlier})
    database.dispose()
    with pytest.raises(StoreError, match="too old to upgrade"):
        upgrade(world.url, actor="admin", key_file=world.key_file)


def test_rows_a_migration_rewrites_are_imaged_again_and_the_trail_stays_intact(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Questionnaires written as a lumbar before revision 0005 wrote them: their row images
    # lack the two columns 0005 adds and fills (window_status, days_from_target).
    added = {"window_status", "days_from_target"}
    older_columns = tuple(name for name in audit._IMAGED["questionnaire"] if name not in added)
    monkeypatch.setitem(audit._IMAGED, "questionnaire", older_columns)
    world.randomized()
    monkeypatch.undo()
    downgrade(world.url, "0004")
    upgraded = upgrade(
        world.url, actor="admin", key_file=world.key_file, backup_file=tmp_path / "b.backup"
    )
    assert upgraded.from_revision == "0004"
    assert upgraded.rows_imaged > 0  # every questionnaire the migration filled
    admin = world.as_("admin")
    try:
        report = admin.verify_audit()
        assert report.intact, report.findings
    finally:
        admin.close()
