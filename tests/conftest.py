"""Shared fixtures: the shipped reference protocol as text and as a fresh dict to mutate."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from lumbar.protocol import Protocol, shipped_protocol, shipped_text
from tests import postgres as pg
from tests.clitools import Cli

REFERENCE = "massage-clbp"

# In CI, property tests run the same examples every time (a failure reproduces from
# the log) and are not timed: a slow shared machine must not fail them.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def reference() -> Protocol:
    """The shipped reference protocol (immutable, so shared by every test)."""
    return shipped_protocol(REFERENCE)


@pytest.fixture(scope="session")
def reference_text() -> str:
    return shipped_text(REFERENCE)


@pytest.fixture(scope="session")
def _reference_data(reference_text: str) -> dict[str, Any]:
    data = yaml.safe_load(reference_text)
    assert isinstance(data, dict)
    return data


@pytest.fixture
def reference_data(_reference_data: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the reference protocol as plain data, free to mutate."""
    return copy.deepcopy(_reference_data)


@pytest.fixture
def write_protocol(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write protocol data as YAML to a temporary file and return its path."""

    def write(data: dict[str, Any], name: str = "protocol.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        return path

    return write


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend: a SQLite file, or a new PostgreSQL database.

    PostgreSQL comes from LUMBAR_TEST_POSTGRES_URL, else 127.0.0.1:5432, else a throwaway
    cluster (tests/postgres.py); under CI=true a skip here fails the run.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trial.db'}"
        return
    try:
        server = pg.server_url()
    except pg.PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL: {error}")
    url = pg.create_database(server)
    try:
        yield url
    finally:
        pg.drop_database(url)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    """A trial made by ``lumbar init`` on each backend, with a site, a coordinator (carol), a
    therapist (tom) and a blinded statistician (sam)."""
    run = Cli(database_url, tmp_path / "trial.key")
    output = run("init", "massage-clbp", "--seed", "11", user=None)
    assert "created trial massage-clbp" in output
    assert run.key_file.stat().st_mode & 0o777 == 0o600
    run("site", "add", "SEA", "Seattle")
    run("user", "add", "carol", "--role", "coordinator", "--site", "SEA")
    run("user", "add", "tom", "--role", "therapist", "--site", "SEA", "--reason", "gives massage")
    run("user", "add", "sam", "--role", "statistician", "--all-sites")
    return run
