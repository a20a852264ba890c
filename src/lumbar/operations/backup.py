"""Backups: a consistent copy while the trial is in use, and restoring one.

SQLite uses its online backup API: the copy is a consistent snapshot even while
coordinators keep writing. PostgreSQL uses ``pg_dump`` (custom format) and
``pg_restore`` when they are installed; the same two commands are how a
server's administrator backs it up by hand. A backup never includes the vault
key: keep the key file safe, apart from the backups.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from lumbar.errors import Problem, StoreError
from lumbar.store.database import Database

__all__ = ["backup", "restore"]


def backup(url: str | None, target: Path) -> Path:
    """Copy the trial database to ``target`` (a new file) and check the copy."""
    database = Database(url)
    if target.exists():
        raise StoreError(
            "the backup file exists",
            [Problem("target", "is never overwritten", str(target), "choose a new file name")],
        )
    if not database.is_initialised():
        raise StoreError(
            "not a lumbar trial database",
            [Problem("db", "holds no trial", database.display_url)],
        )
    if database.backend == "sqlite":
        source_path = database.sqlite_path
        assert source_path is not None
        with (
            closing(sqlite3.connect(source_path)) as source,
            closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
            # One self-contained file: no -wal or -shm beside the backup.
            copy.execute("PRAGMA journal_mode=DELETE")
        _check_sqlite(target)
    else:
        _run(["pg_dump", "--format=custom", f"--file={target}", _libpq(database.url)], "pg_dump")
    database.dispose()
    return target


def restore(backup_file: Path, url: str | None, *, replace: bool = False) -> None:
    """Restore ``backup_file`` into the trial database at ``url``.

    A SQLite database that exists is replaced only with ``replace=True``; a
    PostgreSQL database must be empty (create it first).
    """
    if not backup_file.is_file():
        raise StoreError(
            "no backup file",
            [Problem("backup", "is not a file", str(backup_file), "check the path")],
        )
    database = Database(url)
    if database.backend == "sqlite":
        _check_sqlite(backup_file)
        target = database.sqlite_path
        assert target is not None
        if target.exists() and not replace:
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
        database.dispose()
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        partial = target.with_name(target.name + ".restoring")
        shutil.copyfile(backup_file, partial)
        partial.replace(target)
        return
    if database.is_initialised():
        raise StoreError(
            "the database is not empty",
            [
                Problem(
                    "db",
                    "already holds a trial",
                    database.display_url,
                    "restore into a new, empty database",
                )
            ],
        )
    database.dispose()
    _run(
        ["pg_restore", "--no-owner", f"--dbname={_libpq(database.url)}", str(backup_file)],
        "pg_restore",
    )


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
