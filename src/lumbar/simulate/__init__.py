"""SYNTHETIC trials for the demo and the tests, run through the real operations API.

Everything made here is labelled synthetic. :data:`DEFAULT_ASSUMPTIONS` holds
every number the simulator uses, each with its source or marked as an
assumption (see :meth:`Assumptions.describe`).
"""

from lumbar.simulate.assumptions import DEFAULT_ASSUMPTIONS, Assumptions
from lumbar.simulate.trial import (
    SimulationSummary,
    SyntheticClock,
    expected_differences,
    join_now,
    populate_staff,
    simulate_trial,
)

__all__ = [
    "DEFAULT_ASSUMPTIONS",
    "Assumptions",
    "SimulationSummary",
    "SyntheticClock",
    "expected_differences",
    "join_now",
    "populate_staff",
    "simulate_trial",
]
