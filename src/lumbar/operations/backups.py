"""Backups: a consistent, checked copy while the trial is in use, and restoring one safely.

SQLite uses its online backup API: the copy is a consistent snapshot even while
coordinators keep writing. PostgreSQL uses ``pg_dump`` (custom format) and
``pg_restore`` when they are installed. A backup never includes the keys:
keep the key file safe, apart from the backups. Both need an admin (the ``backup``
and ``restore`` permissions).

**Every copy is checked** by one function, :func:`_check_backup`: it is a lumbar
trial of the newest schema this lumbar knows (an older known one is migrated on
the restored copy first), its keys open it, its protocol reads, and its audit trail
verifies. ``lumbar backup`` checks the copy it made (PostgreSQL: the very snapshot
``pg_dump`` wrote, and that the archive reads back) and, when the check fails, keeps
the file as ``<name>.failed`` and says so instead of reporting success.

**A restore touches nothing before the backup has passed**: the check, the trial
(replacing a trial with another trial's backup needs ``other_trial=True``; the
refusal names both), the acting user (an admin of the trial replaced, else of the
trial restored). Then:

- **SQLite**: the backup is copied beside the target as ``<name>.restoring``
  (owner-only), checked and recorded there, flushed to disk, and renamed over the
  target in one step (``os.replace``). The replaced database is checkpointed and kept
  as ``<name>.replaced-<UTC time>`` (owner-only, a hard link to the old file, so its
  bytes are exactly the old ones), and its ``-wal``/``-shm`` files are folded in
  first. On failure the copy is deleted and the target is untouched.
- **PostgreSQL**: a database that does not exist is created and restored in one
  transaction; an empty one is restored into. A database holding a trial is
  replaced only with ``replace=True``: the backup is restored into a new database
  beside it, checked and recorded there, and the two are swapped by renaming them in
  one transaction; the replaced one is kept as ``<name>_replaced_<UTC time>``. The
  server refuses the rename while anyone is connected to the database, so nothing
  can write to the old one unnoticed. (The role needs CREATEDB and must own the
  database.) On failure what the restore made is dropped.

**Never while the trial is in use**: a restore takes the trial's lease exclusively
(:mod:`lumbar.store.lease`) before anything else and holds it to the end. Every open
SQLite trial holds it shared, and on PostgreSQL every connection counts as a user
and every write checks it, so the restore is refused, naming who has the trial
open; while a restore holds it, opening (SQLite) or writing (PostgreSQL) is refused,
naming the restore. No write acknowledged after a restore starts can be lost.

Backup files, restoring copies and replaced files are created owner-only (0600)
whatever the umask. PostgreSQL passwords reach ``pg_dump`` and ``pg_restore`` only
through a temporary password file (``PGPASSFILE``, 0600, deleted afterwards), never
their command line.

The restored trial's audit trail gets a record of the restore: who, from which
file (name and SHA-256), and whether a database was replaced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lumbar.errors import LumbarError, Problem, StoreError
from lumbar.operations import _postgresql as postgresql
from lumbar.operations.context import Clock, Context, Principal, Transaction, utc_now
from lumbar.operations.scope import load_scope
from lumbar.protocol import parse_protocol
from lumbar.store.audit import AuditReport, verify_chain, verify_trail, write_anchor
from lumbar.store.database import Database, default_key_file, schema_revisions
from lumbar.store.lease import discard_unused, exclusive_lease
from lumbar.store.schema import AuditHead, TrialRecord
from lumbar.store.vault import Keys, Vault, load_keys

__all__ = ["Restored", "backup", "restore"]

OWNER_ONLY = 0o600
"""The mode of every file a backup or restore makes: the data is the trial's."""


@dataclass(frozen=True)
class TrialIdentity:
    """Which trial a database holds: its protocol's id and the moment it was created.

    Two trials of one protocol share the id; the creation time tells them apart.
    """

    id: str
    created_at: dt.datetime

    def __str__(self) -> str:
        created = self.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        return f"{self.id} (created {created.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC)"


@dataclass(frozen=True)
class BackupCheck:
    """What :func:`_check_backup` found in a copy that passed."""

    trial: TrialIdentity
    schema: str
    audit: AuditReport


@dataclass(frozen=True)
class Restored:
    """What a restore brought back, after checking it."""

    trial_id: str
    database: str
    """The restored database, without any password."""
    replaced: bool
    """An existing database was replaced."""
    audit_records: int
    audit_intact: bool
    kept: str | None = None
    """Where the replaced database was kept: a file (SQLite) or a database name
    (PostgreSQL); None when nothing was replaced."""


