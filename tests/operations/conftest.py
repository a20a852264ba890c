"""Fixtures for operation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres as pg
from tests.operations.world import World, build_world


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> World:
    """A fresh trial of the reference protocol with two sites and one user per role."""
    return build_world(database_url, tmp_path)


@pytest.fixture
def new_target(world: World, tmp_path: Path) -> Iterator[str]:
    """A database URL on the world's backend where nothing exists yet (a restore's or an
    upgrade's target)."""
    if world.url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    url = pg.new_database_url(pg.server_url())
    try:
        yield url
    finally:
        pg.drop_database(url)
