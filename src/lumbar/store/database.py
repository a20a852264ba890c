"""Connecting to a trial database: URLs, engine settings, units of work, migrations.

SQLite is the embedded default and runs in WAL mode with ``synchronous=FULL``
(an acknowledged commit survives a crash or power loss), foreign keys on and a
busy timeout. Every write transaction starts with ``BEGIN IMMEDIATE``, so two
writers never deadlock on a lock upgrade; they queue, lumbar's writers on a lock
file beside the database (see :func:`_writers_queue`), so each is woken as soon as
the one before it commits.
PostgreSQL is the multi-site server (``postgresql://...``); every write holds the
trial's write lock, a transaction-level advisory lock: exclusive for most writes,
shared by those that write about one participant only (which lock that
participant's row instead, see :mod:`lumbar.operations.context`).

A writer that waits past the busy timeout gets "the trial is busy, try again", and a
file SQLite cannot read (truncated, overwritten, not SQLite) gets "not a lumbar trial
database, or the file is damaged": both :class:`~lumbar.errors.StoreError`, never a
driver traceback.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session

from lumbar.errors import Problem, StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "DEFAULT_URL",
    "Database",
    "Migration",
    "default_key_file",
    "resolve_url",
    "schema_head",
    "schema_revisions",
]

DEFAULT_URL = "sqlite:///lumbar.db"
"""A SQLite file named lumbar.db in the working folder."""

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another to finish before giving up."""

WRITE_LOCK = 0x6C6D7772
"""The PostgreSQL advisory-lock key of the trial's write lock (``"lmwr"`` in ASCII; not the
lease's key, :data:`lumbar.store.lease.LEASE_KEY`, which a restore holds while it writes)."""


