"""Fixtures for operation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.operations.world import World, build_world


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> World:
    """A fresh trial of the reference protocol with two sites and one user per role."""
    return build_world(database_url, tmp_path)
