"""One small synthetic demo trial, made once and shared by the report tests."""

from __future__ import annotations

import pytest

from lumbar.demo import DemoResult, run_demo


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """60 synthetic participants (seed 5) simulated, analysed and reported."""
    # No participant joins after the report: these tests compare it with the database.
    return run_demo(tmp_path_factory.mktemp("demo"), participants=60, seed=5, follow_up_today=False)
