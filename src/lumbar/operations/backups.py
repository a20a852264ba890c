"""Backups: a consistent copy while the trial is in use, and restoring one.

SQLite uses its online backup API: the copy is a consistent snapshot even while
coordinators keep writing. PostgreSQL uses ``pg_dump`` (custom format) and
``pg_restore`` when they are installed; the same two commands are how a
server's administrator backs it up by hand. A backup never includes the vault
key: keep the key file safe, apart from the backups.

Both need an admin (the ``backup`` and ``restore`` permissions). A restore is
checked before it counts, and leaves nothing behind when it fails:

- **SQLite**: the backup is copied beside the target as ``<name>.restoring``,
  checked (integrity, the trial, the vault key, the acting user), and only then
  renamed over the target, in one step. On failure the copy is deleted and the
  target is untouched.
- **PostgreSQL**: a database that does not exist is created, restored in one
  transaction and checked; on failure it is dropped. An existing database must
  be empty: a failed ``pg_restore`` rolls back, and when a later check fails
  every object the restore made is dropped again.

Who may restore is decided by the database being replaced when it holds a trial
(its admins), and otherwise by the backup itself (an admin of the trial it
holds). The restored trial's audit trail gets a record of the restore: who, from
which file (name and SHA-256), and whether a database was replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from lumbar.errors import Problem, StoreError
from lumbar.operations.context import Clock, Context, Principal, utc_now
from lumbar.operations.scope import load_scope
from lumbar.store.audit import append_audit, verify_chain
from lumbar.store.database import Database, default_key_file
from lumbar.store.schema import TrialRecord
from lumbar.store.vault import load_key

__all__ = ["Restored", "backup", "restore"]

MAINTENANCE_DATABASES = ("postgres", "template1")
"""Databases on a PostgreSQL server to connect to when creating or dropping another."""


@dataclass(frozen=True)
class Restored:
    """What a restore brought back, after checking it."""

    trial_id: str
    database: str
    """The restored database, without any password."""
    replaced: bool
    """An existing trial database was replaced."""
    audit_records: int
    audit_intact: bool


def backup(
    url: str | None,
    target: Path,
    *,
    actor: str | Principal,
    key_file: Path | None = None,
    key: bytes | None = None,
) -> Path:
    """Copy the trial database to ``target`` (a new file) and check the copy (admins only)."""
    if target.exists():
        raise StoreError(
            "the backup file exists",
            [Problem("target", "is never overwritten", str(target), "choose a new file name")],
        )
    _authorize(url, _principal(actor), "backup", key_file=key_file, key=key)
    database = Database(url)
    try:
        if database.backend == "sqlite":
            source_path = database.sqlite_path
            assert source_path is not None
            try:
                with (
                    closing(sqlite3.connect(source_path)) as source,
                    closing(sqlite3.connect(target)) as copy,
                ):
                    source.backup(copy)
                    # One self-contained file: no -wal or -shm beside the backup.
                    copy.execute("PRAGMA journal_mode=DELETE")
                _check_sqlite(target)
            except BaseException:
                _remove_sqlite(target)
                raise
        else:
            try:
                _run(
                    ["pg_dump", "--format=custom", f"--file={target}", _libpq(database.url)],
                    "pg_dump",
                )
            except BaseException:
                target.unlink(missing_ok=True)
                raise
    finally:
        database.dispose()
    return target


def restore(
    backup_file: Path,
    url: str | None,
    *,
    actor: str | Principal,
    key_file: Path | None = None,
    key: bytes | None = None,
    replace: bool = False,
    clock: Clock = utc_now,
) -> Restored:
    """Restore ``backup_file`` into the trial database at ``url``, check it, and say what came back.

    A SQLite database that exists is replaced only with ``replace=True``; a
    PostgreSQL database is created when it does not exist, and must be empty when
    it does. The vault key (``key``, else ``key_file``, else the default beside a
    SQLite file or ``LUMBAR_KEY``) must open the restored trial.
    """
    if not backup_file.is_file():
        raise StoreError(
            "no backup file",
            [Problem("backup", "is not a file", str(backup_file), "check the path")],
        )
    principal = _principal(actor)
    database = Database(url)
    database.dispose()
    if key is None:
        key = load_key(key_file or default_key_file(database.url))
    job = _Restore(backup_file, principal, key, clock)
    if database.backend == "sqlite":
        return job.into_sqlite(database, replace=replace)
    return job.into_postgresql(database)


@dataclass(frozen=True)
class _Restore:
    backup_file: Path
    principal: Principal
    key: bytes
    clock: Clock

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
                        "give --replace to replace it, or restore to a new file",
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
        replacing_trial = existed and database.is_initialised()
        database.dispose()
        if replacing_trial:
            _authorize(database.url, self.principal, "restore", key=self.key)
        _check_sqlite(self.backup_file)
        partial = target.with_name(target.name + ".restoring")
        _remove_sqlite(partial)  # a copy a killed restore left behind
        try:
            shutil.copyfile(self.backup_file, partial)
            restored = self.check(
                f"sqlite:///{partial}", authorize=not replacing_trial, replaced=existed
            )
            with closing(sqlite3.connect(partial)) as connection:
                # Fold the check's write-ahead log into the file: it moves as one file.
                connection.execute("PRAGMA journal_mode=DELETE")
            for suffix in ("-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            partial.replace(target)
            Path(f"{partial}-lock").unlink(missing_ok=True)  # its writers' queue, now unused
        except BaseException:
            _remove_sqlite(partial)
            raise
        return Restored(
            restored.trial_id,
            database.display_url,
            restored.replaced,
            restored.audit_records,
            restored.audit_intact,
        )

    # ------------------------------------------------------------------ PostgreSQL

    def into_postgresql(self, database: Database) -> Restored:
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
        with _server(database) as server:
            exists = _database_exists(server, name)
            before: set[tuple[str, str]] = set()
            if exists:
                if database.is_initialised():
                    database.dispose()
                    raise StoreError(
                        "the database is not empty",
                        [
                            Problem(
                                "db",
                                "already holds a trial",
                                database.display_url,
                                "restore into a new database (lumbar creates it) or an empty one",
                            )
                        ],
                    )
                before = _objects(database)
            else:
                _create_database(server, name, database.display_url)
            database.dispose()
            try:
                _run(
                    [
                        "pg_restore",
                        "--no-owner",
                        "--single-transaction",
                        "--exit-on-error",
                        f"--dbname={_libpq(database.url)}",
                        str(self.backup_file),
                    ],
                    "pg_restore",
                )
                return self.check(database.url, authorize=True, replaced=False)
            except BaseException:
                if exists:
                    _drop_new_objects(database, before)
                else:
                    _drop_database(server, name)
                raise
            finally:
                database.dispose()

    # ------------------------------------------------------------------ the check

    def check(self, url: str, *, authorize: bool, replaced: bool) -> Restored:
        """Open the restored trial with the key; check the user; record the restore."""
        database = Database(url)
        try:
            if not database.is_initialised():
                raise StoreError(
                    "not a usable backup",
                    [
                        Problem(
                            "backup",
                            "holds no lumbar trial",
                            str(self.backup_file),
                            "use a file 'lumbar backup' made",
                        )
                    ],
                )
        finally:
            database.dispose()
        context = Context.open(url, key=self.key, clock=self.clock)
        try:
            with context.db.write() as session:
                if authorize:
                    load_scope(session, self.principal.username).require("restore")
                trial_id = str(session.execute(select(TrialRecord.id)).scalar_one())
                append_audit(
                    session,
                    at=context.now(),
                    actor=self.principal.username,
                    origin=self.principal.origin,
                    action="trial.restore",
                    entity="trial",
                    entity_id=trial_id,
                    new={
                        "backup": self.backup_file.name,
                        "sha256": _sha256(self.backup_file),
                        "replaced": replaced,
                    },
                )
            with context.db.read() as session:
                report = verify_chain(session)
            return Restored(
                trial_id, context.db.display_url, replaced, report.records, report.intact
            )
        finally:
            context.close()


# ---------------------------------------------------------------------- helpers


def _principal(actor: str | Principal) -> Principal:
    return actor if isinstance(actor, Principal) else Principal.operator(actor)


def _authorize(
    url: str | None,
    principal: Principal,
    permission: str,
    *,
    key_file: Path | None = None,
    key: bytes | None = None,
) -> None:
    """Refuse unless ``principal`` holds ``permission`` in the trial at ``url``."""
    context = Context.open(url, key_file=key_file, key=key)
    try:
        with context.unit(principal, permission, write=False):
            pass
    finally:
        context.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", "-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _check_sqlite(path: Path) -> None:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
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


@contextlib.contextmanager
def _server(database: Database) -> Iterator[Engine]:
    """An autocommit connection to the server's maintenance database (to create or drop one)."""
    problems = []
    for name in MAINTENANCE_DATABASES:
        engine = create_engine(
            make_url(database.url).set(database=name),
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 10},
        )
        try:
            with engine.connect():
                pass
        except DBAPIError as error:
            engine.dispose()
            problems.append(Problem(f"database {name}", _first_line(error)))
            continue
        try:
            yield engine
        finally:
            engine.dispose()
        return
    raise StoreError(
        "cannot reach the PostgreSQL server",
        [
            *problems,
            Problem(
                "db",
                "restoring needs a connection to the server's postgres or template1 database",
                database.display_url,
                "check the URL and that the server runs",
            ),
        ],
    )