# ---------------------------------------------------------------------- the one check


def _check_backup(
    session: Session, keys: Keys, *, source: str, revision: str | None = None
) -> BackupCheck:
    """Check a copy of a trial completely; StoreError naming ``source`` and the rule.

    The one place backup and restore decide whether a copy counts: a lumbar trial, of
    this lumbar's newest schema, whose keys at hand are its own (the audit key is
    needed), whose protocol reads, and whose audit trail and data verify against each
    other (:func:`_verify_audit`). It only reads.

    ``revision``: the older schema the copy must have instead (the backup an upgrade
    makes before migrating). This lumbar's tables are the newest schema's, so of such a
    copy it checks the audit chain's links and head, not the data against the trail; the
    upgrade checks those on the database itself, in the transaction that migrates it,
    which holds exactly what the copy holds (nothing writes while it runs).
    """
    connection = session.connection()
    tables = inspect(connection)
    if not (tables.has_table("trial") and tables.has_table("alembic_version")):
        raise StoreError(
            "not a usable backup",
            [Problem("backup", "holds no lumbar trial", source, "use a file 'lumbar backup' made")],
        )
    found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    known = schema_revisions()
    wanted = revision or known[-1]
    if found != wanted:
        newer = found not in known
        raise StoreError(
            "not a usable backup",
            [
                Problem(
                    "backup",
                    f"has schema {found}; this lumbar "
                    + (f"knows schemas up to {known[-1]} only" if newer else f"needs {wanted}"),
                    source,
                    "restore it with the lumbar version that made it"
                    if newer
                    else "restore it (an older schema is brought up to date on the copy)",
                )
            ],
        )
    # The columns every schema since the keyed chain has, not the whole newest row.
    record = session.execute(
        select(
            TrialRecord.id,
            TrialRecord.created_at,
            TrialRecord.key_check,
            TrialRecord.randomization_key_check,
            TrialRecord.audit_key_check,
            TrialRecord.protocol_yaml,
        )
    ).one()
    identity = TrialIdentity(record.id, record.created_at)
    try:
        keys.confirm(record)
        audit = keys.vault("audit")
        if audit is None:
            raise StoreError(
                "the audit key is not at hand",
                [Problem("key audit", "is needed to verify the backup's audit trail")],
            )
        parse_protocol(record.protocol_yaml, f"trial {record.id} protocol")
    except LumbarError as error:
        raise type(error)(
            error.summary,
            [*error.problems, Problem("backup", f"holds trial {identity}", source)],
            error.source,
        ) from None
    report = _verify_audit(session, audit) if wanted == known[-1] else verify_chain(session, audit)
    if not report.intact:
        shown = report.findings[:20]
        raise StoreError(
            "the backup's audit trail does not verify",
            [
                *(
                    Problem(
                        "audit", finding.detail, f"record {finding.seq}" if finding.seq else "data"
                    )
                    for finding in shown
                ),
                *(
                    [Problem("audit", f"and {len(report.findings) - len(shown)} more findings")]
                    if len(report.findings) > len(shown)
                    else []
                ),
                Problem(
                    "backup",
                    f"holds trial {identity} with a broken audit trail",
                    source,
                    "use an earlier backup, and find what changed with 'lumbar audit verify'",
                ),
            ],
        )
    return BackupCheck(identity, str(found), report)


def _verify_audit(session: Session, key: Vault) -> AuditReport:
    """The audit verification a backup must pass: the keyed chain and head, and every data
    table against the rows the trail implies (no anchor: a backup is an earlier state)."""
    return verify_trail(session, key)


# ---------------------------------------------------------------------- backup


def backup(
    url: str | None,
    target: Path,
    *,
    actor: str | Principal,
    key_file: Path | None = None,
    keys: Keys | None = None,
) -> Path:
    """Copy the trial database to ``target`` (a new, owner-only file) and check the copy.

    Admins only. When the copy fails :func:`_check_backup` it is kept as
    ``<target>.failed`` and StoreError says why: it is never reported as a backup.
    """
    if target.exists():
        raise _exists(target)
    _authorize(url, _principal(actor), "backup", key_file=key_file, keys=keys)
    database = Database(url)
    database.dispose()
    if keys is None:
        keys = load_keys(key_file or default_key_file(database.url))
    try:
        write_backup(database, target, keys)
    finally:
        database.dispose()
    return target


