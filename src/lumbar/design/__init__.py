"""Study design: analytic sample size and simulation-based power (pure; no I/O).

:func:`sample_size_ancova` and :func:`power_ancova` answer "how many?" and "how
much power?" for the pre-specified analysis (an ANCOVA on the baseline value, or
an unadjusted t test), with dropout, unequal allocation and several arms each
compared with the reference arm. :func:`simulate_power` checks the answer by
simulating many trials and analysing each with the same ANCOVA, vectorized across
trials (:func:`ancova_trials`). Both give tables that
:func:`lumbar.report.figures.power_figure` draws as power curves.
"""

from lumbar.design.assumptions import (
    DEFAULT_ALPHA,
    DEFAULT_POWER,
    DesignError,
    PowerAssumptions,
    ProtocolDefaults,
    protocol_defaults,
)
from lumbar.design.sample_size import (
    PowerCalculation,
    power_ancova,
    power_curve,
    sample_size_ancova,
)
from lumbar.design.simulation import (
    Scenario,
    SimulatedPoint,
    SimulatedPower,
    SimulatedTrials,
    TrialEstimates,
    ancova_trials,
    simulate_power,
    simulate_trials,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_POWER",
    "DesignError",
    "PowerAssumptions",
    "PowerCalculation",
    "ProtocolDefaults",
    "Scenario",
    "SimulatedPoint",
    "SimulatedPower",
    "SimulatedTrials",
    "TrialEstimates",
    "ancova_trials",
    "power_ancova",
    "power_curve",
    "protocol_defaults",
    "sample_size_ancova",
    "simulate_power",
    "simulate_trials",
]
