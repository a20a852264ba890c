"""The PostgreSQL side of backup and restore: the server, its databases, and its tools.

Private to :mod:`lumbar.operations.backups`. The client tools (``pg_dump``,
``pg_restore``) get the database as a URL without its password; the password
reaches them only through a temporary password file (:func:`pg_access`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from lumbar.errors import Problem, StoreError
from lumbar.store.database import Database

__all__ = [
    "MAINTENANCE_DATABASES",
    "NAME_BYTES",
    "connected",
    "create_database",
    "database_exists",
    "database_name",
    "drop_database",
    "drop_new_objects",
    "first_line",
    "objects",
    "pg_access",
    "run",
    "server",
    "swap",
    "unused_name",
]

MAINTENANCE_DATABASES = ("postgres", "template1")
"""Databases on a PostgreSQL server to connect to when creating or dropping another."""

NAME_BYTES = 63
"""PostgreSQL keeps at most this many bytes of a database name (NAMEDATALEN - 1)."""


@contextlib.contextmanager
def server(database: Database) -> Iterator[Engine]:
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
            problems.append(Problem(f"database {name}", first_line(error)))
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


def database_exists(server: Engine, name: str) -> bool:
    with server.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
    return found is not None


def create_database(server: Engine, name: str, shown: str) -> None:
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
                    first_line(error),
                    shown,
                    "ask the server's administrator to create it (empty), then restore into it",
                )
            ],
        ) from None


def drop_database(server: Engine, name: str) -> None:
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


def objects(database: Database) -> set[tuple[str, str]]:
    """(kind, qualified name) of every object in the database's own schemas."""
    with database.engine.connect() as connection:
        return {(str(kind), str(name)) for kind, name in connection.execute(_OBJECTS)}


def drop_new_objects(database: Database, before: set[tuple[str, str]]) -> None:
    """Drop every object that was not in the database before the restore."""
    try:
        with database.engine.begin() as connection:
            made = {(str(k), str(n)) for k, n in connection.execute(_OBJECTS)} - before
            for kind in _DROP_ORDER:
                for _, name in sorted(item for item in made if item[0] == kind):
                    connection.execute(text(f"DROP {kind.upper()} IF EXISTS {name} CASCADE"))
    finally:
        database.dispose()


def database_name(name: str, suffix: str) -> str:
    """``name`` with ``suffix``, cut to PostgreSQL's length for names."""
    room = NAME_BYTES - len(suffix.encode("utf-8"))
    return name.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix


def unused_name(server: Engine, name: str, suffix: str) -> str:
    number = 1
    while True:
        candidate = database_name(name, suffix + (f"_{number}" if number > 1 else ""))
        if not database_exists(server, candidate):
            return candidate
        number += 1


def swap(server: Engine, name: str, fresh: str, kept: str) -> None:
    """Rename ``name`` to ``kept`` and ``fresh`` to ``name`` in one transaction.

    The server refuses to rename a database anyone is connected to: nobody can be
    writing to the trial's database when it is swapped.
    """
    quote = server.dialect.identifier_preparer.quote_identifier
    with server.connect() as autocommit:
        connection = autocommit.execution_options(isolation_level="READ COMMITTED")
        with connection.begin():
            connection.execute(text(f"ALTER DATABASE {quote(name)} RENAME TO {quote(kept)}"))
            connection.execute(text(f"ALTER DATABASE {quote(fresh)} RENAME TO {quote(name)}"))


def connected(server: Engine, name: str) -> list[str]:
    """Who is connected to database ``name``, to name them."""
    with server.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid, application_name, usename, client_addr, backend_start "
                "FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid() "
                "ORDER BY backend_start"
            ),
            {"name": name},
        ).all()
    return [
        f"{application or 'a program that did not name itself'} (database role {role}, "
        f"{'from ' + str(address) if address else 'on the server socket'}, server pid {pid})"
        for pid, application, role, address, _ in rows
    ]


def first_line(error: DBAPIError) -> str:
    lines = str(error.orig or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@contextlib.contextmanager
def pg_access(url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A libpq URL without the password, and the environment that carries the password.

    The password goes into a temporary password file (``PGPASSFILE``, 0600, in a
    private folder, deleted afterwards): never onto a command line, which every local
    user can read.
    """
    parsed = make_url(url)
    # URL.set ignores None: a named tuple's _replace takes the password out.
    without = parsed.set(drivername="postgresql")._replace(password=None)
    conninfo = without.render_as_string(hide_password=False)
    env = dict(os.environ)
    if parsed.password is None:
        yield conninfo, env
        return
    env.pop("PGPASSWORD", None)
    folder = Path(tempfile.mkdtemp(prefix="lumbar-pgpass-"))
    try:
        secret = str(parsed.password).replace("\\", "\\\\").replace(":", "\\:")
        descriptor = os.open(folder / "passfile", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as passfile:
            passfile.write(f"*:*:*:*:{secret}\n")
        env["PGPASSFILE"] = str(folder / "passfile")
        yield conninfo, env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(command: list[str], tool: str, env: dict[str, str]) -> None:
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
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if completed.returncode != 0:
        raise StoreError(
            f"{tool} failed",
            [Problem(tool, completed.stderr.strip() or f"exit status {completed.returncode}")],
        )