def write_backup(
    database: Database, target: Path, keys: Keys, *, revision: str | None = None
) -> BackupCheck:
    """Copy ``database`` to ``target`` (a new, owner-only file) and check the copy; the
    caller has decided who may. ``revision``: the older schema the database is at (see
    :func:`_check_backup`), for the backup an upgrade makes first.

    A copy that fails its check is kept as ``<target>.failed`` and StoreError says why.
    """
    os.close(_create_owner_only(target))
    try:
        if database.backend == "sqlite":
            return _backup_sqlite(database, target, keys, revision)
        return _backup_postgresql(database, target, keys, revision)
    except _CheckFailedError as failure:
        failed = _failed_name(target)
        os.replace(target, failed)
        raise StoreError(
            "the backup failed its check",
            [
                *failure.error.problems,
                Problem(
                    "backup",
                    f"was kept for inspection as {failed}, a name that says it failed",
                    hint="do not restore it; find what changed with 'lumbar audit verify'",
                ),
            ],
        ) from None
    except BaseException:
        _remove_sqlite(target)
        raise


class _CheckFailedError(Exception):
    """A backup written whole that failed its check (it is kept, named as failing)."""

    def __init__(self, error: LumbarError):
        super().__init__(str(error))
        self.error = error


def _checked(session: Session, keys: Keys, target: Path, revision: str | None) -> BackupCheck:
    try:
        return _check_backup(session, keys, source=str(target), revision=revision)
    except LumbarError as error:
        raise _CheckFailedError(error) from None


