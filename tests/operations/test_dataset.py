"""The tidy dataset matches its documented schema."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.operations.world import World, build_world

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dataset.md"


def _documented_patterns() -> list[re.Pattern[str]]:
    names = re.findall(r"^\| `([^`]+)` \|", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    return [
        re.compile(
            "^"
            + re.sub(r"<[^>]+>", ".+", re.escape(name).replace(r"\<", "<").replace(r"\>", ">"))
            + "$"
        )
        for name in names
    ]


@pytest.fixture
def sqlite_world(tmp_path: Path) -> World:
    return build_world(f"sqlite:///{tmp_path / 'trial.db'}", tmp_path)


def test_every_column_is_documented(sqlite_world: World) -> None:
    sqlite_world.randomized()
    frame = sqlite_world.as_("stat").dataset()
    patterns = _documented_patterns()
    undocumented = [c for c in frame.columns if not any(p.match(c) for p in patterns)]
    assert undocumented == []
    assert {"rdq_total", "bothersomeness_score", "rdq_total_baseline", "age", "sex"} <= set(
        frame.columns
    )


def test_export_round_trips_in_both_formats(sqlite_world: World, tmp_path: Path) -> None:
    sqlite_world.randomized()
    statistician = sqlite_world.as_("stat")
    frame = statistician.dataset()
    csv, parquet = tmp_path / "d.csv", tmp_path / "d.parquet"
    assert statistician.export(csv, "csv") == len(frame) == 4
    assert statistician.export(parquet, "parquet") == 4
    from_parquet = pd.read_parquet(parquet)
    pd.testing.assert_frame_equal(from_parquet, frame, check_dtype=False)
    from_csv = pd.read_csv(csv)
    assert list(from_csv.columns) == list(frame.columns)
    assert from_csv["rdq_total_baseline"].tolist() == [8.0] * 4
