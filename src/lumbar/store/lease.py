"""Who has the trial open: a shared lease every open trial holds, and a restore or an
upgrade takes whole.

A restore must never lose a write: a process that has the trial open (the command
line running a command, the web server for its whole life) holds a **shared** lease
from the moment it opens the trial until it closes it, and a restore takes the
lease **exclusively** or refuses, naming the holders. While a restore holds it, a
process that opens the trial is refused, naming the restore. The lease is taken
once per open trial (:class:`~lumbar.operations.context.Context`), never per
transaction, so it costs nothing per write.

SQLite: a folder ``<database>.in-use/`` beside the database file (owner-only)
holds

- ``lock``: every holder has it locked shared (``flock(LOCK_SH)``), a restore
  exclusive (``LOCK_EX | LOCK_NB``). The kernel drops a dead process's lock, so a
  crash never leaves the trial locked.
- one record per holder, ``<host>-<pid>-<random>.json``: operating-system user, host,
  process id, command and since when, to name them. Its owner keeps the record
  itself locked exclusively while it lives, so a record nobody holds is a dead
  process's, and is removed when found.

PostgreSQL: every connection lumbar makes names its holder in ``application_name``
(user, host, process id, command). A restore holds a session advisory lock (key
:data:`LEASE_KEY`) exclusively and is refused while any other connection to the
trial's database exists, naming each; the swap at its end (renaming databases)
is refused by the server too while anyone is connected. Every write transaction
takes the same lock shared, for the transaction only, in the statement that locks
the audit head (:func:`write_allowed`: no extra round trip), so a write during a
restore is refused, naming the restore. Nothing is held between transactions: an
open trial costs no extra connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, func, text

from lumbar.errors import Problem, StoreError
from lumbar.store.database import Database, application_name, os_user, this_command

__all__ = [
    "LEASE_KEY",
    "RESTORE_PATIENCE",
    "Holder",
    "Lease",
    "being_restored",
    "discard_unused",
    "exclusive_lease",
    "lease_folder",
    "write_allowed",
]

LEASE_KEY = 0x6C756D62
"""The PostgreSQL advisory lock key of the trial lease ("lumb"; below 2^31, so it shows as
``objid`` with ``classid`` 0 in ``pg_locks``)."""

_RECORD_SUFFIX = ".json"


@dataclass(frozen=True)
class Holder:
    """Someone holding the lease: enough to find them and ask them to stop."""

    description: str

    def __str__(self) -> str:
        return self.description


def lease_folder(path: Path) -> Path:
    """The folder beside a SQLite database that holds its lease."""
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".in-use")


class Lease:
    """A lease on one trial database, shared (an open trial) or exclusive (a restore).

    Release it with :meth:`release`; a lease never released is released when it is
    garbage-collected or the interpreter exits, and a killed process's by the kernel
    or the server.
    """

    def __init__(self, release: Callable[..., None], *resources: Any):
        self._release = weakref.finalize(self, release, *resources)

    def release(self) -> None:
        self._release()

    @classmethod
    def hold(cls, database: Database, command: str | None = None) -> Lease:
        """Take the shared lease; StoreError naming the restore when one runs."""
        return cls._take(database, "shared", command)

    @classmethod
    def _take(
        cls, database: Database, mode: Literal["shared", "exclusive"], command: str | None
    ) -> Lease:
        command = command if command is not None else this_command()
        path = database.sqlite_path
        if database.backend == "sqlite":
            if path is None or str(path) == ":memory:":
                return cls(_nothing)
            return _take_sqlite(cls, lease_folder(path), mode, command, database.display_url)
        return _take_postgresql(cls, database, mode, command)


@contextlib.contextmanager
def exclusive_lease(database: Database, command: str | None = None) -> Iterator[Lease]:
    """Hold the trial whole for the block: StoreError naming every holder when in use."""
    lease = Lease._take(database, "exclusive", command)
    try:
        yield lease
    finally:
        lease.release()


# ---------------------------------------------------------------------- who is asking


def _record(command: str, mode: str) -> dict[str, Any]:
    return {
        "user": os_user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": command,
        "mode": mode,
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _describe(record: dict[str, Any]) -> str:
    return (
        f"{record.get('user', '?')}@{record.get('host', '?')} pid {record.get('pid', '?')} "
        f"({record.get('command', '?')}) since {record.get('since', '?')}"
    )


# ---------------------------------------------------------------------- SQLite


def _nothing() -> None:
    return None


def _open_owner_only(path: Path, flags: int) -> int:
    descriptor = os.open(path, flags | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _take_sqlite(
    cls: type[Lease],
    folder: Path,
    mode: Literal["shared", "exclusive"],
    command: str,
    shown: str,
) -> Lease:
    while True:
        lock = _open_lock(folder)
        try:
            fcntl.flock(
                lock, (fcntl.LOCK_SH if mode == "shared" else fcntl.LOCK_EX) | fcntl.LOCK_NB
            )
        except OSError as error:
            os.close(lock)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise _refused(mode, _sqlite_holders(folder), shown) from None
        if _still_there(lock, folder / "lock"):
            break
        os.close(lock)  # removed (a failed restore's folder) while we opened it: again
    if mode == "exclusive":
        _sqlite_holders(folder)  # nobody else holds it: discard dead processes' records
    try:
        record = _write_record(folder, _record(command, mode))
    except BaseException:
        os.close(lock)
        raise
    return cls(_release_sqlite, lock, *record)


def _open_lock(folder: Path) -> int:
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        return _open_owner_only(folder / "lock", os.O_RDWR | os.O_CREAT)
    except OSError as error:
        raise StoreError(
            "cannot take the trial's lease",
            [
                Problem(
                    "db",
                    f"the lease folder beside the database cannot be written ({error.strerror})",
                    str(folder),
                    "run lumbar as the user who owns the database's folder",
                )
            ],
        ) from None


def _still_there(descriptor: int, path: Path) -> bool:
    """Whether ``path`` is still the file open as ``descriptor`` (not removed meanwhile)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def discard_unused(path: Path) -> None:
    """Remove the lease folder beside ``path`` when no database is there and nobody holds it
    (what a failed restore to a new file leaves)."""
    folder = lease_folder(path)
    if path.exists() or not folder.is_dir():
        return
    try:
        lock = os.open(folder / "lock", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return
    try:
        if _sqlite_holders(folder) or path.exists():
            return
        with contextlib.suppress(OSError):
            (folder / "lock").unlink()  # who opens it later sees it gone, and starts again
            folder.rmdir()
    finally:
        os.close(lock)


def _write_record(folder: Path, record: dict[str, Any]) -> tuple[int, Path]:
    """Write this holder's record, locked by its owner, under its final name at once."""
    name = f"{record['host']}-{record['pid']}-{secrets.token_hex(4)}"
    partial = folder / f"{name}.writing"
    descriptor = _open_owner_only(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.write(descriptor, json.dumps(record).encode("utf-8"))
        final = folder / f"{name}{_RECORD_SUFFIX}"
        os.replace(partial, final)
    except BaseException:
        os.close(descriptor)
        partial.unlink(missing_ok=True)
        raise
    return descriptor, final


def _release_sqlite(lock: int, record: int, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(record)
    os.close(lock)


def _sqlite_holders(folder: Path) -> list[Holder]:
    """The live holders' records; a record whose owner is gone is removed."""
    found: list[Holder] = []
    try:
        paths = sorted(folder.glob(f"*{_RECORD_SUFFIX}"))
    except OSError:
        return found
    for path in paths:
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                pass  # its owner holds it: alive
            else:
                with contextlib.suppress(OSError):
                    path.unlink()  # nobody holds it: a dead process's record
                continue
            try:
                record = json.loads(os.read(descriptor, 1 << 16).decode("utf-8"))
            except (OSError, ValueError):
                record = {"command": f"unreadable record {path.name}"}
            found.append(Holder(_describe(record)))
        finally:
            os.close(descriptor)
    return found


# ---------------------------------------------------------------------- PostgreSQL

CLOSING_SECONDS = 2
"""How long a restore waits for connections that are closing before it counts them as
in use (the server ends a closed connection's session a moment after the client goes;
PostgreSQL's own check before renaming a database waits 5 s the same way)."""

RESTORE_PATIENCE = 1.0
"""How long a write that finds a restore holding the trial tries again before it is
refused: a restore that finds the trial in use lets go at once."""

_RESTORERS = text(
    """
    SELECT a.pid, a.application_name, a.usename, a.client_addr, a.backend_start
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = 0 AND l.objid = :key AND l.objsubid = 1
       AND a.pid <> pg_backend_pid()
    """
)
_CONNECTED = text(
    """
    SELECT pid, application_name, usename, client_addr, backend_start
      FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
     ORDER BY backend_start
    """
)


def _take_postgresql(
    cls: type[Lease], database: Database, mode: Literal["shared", "exclusive"], command: str
) -> Lease:
    if mode == "shared":
        # Checked once at opening (every write checks again in its first statement, see
        # write_allowed); nothing is held between transactions, so an open trial costs
        # no extra connection.
        with database.engine.connect() as connection:
            if not connection.execute(
                text("SELECT pg_try_advisory_xact_lock_shared(:key)"), {"key": LEASE_KEY}
            ).scalar():
                raise being_restored(connection, database.display_url)
            connection.rollback()
        return cls(_nothing)
    connection = database.engine.connect()
    try:
        name = application_name(command)
        connection.execute(
            text("SELECT set_config('application_name', :name, false)"), {"name": name}
        )
        connection.commit()
        # Wait for connections that are closing before taking the lock, so a restore
        # that will be refused never holds it (a write meanwhile would be refused).
        found = _describe_rows(connection.execute(_CONNECTED))
        for _ in range(int(CLOSING_SECONDS * 10)):
            if not found:
                break
            time.sleep(0.1)  # a connection just closed leaves its server session shortly after
            found = _describe_rows(connection.execute(_CONNECTED))
            connection.commit()
        if found:
            raise _refused(mode, found, database.display_url)
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": LEASE_KEY}
        ).scalar()
        connection.commit()  # a session lock outlives the transaction
        # Anyone who connected in between is seen now: from here on they are refused.
        found = _describe_rows(connection.execute(_CONNECTED))
        connection.commit()
        if not taken or found:
            raise _refused(mode, found, database.display_url)
    except BaseException:
        connection.invalidate()
        connection.close()
        raise
    return cls(_release_postgresql, connection)


def write_allowed() -> ColumnElement[bool]:
    """The SQL a PostgreSQL write evaluates in its first statement: false while a restore
    holds the trial (a transaction-scoped shared lock, released at commit)."""
    return func.pg_try_advisory_xact_lock_shared(LEASE_KEY)


def being_restored(connection: Connection, shown: str) -> StoreError:
    """The refusal of a write, or an opening, while a restore holds the trial."""
    return _refused(
        "shared", _describe_rows(connection.execute(_RESTORERS, {"key": LEASE_KEY})), shown
    )


def _release_postgresql(connection: Connection) -> None:
    # Closing the server session drops its advisory lock and its application_name.
    with contextlib.suppress(Exception):
        connection.invalidate()
    with contextlib.suppress(Exception):
        connection.close()


def _describe_rows(rows: Any) -> list[Holder]:
    found = []
    for pid, application, role, address, since in rows:
        where = f"from {address}" if address is not None else "on the server's socket"
        started = since.astimezone(dt.UTC).isoformat(timespec="seconds") if since else "?"
        found.append(
            Holder(
                f"{application or 'a program that did not name itself'} "
                f"(database role {role}, {where}, server pid {pid}) since {started}"
            )
        )
    return found


# ---------------------------------------------------------------------- refusals


def _refused(mode: str, found: list[Holder], shown: str) -> StoreError:
    if mode == "shared":
        return StoreError(
            "the trial is being restored or upgraded",
            [
                *(Problem("db", f"is held whole by {holder}", shown) for holder in found),
                Problem(
                    "db",
                    "is being restored or upgraded" if not found else "is held by that command",
                    shown,
                    "wait until it has finished, then run the command again",
                ),
            ],
        )
    return StoreError(
        "the trial is in use",
        [
            *(Problem("db", f"is open in {holder}", shown) for holder in found),
            Problem(
                "db",
                "must not be open anywhere while it is restored or upgraded "
                + ("(a process holds it but left no record of itself)" if not found else ""),
                shown,
                "finish or stop those commands (and the web server), then run this one again",
            ),
        ],
    )