def _backup_sqlite(
    database: Database, target: Path, keys: Keys, revision: str | None
) -> BackupCheck:
    source_path = database.sqlite_path
    assert source_path is not None
    with (
        closing(sqlite3.connect(source_path)) as source,
        closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
        # One self-contained file: no -wal or -shm beside the backup.
        copy.execute("PRAGMA journal_mode=DELETE")
    _fsync(target)
    try:
        _check_sqlite(target)
    except StoreError as error:
        raise _CheckFailedError(error) from None
    reader = _read_only(target)
    try:
        with Session(reader) as session:
            return _checked(session, keys, target, revision)
    finally:
        reader.dispose()


def _backup_postgresql(
    database: Database, target: Path, keys: Keys, revision: str | None
) -> BackupCheck:
    """``pg_dump`` one snapshot, check that same snapshot, and read the archive back."""
    with postgresql.pg_access(database.url) as (conninfo, env):
        connection = database.engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with connection, connection.begin():
            snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            postgresql.run(
                [
                    "pg_dump",
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={target}",
                    f"--dbname={conninfo}",
                ],
                "pg_dump",
                env,
            )
            os.chmod(target, OWNER_ONLY)
            _fsync(target)
            check = _checked(Session(bind=connection), keys, target, revision)
        try:
            postgresql.run(["pg_restore", "--list", str(target)], "pg_restore", env)
        except StoreError as error:
            raise _CheckFailedError(error) from None
    return check


def _failed_name(target: Path) -> Path:
    failed = target.with_name(target.name + ".failed")
    number = 1
    while failed.exists():
        number += 1
        failed = target.with_name(f"{target.name}.failed-{number}")
    return failed


def _exists(target: Path) -> StoreError:
    return StoreError(
        "the backup file exists",
        [Problem("target", "is never overwritten", str(target), "choose a new file name")],
    )


def _create_owner_only(path: Path) -> int:
    """A new file, mode 0600 whatever the umask; StoreError when it exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, OWNER_ONLY)
    except FileExistsError:
        raise _exists(path) from None
    os.fchmod(descriptor, OWNER_ONLY)
    return descriptor


def _read_only(path: Path) -> Engine:
    """An engine that only reads a SQLite file, changing nothing in it (not its journal mode)."""
    uri = path.resolve().as_uri() + "?mode=ro"
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))


# ---------------------------------------------------------------------- restore


def restore(
    backup_file: Path,
    url: str | None,
    *,
    actor: str | Principal,
    key_file: Path | None = None,
    keys: Keys | None = None,
    replace: bool = False,
    other_trial: bool = False,
    clock: Clock = utc_now,
) -> Restored:
    """Restore ``backup_file`` into the trial database at ``url``, check it, and say what came back.

    A database that holds something is replaced only with ``replace=True`` (and kept:
    see :attr:`Restored.kept`), and only by a backup of the same trial unless
    ``other_trial=True``. A PostgreSQL database is created when it does not exist. The
    keys (``keys``, else ``key_file``, else the default beside a SQLite file or
    ``LUMBAR_KEY``) must open the backup. Refused while the trial is open anywhere.
    """
    if not backup_file.is_file():
        raise StoreError(
            "no backup file",
            [Problem("backup", "is not a file", str(backup_file), "check the path")],
        )
    principal = _principal(actor)
    database = Database(url)
    database.dispose()
    if keys is None:
        keys = load_keys(key_file or default_key_file(database.url))
    job = _Restore(backup_file, principal, keys, clock, other_trial)
    if database.backend == "sqlite":
        restored = job.into_sqlite(database, replace=replace)
    else:
        restored = job.into_postgresql(database, replace=replace)
    _move_anchor(database.url, keys)
    return restored


@dataclass(frozen=True)
class _Restore:
    backup_file: Path
    principal: Principal
    keys: Keys
    clock: Clock
    other_trial: bool

    # ------------------------------------------------------------------ SQLite

    def into_sqlite(self, database: Database, *, replace: bool) -> Restored:
        target = database.sqlite_path
        assert target is not None
        existed = target.exists()
        if existed and not replace:
            raise StoreError(
                "the database exists",
                [
                    Problem(
                        "db",
                        "restoring would replace it",
                        str(target),
                        "give --replace to replace it (it is kept beside), "
                        "or restore to a new file",
                    )
                ],
            )
        if not target.parent.is_dir():
            raise StoreError(
                "no such folder",
                [
                    Problem(
                        "db",
                        "names a file in a folder that does not exist",
                        str(target),
                        "create the folder first, or restore elsewhere",
                    )
                ],
            )
        try:
            return self.swap_sqlite(database, target, existed=existed)
        finally:
            if not existed:
                discard_unused(target)

    def swap_sqlite(self, database: Database, target: Path, *, existed: bool) -> Restored:
        with exclusive_lease(database, _restore_command(self.backup_file)):
            current = self.current_trial(database) if existed else None
            _check_sqlite(self.backup_file)
            partial = target.with_name(target.name + ".restoring")
            _remove_sqlite(partial)  # a copy a killed restore left behind
            try:
                _copy_owner_only(self.backup_file, partial)
                copy_url = f"sqlite:///{partial}"
                check = self.check(copy_url, current)
                restored = self.record(copy_url, check, authorize=current is None, replaced=existed)
                with closing(sqlite3.connect(partial)) as connection:
                    # Fold the check's write-ahead log into the file: it moves as one file.
                    connection.execute("PRAGMA journal_mode=DELETE")
                _fsync(partial)
                kept = _keep_sqlite(target, self.clock) if existed else None
                for suffix in ("-wal", "-shm", "-journal"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
                partial.replace(target)
                Path(f"{partial}-lock").unlink(missing_ok=True)  # its writers' queue, now unused
                _fsync(target.parent)
            except BaseException:
                _remove_sqlite(partial)
                raise
        return Restored(
            restored.trial_id,
            database.display_url,
            existed,
            restored.audit_records,
            restored.audit_intact,
            str(kept) if kept is not None else None,
        )

    # ------------------------------------------------------------------ PostgreSQL

    def into_postgresql(self, database: Database, *, replace: bool) -> Restored:
        name = make_url(database.url).database
        if not name:
            raise StoreError(
                "no database name",
                [
                    Problem(
                        "db",
                        "must name the database to restore into",
                        database.display_url,
                        "postgresql://user@host/new_database",
                    )
                ],
            )
        with postgresql.server(database) as server:
            if not postgresql.database_exists(server, name):
                postgresql.create_database(server, name, database.display_url)
                return self.into_empty(database, server, name, before=None)
            if not database.is_initialised():
                before = postgresql.objects(database)
                database.dispose()
                return self.into_empty(database, server, name, before=before)
            database.dispose()
            if not replace:
                raise StoreError(
                    "the database is not empty",
                    [
                        Problem(
                            "db",
                            "already holds a trial",
                            database.display_url,
                            "give --replace to replace it (it is kept, renamed), or restore "
                            "into a new database (lumbar creates it) or an empty one",
                        )
                    ],
                )
            return self.replacing(database, server, name)

    def into_empty(
        self, database: Database, server: Engine, name: str, *, before: set[tuple[str, str]] | None
    ) -> Restored:
        """Restore into a database made for it (``before`` None) or an empty one."""
        try:
            with exclusive_lease(database, _restore_command(self.backup_file)):
                self.pg_restore(database.url)
                check = self.check(database.url, None)
                return self.record(database.url, check, authorize=True, replaced=False)
        except BaseException:
            database.dispose()
            if before is None:
                postgresql.drop_database(server, name)
            else:
                postgresql.drop_new_objects(database, before)
            raise
        finally:
            database.dispose()

    def replacing(self, database: Database, server: Engine, name: str) -> Restored:
        """Restore beside the trial's database, check there, then swap the two by renaming."""
        stamp = _stamp(self.clock)
        fresh = postgresql.database_name(name, f"_restoring_{secrets.token_hex(4)}")
        fresh_url = make_url(database.url).set(database=fresh).render_as_string(False)
        with exclusive_lease(database, _restore_command(self.backup_file)):
            current = self.current_trial(database)
            postgresql.create_database(server, fresh, database.display_url)
            try:
                self.pg_restore(fresh_url)
                check = self.check(fresh_url, current)
                restored = self.record(fresh_url, check, authorize=False, replaced=True)
            except BaseException:
                postgresql.drop_database(server, fresh)
                raise
        database.dispose()
        kept = postgresql.unused_name(server, name, f"_replaced_{stamp}")
        try:
            postgresql.swap(server, name, fresh, kept)
        except DBAPIError as error:
            users = postgresql.connected(server, name)
            postgresql.drop_database(server, fresh)
            raise StoreError(
                "the trial is in use",
                [
                    *(Problem("db", f"is open in {user}", database.display_url) for user in users),
                    Problem(
                        "db",
                        "cannot be swapped with the restored copy "
                        f"({postgresql.first_line(error)})",
                        database.display_url,
                        "close every connection to the database (lumbar commands, the web "
                        "server, psql), then restore again; nothing was changed",
                    ),
                ],
            ) from None
        return Restored(
            restored.trial_id,
            database.display_url,
            True,
            restored.audit_records,
            restored.audit_intact,
            kept,
        )

    def pg_restore(self, url: str) -> None:
        with postgresql.pg_access(url) as (conninfo, env):
            postgresql.run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--single-transaction",
                    "--exit-on-error",
                    f"--dbname={conninfo}",
                    str(self.backup_file),
                ],
                "pg_restore",
                env,
            )

    # ------------------------------------------------------------------ the checks

    def current_trial(self, database: Database) -> TrialIdentity | None:
        """The trial the target holds (None: it holds none), once the user may replace it."""
        try:
            try:
                initialised = database.is_initialised()
            except StoreError:
                if database.backend != "sqlite":
                    raise
                return None  # a damaged file: what a restore is for; it is kept as it is
            if not initialised:
                return None
            with database.read() as session:
                load_scope(session, self.principal.username, self.principal.permissions).require(
                    "restore"
                )
                record = session.execute(select(TrialRecord)).scalar_one()
                return TrialIdentity(record.id, record.created_at)
        finally:
            database.dispose()

    def check(self, url: str, current: TrialIdentity | None) -> BackupCheck:
        """The copy at ``url`` (never the target) passes :func:`_check_backup` and is the
        target's own trial unless ``other_trial``."""
        _bring_up_to_date(url)
        copy = Database(url)
        try:
            with copy.read() as session:
                check = _check_backup(session, self.keys, source=str(self.backup_file))
        finally:
            copy.dispose()
        if current is not None and check.trial != current and not self.other_trial:
            raise StoreError(
                "the backup is of another trial",
                [
                    Problem("backup", f"holds trial {check.trial}", str(self.backup_file)),
                    Problem("db", f"holds trial {current}"),
                    Problem(
                        "other_trial",
                        "is needed to replace a trial with another trial's backup",
                        hint="check that this is the right backup; if it is, give --other-trial",
                    ),
                ],
            )
        return check

    def record(self, url: str, check: BackupCheck, *, authorize: bool, replaced: bool) -> Restored:
        """Check the user (when the backup decides) and record the restore in the copy."""
        context = Context.open(url, keys=self.keys, clock=self.clock, lease=False)
        try:
            with context.db.write() as session:
                if authorize:
                    load_scope(
                        session, self.principal.username, self.principal.permissions
                    ).require("restore")
                work = Transaction(
                    session,
                    self.principal.username,
                    self.principal.origin,
                    context.now(),
                    context.key("audit"),
                )
                work.audit(
                    "trial.restore",
                    "trial",
                    check.trial.id,
                    new={
                        "backup": self.backup_file.name,
                        "sha256": _sha256(self.backup_file),
                        "replaced": replaced,
                    },
                )
                work.finish()
            return Restored(
                check.trial.id,
                context.db.display_url,
                replaced,
                check.audit.records + 1,
                check.audit.intact,
            )
        finally:
            context.close()


