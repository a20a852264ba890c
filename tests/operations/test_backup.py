"""Backups are consistent while coordinators keep writing, and restore brings them back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lumbar.errors import StoreError
from lumbar.operations import Trial, backup, restore
from tests import postgres as pg
from tests.operations.world import World, eligible_answers

pytestmark = pytest.mark.integration


def test_a_backup_taken_during_writes_is_consistent(world: World, tmp_path: Path) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_screening() -> None:
        trial = world.as_("coord")
        try:
            while not stop.is_set():
                trial.screen("SEA", eligible_answers(world.protocol))
        except BaseException as error:
            errors.append(error)
        finally:
            trial.close()

    writer = threading.Thread(target=keep_screening)
    writer.start()
    try:
        copy = backup(world.url, tmp_path / "during.backup")
    finally:
        stop.set()
        writer.join()
    assert errors == []
    if world.url.startswith("sqlite"):
        target = f"sqlite:///{tmp_path / 'restored.db'}"
        restore(copy, target)
    else:
        target = pg.create_database(pg.server_url())
        restore(copy, target)
    try:
        restored = Trial.open(target, "admin", key_file=world.key_file)
        report = restored.verify_audit()
        assert report.intact
        screened = len(restored.participants())
        assert report.records >= screened  # every person in the copy has their audit record
        restored.close()
    finally:
        if not target.startswith("sqlite"):
            pg.drop_database(target)


def test_a_backup_never_overwrites_a_file(world: World, tmp_path: Path) -> None:
    existing = tmp_path / "exists.backup"
    existing.write_text("keep me")
    with pytest.raises(StoreError, match="is never overwritten"):
        backup(world.url, existing)
    assert existing.read_text() == "keep me"


def test_restore_refuses_a_file_that_is_not_a_backup(world: World, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    if world.url.startswith("sqlite"):
        with pytest.raises(StoreError, match="not a usable backup"):
            restore(junk, f"sqlite:///{tmp_path / 'new.db'}")
    else:
        target = pg.create_database(pg.server_url())
        try:
            with pytest.raises(StoreError, match="pg_restore failed"):
                restore(junk, target)
        finally:
            pg.drop_database(target)
