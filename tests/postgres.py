"""PostgreSQL servers and scratch databases for the tests of lumbar's database layer.

This is a helper module, not a test file: it holds no fixtures, only plain functions
that fixtures call.

Which server
------------
:func:`server_url` finds a PostgreSQL server the tests may use, in this order:

1. the server named by ``LUMBAR_TEST_POSTGRES_URL`` (any ``postgres://``,
   ``postgresql://`` or ``postgresql+<driver>://`` URL) when that variable is set;
   if it does not answer, that is an error, not a reason to look elsewhere;
2. the server on ``127.0.0.1:5432`` (user ``postgres``, database ``postgres``) when
   one answers there;
3. a throwaway cluster the helper starts itself with the PostgreSQL server
   binaries (``initdb``, ``pg_ctl``) found on ``PATH`` or under
   ``/usr/lib/postgresql/<version>/bin`` (highest version first).

``LUMBAR_TEST_POSTGRES=throwaway`` skips the first two and always starts a throwaway
cluster (this is how the helper's own tests exercise it); ``auto`` or unset means the
order above.

The throwaway cluster is started at most once per process, listens on a free TCP
port on 127.0.0.1 only, runs with ``fsync=on`` and trust authentication for the
``postgres`` role, and is stopped (``pg_ctl stop -m fast``) and its temporary
directory removed when the interpreter exits. A process killed outright (SIGKILL)
cannot clean up: look for leftover ``lumbar-pg-*`` directories in the temporary
directory. initdb refuses to run as root, so under root the cluster is created and
run by the ``postgres`` OS user (``runuser``, else ``su``).

Databases
---------
:func:`create_database` makes a fresh, uniquely named ``lumbar_test_<hex>`` database
on a server and returns its URL (:func:`new_database_url` only names one, for code
that creates it); :func:`drop_database` drops it again, first ending any connection
still open to it. Only databases with such names are ever dropped.

All URLs are SQLAlchemy URLs for psycopg 3 (``postgresql+psycopg://...``);
:func:`conninfo` turns one into a URL that psycopg or libpq accepts directly.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

__all__ = [
    "MODE_VAR",
    "URL_VAR",
    "PostgresUnavailable",
    "conninfo",
    "create_database",
    "database_exists",
    "drop_database",
    "new_database_url",
    "server_url",
]

URL_VAR = "LUMBAR_TEST_POSTGRES_URL"
"""Environment variable naming the server to use (a PostgreSQL or SQLAlchemy URL)."""

MODE_VAR = "LUMBAR_TEST_POSTGRES"
"""Environment variable forcing a mode: ``auto`` (the default) or ``throwaway``."""

LOCAL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
"""The machine's own server, tried when no URL is given."""

DRIVER_SCHEME = "postgresql+psycopg"
PROBE_TIMEOUT = 2
"""Seconds to wait when checking whether a server answers."""
CONNECT_TIMEOUT = 10
"""Seconds to wait when connecting to a server already known to answer."""
START_TIMEOUT = 60
"""Seconds ``pg_ctl`` may take to start or stop the throwaway cluster."""

TEST_DATABASE = re.compile(r"lumbar_test_[0-9a-f]+")
"""The names :func:`create_database` gives, and the only ones :func:`drop_database` drops."""

SEARCH_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
"""Where distributions install server binaries that are not on ``PATH`` (Debian, RHEL)."""


class PostgresUnavailable(RuntimeError):  # noqa: N818 - named for the state, as fixtures catch it
    """No PostgreSQL server could be found or started; the message says what was tried."""


# ---------------------------------------------------------------------------- URLs


def conninfo(url: str) -> str:
    """The libpq/psycopg form of a SQLAlchemy PostgreSQL URL (the driver name dropped).

    >>> conninfo("postgresql+psycopg://postgres@127.0.0.1:5432/lumbar_test_0a")
    'postgresql://postgres@127.0.0.1:5432/lumbar_test_0a'
    >>> conninfo("postgres://u:p%40ss@db.example:6543/x?sslmode=require")
    'postgresql://u:p%40ss@db.example:6543/x?sslmode=require'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not _is_postgres_scheme(scheme):
        raise ValueError(f"not a PostgreSQL URL: {_redact(url)}")
    return f"postgresql://{rest}"


def _is_postgres_scheme(scheme: str) -> bool:
    return scheme.lower() in {"postgres", "postgresql"} or scheme.lower().startswith("postgresql+")


def _normalise(url: str) -> str:
    """``url`` with the psycopg 3 driver scheme that lumbar's SQLAlchemy engines use."""
    return DRIVER_SCHEME + conninfo(url).removeprefix("postgresql")


def _database(url: str) -> str:
    """The database a URL names."""
    return unquote(urlsplit(url).path.lstrip("/"))