# ---------------------------------------------------------------------- helpers


def _move_anchor(url: str, keys: Keys) -> None:
    """Point the restored trial's anchor at its chain's head: the restore is a deliberate
    rollback, not one to report (the restore itself is the chain's last record)."""
    context = Context.open(url, keys=keys, lease=False)
    try:
        if context.anchor is None:
            return
        with context.db.read() as session:
            head = session.execute(select(AuditHead.seq, AuditHead.hash)).one()
        write_anchor(context.anchor, context.key("audit"), (head.seq, head.hash), replace=True)
    finally:
        context.close()


def _principal(actor: str | Principal) -> Principal:
    return actor if isinstance(actor, Principal) else Principal.operator(actor)


def _authorize(
    url: str | None,
    principal: Principal,
    permission: str,
    *,
    key_file: Path | None = None,
    keys: Keys | None = None,
) -> None:
    """Refuse unless ``principal`` holds ``permission`` in the trial at ``url``."""
    context = Context.open(url, key_file=key_file, keys=keys)
    try:
        with context.unit(principal, permission, write=False):
            pass
    finally:
        context.close()


def _restore_command(backup_file: Path) -> str:
    return f"lumbar restore {backup_file.name}"


def _stamp(clock: Clock) -> str:
    return clock().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _copy_owner_only(source: Path, target: Path) -> None:
    """Copy ``source`` to a new owner-only file ``target`` and flush it to disk."""
    descriptor = _create_owner_only(target)
    with os.fdopen(descriptor, "wb") as copy, source.open("rb") as original:
        shutil.copyfileobj(original, copy, 1 << 20)
        copy.flush()
        os.fsync(copy.fileno())