def resolve_url(url: str | None) -> str:
    """A SQLAlchemy URL from what a user typed: a URL, or a path to a SQLite file."""
    if not url:
        return DEFAULT_URL
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def default_key_file(url: str) -> Path:
    """Where ``lumbar init`` puts the key file: beside a SQLite file, else ./lumbar.key."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(f"{parsed.database}.key")
    return Path("lumbar.key")


class Database:
    """One trial database: an engine and units of work over it."""

    def __init__(self, url: str | None = None):
        self.url = resolve_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise StoreError(
                "the database URL is not valid",
                [
                    Problem(
                        "db",
                        "must be a path to a SQLite file or a URL",
                        url,
                        "for example trial.db or postgresql://user@host/dbname",
                    )
                ],
            ) from None
        self.backend = parsed.get_backend_name()
        if self.backend not in ("sqlite", "postgresql"):
            raise StoreError(
                "unsupported database",
                [Problem("db", "must be SQLite or PostgreSQL", self.backend)],
            )
        self.engine = _engine(self.url, self.backend)

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        database = make_url(self.url).database
        return Path(database) if self.backend == "sqlite" and database else None

    @contextmanager
    def write(self, *, shared: bool = False) -> Iterator[Session]:
        """A unit of work that writes: committed whole when the block ends, or not at all.

        On PostgreSQL it holds the trial's write lock until it ends: exclusive, or
        ``shared`` with other shared writers (who must then lock the rows they depend on).
        """
        with self._unit(write=True, shared=shared) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work that only reads (rolled back at the end)."""
        with self._unit(write=False) as session:
            yield session

    @contextmanager
    def _unit(self, *, write: bool, shared: bool = False) -> Iterator[Session]:
        if write and self.backend == "sqlite":
            with _writers_queue(self.sqlite_path), self._transaction(write, shared) as session:
                yield session
        else:
            with self._transaction(write, shared) as session:
                yield session

    @contextmanager
    def _transaction(self, write: bool, shared: bool) -> Iterator[Session]:
        try:
            connection = self.engine.connect()
        except DBAPIError as error:
            raise _unreachable(self.url, error) from None
        with connection:
            connection.info["lumbar_write"] = write
            try:
                transaction = connection.begin()
            except DBAPIError as error:
                connection.info.pop("lumbar_write", None)
                translated = _translated(self.url, error)
                if translated is None:
                    raise
                raise translated from None
            session = Session(bind=connection, autoflush=True, expire_on_commit=False)
            try:
                if write and self.backend == "postgresql":
                    connection.exec_driver_sql(_SHARED_LOCK if shared else _EXCLUSIVE_LOCK)
                yield session
                session.flush()
                if write:
                    transaction.commit()
                else:
                    transaction.rollback()
            except BaseException as error:
                _roll_back(transaction)
                translated = _translated(self.url, error) if isinstance(error, DBAPIError) else None
                if translated is None:
                    raise
                raise translated from None
            finally:
                session.close()
                connection.info.pop("lumbar_write", None)

    def is_initialised(self) -> bool:
        """Whether a trial lives here (a read: it never waits for a writer's lock).

        A SQLite file that does not exist holds no trial, and asking does not create it.
        """
        path = self.sqlite_path
        if path is not None and str(path) != ":memory:" and not path.exists():
            return False
        try:
            with self.engine.connect() as connection:
                connection.info["lumbar_write"] = False
                try:
                    return inspect(connection).has_table("trial")
                finally:
                    connection.info.pop("lumbar_write", None)
        except DBAPIError as error:
            raise _unreachable(self.url, error) from None

    def create_owner_only(self) -> None:
        """Create a new SQLite file readable and writable by its owner only (0600, whatever
        the umask); SQLite gives its -wal and -shm files the same mode. No-op otherwise."""
        path = self.sqlite_path
        if path is None or str(path) == ":memory:" or path.exists():
            return
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.chmod(path, 0o600)
        except FileExistsError:
            return
        except OSError as error:
            raise StoreError(
                "cannot create the database file",
                [Problem("db", error.strerror or str(error), str(path), "check the folder")],
            ) from None

    def migrate(self) -> None:
        """Bring the schema up to the newest migration."""
        with self.migrating() as migration:
            migration.run()

    @contextmanager
    def migrating(self) -> Iterator[Migration]:
        """One write transaction to migrate the schema in: the block may read the database
        before it calls :meth:`Migration.run`, and check and record the migration after;
        the whole is committed when the block ends, or nothing is (an error undoes the
        migration too, on both databases: their DDL is transactional)."""
        try:
            connection = self.engine.connect()
        except DBAPIError as error:
            raise _unreachable(self.url, error) from None
        with connection:
            connection.info["lumbar_write"] = True
            try:
                with connection.begin():
                    session = Session(bind=connection, autoflush=True, expire_on_commit=False)
                    try:
                        yield Migration(connection, session)
                        session.flush()
                    finally:
                        session.close()
            except DBAPIError as error:
                translated = _translated(self.url, error)
                if translated is None:
                    raise
                raise translated from None
            finally:
                connection.info.pop("lumbar_write", None)

    def revision(self) -> str | None:
        """The schema revision this database is at (None: it records none): one small read."""
        try:
            with self.engine.connect() as connection:
                connection.info["lumbar_write"] = False
                try:
                    return stored_revision(connection)
                finally:
                    connection.info.pop("lumbar_write", None)
        except DBAPIError as error:
            raise _unreachable(self.url, error) from None

    def require_current_schema(self) -> None:
        """Refuse a database whose schema is not this lumbar's newest (StoreError saying
        which revision it is at, which this lumbar needs, and what to do)."""
        revision = self.revision()
        head = schema_head()
        if revision == head:
            return
        shown = self.display_url
        if revision is None:
            raise StoreError(
                "not a lumbar trial database, or it is damaged",
                [
                    Problem(
                        "db",
                        "holds a trial table but records no schema revision (alembic_version)",
                        shown,
                        "check that this is the trial's database; if it was damaged, restore "
                        "the latest backup with lumbar restore",
                    )
                ],
            )
        if revision in schema_revisions():
            raise StoreError(
                "the trial database needs an upgrade",
                [
                    Problem(
                        "db",
                        f"is at schema revision {revision}, made by an older lumbar; "
                        f"this lumbar needs revision {head}",
                        shown,
                        f"back it up and upgrade it: 'lumbar upgrade --db {shown} --as ADMIN' "
                        "makes the backup first, then upgrades; nothing was changed",
                    )
                ],
            )
        raise StoreError(
            "the trial database is newer than this lumbar",
            [
                Problem(
                    "db",
                    f"is at schema revision {revision}, which this lumbar does not "
                    f"know (it knows revisions up to {head}): a newer lumbar made it",
                    shown,
                    "upgrade lumbar to the version that made it (or a newer one); "
                    "nothing was changed",
                )
            ],
        )

    def dispose(self) -> None:
        self.engine.dispose()


