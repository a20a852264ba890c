"""The PostgreSQL test helper (tests/postgres.py): it finds a server, makes and drops
scratch databases, and starts and stops a throwaway cluster of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests import postgres as helper

pytestmark = pytest.mark.integration

HELPER = Path(__file__).with_name("postgres.py")

# Run in a fresh interpreter: start a throwaway cluster, report on it as JSON, exit
# (which must stop the cluster). The helper is loaded from its path, so this works
# whatever the child's sys.path.
CHILD = """
import importlib.util, json, sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("lumbar_tests_postgres", sys.argv[1])
helper = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = helper
spec.loader.exec_module(helper)
try:
    url = helper.server_url()
except helper.PostgresUnavailable as exc:
    print(json.dumps({"unavailable": str(exc)}))
    raise SystemExit(0)
import psycopg

with psycopg.connect(helper.conninfo(url)) as conn:
    one, data, listen, fsync = conn.execute(
        "select 1, current_setting('data_directory'), current_setting('listen_addresses'),"
        " current_setting('fsync')"
    ).fetchone()
pid = int((Path(data) / "postmaster.pid").read_text().split()[0])
print(json.dumps({"url": url, "one": one, "data": data, "listen": listen, "fsync": fsync,
                  "pid": pid}))
"""


@pytest.fixture(scope="module")
def server() -> str:
    try:
        return helper.server_url()
    except helper.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")


def _databases(server: str) -> set[str]:
    with psycopg.connect(helper.conninfo(server), connect_timeout=10) as conn:
        return {str(row[0]) for row in conn.execute("select datname from pg_database")}


def _running(pid: int) -> bool:
    """Whether process ``pid`` is a live (not zombie) process."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def test_the_server_url_is_a_working_sqlalchemy_url(server: str) -> None:
    assert server.startswith("postgresql+psycopg://")
    assert helper.server_url() == server  # found once per process
    engine = create_engine(server)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_created_database_exists_until_dropped(server: str) -> None:
    url = helper.create_database(server)
    name = url.rsplit("/", 1)[1]
    try:
        assert name.startswith("lumbar_test_")
        assert name in _databases(server)
        with psycopg.connect(helper.conninfo(url), connect_timeout=10) as conn:
            row = conn.execute(
                "select current_database(), pg_encoding_to_char(encoding), datcollate"
                " from pg_database where datname = current_database()"
            ).fetchone()
        assert row == (name, "UTF8", "C")
        # A connection left open does not block the drop: it is ended first.
        with psycopg.connect(helper.conninfo(url), connect_timeout=10) as lingering:
            helper.drop_database(url)
            with pytest.raises(psycopg.OperationalError):
                lingering.execute("select 1")
    finally:
        helper.drop_database(url)  # dropping what is gone is not an error
    assert name not in _databases(server)


def test_only_test_databases_are_dropped() -> None:
    # Refused before any connection is attempted, so no server is needed.
    with pytest.raises(ValueError, match="refusing to drop 'postgres'"):
        helper.drop_database("postgresql+psycopg://postgres@127.0.0.1:1/postgres")


def test_a_forced_throwaway_cluster_answers_and_is_gone_after_exit(tmp_path: Path) -> None:
    env = {**os.environ, helper.MODE_VAR: "throwaway"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(HELPER)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if "unavailable" in report:
        pytest.skip(f"could not start a throwaway PostgreSQL cluster: {report['unavailable']}")

    assert report["one"] == 1
    assert report["listen"] == "127.0.0.1"
    assert report["fsync"] == "on"
    assert ":5432/" not in report["url"]
    assert not _running(report["pid"]), "the postmaster outlived the process that started it"
    assert not Path(report["data"]).parent.exists(), "the cluster's temporary directory remains"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(helper.conninfo(report["url"]), connect_timeout=2).close()