def _keep_sqlite(target: Path, clock: Clock) -> Path:
    """Keep the database about to be replaced as ``<name>.replaced-<UTC time>`` (0600).

    Its write-ahead log is folded in first (nobody has it open: the restore holds the
    lease), so the kept file is the whole of it; it is a hard link to the old file
    (a copy where links are not possible), so no byte of it changes.
    """
    try:
        with closing(sqlite3.connect(target)) as connection:
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.DatabaseError:
        busy = 0  # not a database (a damaged file): kept as it is
    if busy:
        raise StoreError(
            "the trial is in use",
            [
                Problem(
                    "db",
                    "another program is reading or writing the database outside lumbar",
                    str(target),
                    "close it (a sqlite3 shell, a backup tool), then restore again; "
                    "nothing was changed",
                )
            ],
        )
    stamp = _stamp(clock)
    number = 1
    while True:
        suffix = f".replaced-{stamp}" + (f"-{number}" if number > 1 else "")
        kept = target.with_name(target.name + suffix)
        try:
            os.link(target, kept)
        except FileExistsError:
            number += 1
            continue
        except OSError:
            if kept.exists():
                number += 1
                continue
            _copy_owner_only(target, kept)
        break
    os.chmod(kept, OWNER_ONLY)
    _fsync(target.parent)
    return kept


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", "-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _check_sqlite(path: Path) -> None:
    """A SQLite file that reads whole and holds a trial table (read only: nothing changes)."""
    try:
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as connection:
            (result,) = connection.execute("PRAGMA integrity_check").fetchone()
            has_trial = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trial'"
            ).fetchone()
    except sqlite3.DatabaseError as error:
        raise StoreError(
            "not a usable backup",
            [Problem("backup", str(error), str(path), "use a file 'lumbar backup' made")],
        ) from None
    if result != "ok" or has_trial is None:
        raise StoreError(
            "not a usable backup",
            [
                Problem(
                    "backup",
                    f"integrity check: {result}; trial table: {bool(has_trial)}",
                    str(path),
                )
            ],
        )


def _bring_up_to_date(url: str) -> None:
    """Migrate a restored copy made by an older lumbar (its schema known, not the newest)."""
    copy = Database(url)
    try:
        with copy.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        known = schema_revisions()
        if revision in known[:-1]:
            copy.migrate()
    finally:
        copy.dispose()