@cache
def schema_revisions() -> tuple[str, ...]:
    """Every schema revision this lumbar knows, oldest first (the last is the newest).

    Read from the shipped migration scripts once per process (they cannot change under a
    running lumbar). Every trial opened asks, so the scripts' ``revision`` and
    ``down_revision`` lines are read as text (a few milliseconds) rather than through
    alembic, which imports every script (a fifth of a second); scripts that are not one
    plain chain (a merge, a fork) are left to alembic, which refuses a fork.
    """
    return _chain_of_scripts() or _alembic_revisions()


def _chain_of_scripts(folder: Traversable | None = None) -> tuple[str, ...] | None:
    """The revisions of the migration scripts (in ``folder``, by default the shipped ones) as
    one chain, oldest first; None when they are not a plain chain of string revisions."""
    if folder is None:
        folder = resources.files("lumbar.store").joinpath("migrations").joinpath("versions")
    after: dict[str | None, str] = {}
    for script in folder.iterdir():
        if not script.name.endswith(".py"):
            continue
        source = script.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        down = _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None
        parent = None if down["parent"] == "None" else down["parent"].strip("\"'")
        if parent in after:
            return None  # two scripts revise one: a fork
        after[parent] = revision["revision"]
    chain: list[str] = []
    current = after.get(None)
    while current is not None and len(chain) <= len(after):
        chain.append(current)
        current = after.get(current)
    return tuple(chain) if chain and len(chain) == len(after) else None


_REVISION = re.compile(r"""^revision(?:\s*:[^=]+)?\s*=\s*["'](?P<revision>[^"']+)["']\s*$""", re.M)
_DOWN_REVISION = re.compile(
    r"""^down_revision(?:\s*:[^=]+)?\s*=\s*(?P<parent>None|["'][^"']+["'])\s*$""", re.M
)


def _alembic_revisions() -> tuple[str, ...]:
    """The revisions as alembic reads them (it imports every script); StoreError on a fork."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - only an irregular chain asks

    scripts = ScriptDirectory.from_config(_alembic_config())
    heads = scripts.get_heads()
    if len(heads) != 1:
        raise StoreError(
            "this lumbar's schema migrations are broken",
            [
                Problem(
                    "migrations",
                    "must end in one newest revision",
                    ", ".join(sorted(heads)),
                    "reinstall lumbar; a developer: give one of the scripts down_revision "
                    "the other",
                )
            ],
        )
    return tuple(reversed([script.revision for script in scripts.walk_revisions()]))


class Migration:
    """A schema migration under way: its transaction's session, and :meth:`run`."""

    def __init__(self, connection: Connection, session: Session):
        self._connection = connection
        self.session = session

    def run(self) -> None:
        """Migrate to the newest revision, in the transaction."""
        from alembic import command  # noqa: PLC0415 - only creating or upgrading a trial migrates

        self.session.flush()
        config = _alembic_config()
        config.attributes["connection"] = self._connection
        command.upgrade(config, "head")


def schema_head() -> str:
    """The newest schema revision this lumbar's migration scripts know."""
    return schema_revisions()[-1]


def stored_revision(connection: Connection) -> str | None:
    """The schema revision alembic recorded in the database on ``connection`` (None: none),
    read in a transaction of its own (a connection outside any transaction)."""
    try:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        connection.rollback()  # PostgreSQL: the failed statement ended the transaction
        if inspect(connection).has_table("alembic_version"):
            raise
        return None
    return None if revision is None else str(revision)


def _alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - only creating a trial migrates

    config = Config()
    folder = resources.files("lumbar.store").joinpath("migrations")
    config.set_main_option("script_location", str(folder))
    return config


APPLICATION_NAME_BYTES = 63
"""PostgreSQL keeps at most this many bytes of ``application_name`` (NAMEDATALEN - 1)."""


