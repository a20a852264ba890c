"""The analysis engine: pure functions on long trial data, results that know their method.

Start from :class:`TrialData` (any long DataFrame with a column mapping, or
lumbar's tidy dataset), then fit :func:`ancova`, :func:`mmrm`, :func:`gee`,
:func:`multiple_imputation`, :func:`responders` and :func:`early_response`, or
run them all with :func:`analyze`. :func:`baseline_table`, :func:`consort_counts` and
:func:`pooled_summary` describe the trial (by arm, or all participants together);
:func:`client_change` and :func:`trajectory` judge one client's change against
measurement error and the trial's thresholds; :func:`nof1_plan`,
:func:`nof1_analysis` and :func:`nof1_pooled` plan and analyse a client's own
randomized trial (N-of-1).
No function here reads a database (docs/analysis.md).
"""

from lumbar.analysis.ancova import AncovaResult, ancova
from lumbar.analysis.baseline import BaselineTable, baseline_table, participant_rows
from lumbar.analysis.consort import ConsortFlow, consort_counts
from lumbar.analysis.covariance import STRUCTURES
from lumbar.analysis.data import Columns, TrialData
from lumbar.analysis.early_response import EarlyResponseResult, Relief, early_response
from lumbar.analysis.gee import GeeResult, gee
from lumbar.analysis.imputation import (
    ImputationResult,
    TippingPointResult,
    multiple_imputation,
    pool,
    tipping_point,
)
from lumbar.analysis.individual import ClientChange, Trajectory, client_change, trajectory
from lumbar.analysis.mmrm import MmrmResult, mmrm
from lumbar.analysis.nof1 import (
    Nof1Plan,
    Nof1Pooled,
    Nof1Result,
    nof1_analysis,
    nof1_plan,
    nof1_pooled,
)
from lumbar.analysis.plan import OutcomeAnalysis, Settings, analyze
from lumbar.analysis.pooled import PooledSummary, pooled_summary
from lumbar.analysis.responders import Definition, ResponderResult, definitions_from, responders
from lumbar.analysis.results import Provenance
from lumbar.estimates import Estimate

__all__ = [
    "STRUCTURES",
    "AncovaResult",
    "BaselineTable",
    "ClientChange",
    "Columns",
    "ConsortFlow",
    "Definition",
    "EarlyResponseResult",
    "Estimate",
    "GeeResult",
    "ImputationResult",
    "MmrmResult",
    "Nof1Plan",
    "Nof1Pooled",
    "Nof1Result",
    "OutcomeAnalysis",
    "PooledSummary",
    "Provenance",
    "Relief",
    "ResponderResult",
    "Settings",
    "TippingPointResult",
    "Trajectory",
    "TrialData",
    "analyze",
    "ancova",
    "baseline_table",
    "client_change",
    "consort_counts",
    "definitions_from",
    "early_response",
    "gee",
    "mmrm",
    "multiple_imputation",
    "nof1_analysis",
    "nof1_plan",
    "nof1_pooled",
    "participant_rows",
    "pool",
    "pooled_summary",
    "responders",
    "tipping_point",
    "trajectory",
]