def _database_exists(server: Engine, name: str) -> bool:
    with server.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
    return found is not None


def _create_database(server: Engine, name: str, shown: str) -> None:
    quoted = server.dialect.identifier_preparer.quote_identifier(name)
    try:
        with server.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {quoted}"))
    except DBAPIError as error:
        raise StoreError(
            "cannot create the database",
            [
                Problem(
                    "db",
                    _first_line(error),
                    shown,
                    "ask the server's administrator to create it (empty), then restore into it",
                )
            ],
        ) from None


def _drop_database(server: Engine, name: str) -> None:
    quoted = server.dialect.identifier_preparer.quote_identifier(name)
    with server.connect() as connection:
        version = connection.dialect.server_version_info or (0,)
        force = " WITH (FORCE)" if version >= (13,) else ""
        connection.execute(text(f"DROP DATABASE IF EXISTS {quoted}{force}"))


_SYSTEM_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
)
_OBJECTS = text(
    f"""
    SELECT 'schema', format('%I', n.nspname) FROM pg_namespace n WHERE {_SYSTEM_SCHEMAS}
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view'
                          WHEN 'm' THEN 'materialized view' ELSE 'table' END,
           format('%I.%I', n.nspname, c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') AND {_SYSTEM_SCHEMAS}
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE {_SYSTEM_SCHEMAS}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'type', format('%I.%I', n.nspname, t.typname)
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typtype IN ('e', 'd', 'r') AND {_SYSTEM_SCHEMAS}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.objid = t.oid AND d.deptype = 'e')
    """
)
_DROP_ORDER = ("view", "materialized view", "table", "sequence", "function", "type", "schema")