def this_command() -> str:
    """This process's command line, with any password in a URL hidden, kept short."""
    words = [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]]
    shown = re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1:***@", " ".join(words))
    return shown[:200]


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def application_name(command: str | None = None) -> str:
    """How a PostgreSQL connection names its holder (pid first: the name is cut at 63 bytes)."""
    name = f"lumbar pid {os.getpid()} {os_user()}@{socket.gethostname()} "
    name += command if command is not None else this_command()
    return name.encode("utf-8")[:APPLICATION_NAME_BYTES].decode("utf-8", "ignore")


def _engine(url: str, backend: str) -> Engine:
    if backend == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10, "application_name": application_name()},
        )
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event, not the driver, open transactions.
    connection.isolation_level = None
    cursor = connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    ):
        cursor.execute(pragma)
    cursor.close()


_EXCLUSIVE_LOCK = f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"
_SHARED_LOCK = f"SELECT pg_advisory_xact_lock_shared({WRITE_LOCK})"


def _sqlite_begin(connection: Any) -> None:
    # Units of work say whether they write; anything else only reads.
    write = connection.info.get("lumbar_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def _writers_queue(path: Path | None) -> Iterator[None]:
    """Wait for this SQLite trial's other lumbar writers: an exclusive ``flock`` on
    ``<database>-lock``, held from before ``BEGIN IMMEDIATE`` until after the commit.

    A waiting writer sleeps in the kernel and is woken when the lock is released, rather
    than polling with SQLite's busy handler, which sleeps up to 100 ms a try: the lock
    then goes unused while writers wait, and with many writers the polls take the
    processor from the one that holds it. Each unit opens the file anew, so threads of one
    process queue too. SQLite's own locking stays the guard (this only orders lumbar's
    writers); a program other than lumbar is still waited for with the busy timeout.
    """
    if path is None or fcntl is None or str(path) == ":memory:" or not path.exists():
        yield  # nothing to queue for: a new file is being made (by one creator)
        return
    try:
        descriptor = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # no folder, or read-only: opening the database will say so
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


# What SQLite says (sqlite3 gives no error codes before Python 3.11's
# sqlite_errorname, and only for some errors), and what it means for a user.
_BUSY = ("database is locked", "database table is locked")
_DAMAGED = (
    "file is not a database",
    "database disk image is malformed",
    "malformed database schema",
    "file is encrypted or is not a database",
)


def _kind(error: DBAPIError) -> str | None:
    """``busy``, ``damaged``, or None for an error that is not about the database file."""
    message = str(error.orig).lower() if error.orig is not None else ""
    if any(text in message for text in _BUSY):
        return "busy"
    if any(text in message for text in _DAMAGED):
        return "damaged"
    return None


def _roll_back(transaction: Any) -> None:
    # When the database failed already, rolling back may fail too; the first error says why.
    with suppress(DBAPIError):
        transaction.rollback()


def _translated(url: str, error: DBAPIError) -> StoreError | None:
    """A user's error for a busy or damaged database; None for any other error."""
    shown = make_url(url).render_as_string(hide_password=True)
    kind = _kind(error)
    if kind == "busy":
        return StoreError(
            "the trial is busy, try again",
            [
                Problem(
                    "db",
                    f"another user kept the database busy for more than "
                    f"{BUSY_TIMEOUT_MS // 1000} seconds; nothing was changed",
                    shown,
                    "run the command again in a moment; if it keeps happening, look for a "
                    "lumbar command (or another program) that holds the database open",
                )
            ],
        )
    if kind == "damaged":
        return StoreError(
            "not a lumbar trial database, or the file is damaged",
            [
                Problem(
                    "db",
                    f"the file cannot be read as a SQLite database ({error.orig})",
                    shown,
                    "check that this is the trial's database file; if it was damaged (a full "
                    "disk, a partial copy), restore the latest backup with lumbar restore",
                )
            ],
        )
    return None


def _unreachable(url: str, error: DBAPIError) -> StoreError:
    translated = _translated(url, error)
    if translated is not None:
        return translated
    shown = make_url(url).render_as_string(hide_password=True)
    return StoreError(
        "cannot open the trial database",
        [
            Problem(
                "db",
                str(error.orig).strip().splitlines()[0] if error.orig else str(error),
                shown,
                "check the URL, that the server runs, and that the file's folder exists",
            )
        ],
    )


def environment_url() -> str | None:
    """The database URL from ``LUMBAR_DB``, when set."""
    return os.environ.get("LUMBAR_DB") or None