def _with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead (built by hand: ``urlunsplit`` would drop
    the ``//`` of a socket URL with no host, such as ``postgresql+psycopg:///db?host=/run``)."""
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{quote(name, safe='')}{query}"


def _redact(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _connect(url: str, timeout: int = CONNECT_TIMEOUT) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection (``CREATE``/``DROP DATABASE`` cannot run in a transaction)."""
    return psycopg.connect(conninfo(url), autocommit=True, connect_timeout=timeout)


def _probe(url: str) -> str | None:
    """None when ``url`` accepts a connection and answers ``select 1``, else why not."""
    try:
        with _connect(url, PROBE_TIMEOUT) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


# ------------------------------------------------------------------- which server

_lock = threading.Lock()
_resolved: str | PostgresUnavailable | None = None


def server_url() -> str:
    """A SQLAlchemy URL of an administrative database on a PostgreSQL server that answers.

    The server is chosen as the module docstring describes, once per process: later
    calls return the same URL (or raise the same error) without probing again.

    Raises:
        PostgresUnavailable: nothing answered and no throwaway cluster could be started.
        ValueError: ``LUMBAR_TEST_POSTGRES`` or ``LUMBAR_TEST_POSTGRES_URL`` is malformed.
    """
    global _resolved  # noqa: PLW0603 - the per-process cache
    with _lock:
        if _resolved is None:
            try:
                _resolved = _find_server()
            except PostgresUnavailable as exc:
                _resolved = exc
        if isinstance(_resolved, PostgresUnavailable):
            raise _resolved
        return _resolved


def _find_server() -> str:
    mode = os.environ.get(MODE_VAR, "").strip().lower() or "auto"
    if mode not in {"auto", "throwaway"}:
        raise ValueError(f"{MODE_VAR}={mode!r}: expected 'auto' or 'throwaway'")
    tried: list[str] = []
    if mode == "auto":
        given = os.environ.get(URL_VAR, "").strip()
        if given:
            url = _normalise(given)
            problem = _probe(url)
            if problem is None:
                return url
            raise PostgresUnavailable(
                f"{URL_VAR} is set but its server does not answer: {_redact(url)}: {problem}"
            )
        problem = _probe(LOCAL_URL)
        if problem is None:
            return LOCAL_URL
        tried.append(f"{URL_VAR} not set; nothing usable on 127.0.0.1:5432 ({problem})")
    else:
        tried.append(f"{MODE_VAR}=throwaway, so neither {URL_VAR} nor 127.0.0.1:5432 tried")
    try:
        return _throwaway_url()
    except PostgresUnavailable as exc:
        tried.append(f"throwaway cluster: {exc}")
    raise PostgresUnavailable(
        "no PostgreSQL server for the tests. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nSet {URL_VAR}=postgresql://user@host:port/db, run a server on 127.0.0.1:5432,"
        " or install the server binaries (scripts/ensure-postgres.sh does that)."
    )


# -------------------------------------------------------------- throwaway cluster


@dataclass(frozen=True)
class _Cluster:
    bindir: Path
    root: Path
    """The temporary directory holding everything below; removed at exit."""
    port: int
    owner_pid: int
    """The process that started the cluster, the only one that may stop it."""
    as_user: tuple[str, ...]
    """Prefix running a command as the OS user owning the cluster (empty: as ourselves)."""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        return self.root / "sockets"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"{DRIVER_SCHEME}://postgres@127.0.0.1:{self.port}/postgres"


_cluster: _Cluster | None = None


def _throwaway_url() -> str:
    global _cluster  # noqa: PLW0603 - one cluster per process
    if _cluster is None:
        _cluster = _start_cluster()
        atexit.register(_stop_cluster, _cluster)
    return _cluster.url


def _bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``: the one on ``PATH``
    first, else the highest version installed where distributions put them."""
    needed = ("initdb", "pg_ctl", "postgres")
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for pattern in SEARCH_DIRS:
        found = Path("/").glob(pattern.lstrip("/"))
        candidates.extend(sorted(found, key=_version_key, reverse=True))
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in needed):
            return directory
    raise PostgresUnavailable(
        f"no PostgreSQL server binaries ({', '.join(needed)}) on PATH or in "
        + " or ".join(SEARCH_DIRS)
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    """``(15,)`` for ``/usr/lib/postgresql/15/bin``, ``(9, 6)`` for ``.../9.6/bin``."""
    return tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name)) or (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(cluster_cmd: list[str], as_user: tuple[str, ...], cwd: Path) -> None:
    """Run a server command (as the cluster's OS user); its output in the error if it fails."""
    if as_user and as_user[0] != "runuser":  # su takes one shell command line
        cmd = [*as_user, shlex.join(cluster_cmd)]
    else:
        cmd = [*as_user, *cluster_cmd]
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=START_TIMEOUT + 30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailable(f"{shlex.join(cmd)}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise PostgresUnavailable(f"{shlex.join(cmd)} exited {done.returncode}: {output}")


def _owner() -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """How to run server commands, and whose the files must be: as ourselves, except as
    root, where initdb refuses to run and the ``postgres`` OS user runs the cluster."""
    if os.geteuid() != 0:
        return (), None
    import pwd  # POSIX only; imported here so the module still imports elsewhere

    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root, where initdb refuses to run, and there is no 'postgres' OS user"
        ) from None
    if shutil.which("runuser"):
        return ("runuser", "-u", "postgres", "--"), (user.pw_uid, user.pw_gid)
    if shutil.which("su"):
        return ("su", "postgres", "-s", "/bin/sh", "-c"), (user.pw_uid, user.pw_gid)
    raise PostgresUnavailable("running as root with neither runuser nor su to become 'postgres'")


def _start_cluster() -> _Cluster:
    bindir = _bindir()
    as_user, ids = _owner()
    root = Path(tempfile.mkdtemp(prefix="lumbar-pg-"))
    try:
        (root / "sockets").mkdir()
        if ids is not None:
            for path in (root, root / "sockets"):
                os.chown(path, *ids)
        cluster = _Cluster(bindir, root, _free_port(), os.getpid(), as_user)
        _run(
            [
                str(bindir / "initdb"),
                f"--pgdata={cluster.data}",
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # initdb's own final flush only: the server runs with fsync=on
            ],
            as_user,
            root,
        )
        attempts = 3  # the free port may be taken between choosing and binding it
        for attempt in range(attempts):
            try:
                _pg_ctl_start(cluster)
                break
            except PostgresUnavailable:
                if attempt == attempts - 1:
                    raise
                cluster = _Cluster(bindir, root, _free_port(), os.getpid(), as_user)
        problem = _probe(cluster.url)
        if problem is not None:
            _stop_cluster(cluster)
            raise PostgresUnavailable(
                f"started a cluster in {root} but it does not answer: {problem}"
            )
        return cluster
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _pg_ctl_start(cluster: _Cluster) -> None:
    options = [
        f"-p {cluster.port}",
        "-c listen_addresses=127.0.0.1",
        f"-c unix_socket_directories={shlex.quote(str(cluster.sockets))}",
        "-c fsync=on",
    ]
    try:
        _run(
            [
                str(cluster.bindir / "pg_ctl"),
                "start",
                f"--pgdata={cluster.data}",
                f"--log={cluster.log}",  # also keeps the server off our stdout and stderr
                "--wait",
                f"--timeout={START_TIMEOUT}",
                "--options",
                " ".join(options),  # pg_ctl passes these through a shell
            ],
            cluster.as_user,
            cluster.root,
        )
    except PostgresUnavailable as exc:
        try:
            log = cluster.log.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        except OSError:
            log = "(no server log)"
        raise PostgresUnavailable(f"{exc}\nserver log:\n{log}") from None


def _stop_cluster(cluster: _Cluster) -> None:
    """Stop the cluster (fast, else immediate) and delete its files; registered with atexit.

    A forked child inherits the atexit registration but not the cluster, so it does nothing.
    """
    if os.getpid() != cluster.owner_pid:
        return
    try:
        for mode in ("fast", "immediate"):
            try:
                _run(
                    [
                        str(cluster.bindir / "pg_ctl"),
                        "stop",
                        f"--pgdata={cluster.data}",
                        f"--mode={mode}",
                        "--wait",
                        f"--timeout={START_TIMEOUT}",
                    ],
                    cluster.as_user,
                    cluster.root,
                )
                break
            except PostgresUnavailable:
                continue
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


# ---------------------------------------------------------------------- databases

_admin: dict[str, str] = {}
"""The server URL each database made here was created from, to drop it from there."""


def create_database(server: str) -> str:
    """Create a fresh, empty ``lumbar_test_<hex>`` database on ``server`` and return its URL.

    ``server`` is a URL of any database the role may connect to and create databases
    from, such as :func:`server_url`. The new database is UTF-8 with the C collation, the
    same on every server, so ordering in tests does not depend on the machine.
    """
    server = _normalise(server)
    name = f"lumbar_test_{secrets.token_hex(8)}"
    with _connect(server) as conn:
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(sql.Identifier(name))
        )
    url = _with_database(server, name)
    _admin[url] = server
    return url


def new_database_url(server: str) -> str:
    """The URL of a ``lumbar_test_<hex>`` database on ``server`` that does not exist yet.

    For code that creates the database itself (``lumbar restore``);
    :func:`drop_database` drops it afterwards, if it was made.
    """
    server = _normalise(server)
    url = _with_database(server, f"lumbar_test_{secrets.token_hex(8)}")
    _admin[url] = server
    return url


def database_exists(url: str) -> bool:
    """Whether the database ``url`` names exists on its server."""
    url = _normalise(url)
    server = _admin.get(url) or _with_database(url, "postgres")
    with _connect(server) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (_database(url),)
        ).fetchone()
    return found is not None


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database`, ending other connections to it first.

    Dropping one that is already gone is not an error. To guard shared servers, a
    database whose name is not ``lumbar_test_<hex>`` is refused with ``ValueError``.
    """
    url = _normalise(url)
    name = _database(url)
    if not TEST_DATABASE.fullmatch(name):
        raise ValueError(f"refusing to drop {name!r}: not a database made by create_database")
    server = _admin.pop(url, None) or _with_database(url, "postgres")
    with _connect(server) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force))