def _objects(database: Database) -> set[tuple[str, str]]:
    """(kind, qualified name) of every object in the database's own schemas."""
    with database.engine.connect() as connection:
        return {(str(kind), str(name)) for kind, name in connection.execute(_OBJECTS)}


def _drop_new_objects(database: Database, before: set[tuple[str, str]]) -> None:
    """Drop every object that was not in the database before the restore."""
    try:
        with database.engine.begin() as connection:
            made = {(str(k), str(n)) for k, n in connection.execute(_OBJECTS)} - before
            for kind in _DROP_ORDER:
                for _, name in sorted(item for item in made if item[0] == kind):
                    connection.execute(text(f"DROP {kind.upper()} IF EXISTS {name} CASCADE"))
    finally:
        database.dispose()


def _first_line(error: DBAPIError) -> str:
    lines = str(error.orig or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(command: list[str], tool: str) -> None:
    if shutil.which(tool) is None:
        raise StoreError(
            f"{tool} is not installed",
            [
                Problem(
                    tool,
                    "is needed to back up or restore PostgreSQL",
                    hint="install the PostgreSQL client tools (Debian: postgresql-client)",
                )
            ],
        )
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise StoreError(
            f"{tool} failed",
            [Problem(tool, completed.stderr.strip() or f"exit status {completed.returncode}")],
        )
