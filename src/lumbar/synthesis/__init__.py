"""Evidence synthesis: effect sizes from study summaries, and meta-analysis.

Pure functions on study-level data (no I/O beyond reading the shipped dataset):
:func:`effect_sizes` turns per-arm summaries into effects with variances;
:func:`meta_analysis` pools them (common-effect or random-effects, DL, REML, PM,
ML, optionally with the Hartung-Knapp-Sidik-Jonkman adjustment);
:func:`meta_regression` explains heterogeneity by moderators. Numbers are
checked against R's metafor (tests/reference/meta.R).
"""

from lumbar.synthesis.effects import (
    BINARY,
    CONTINUOUS,
    MEASURES,
    EffectSizes,
    Measure,
    effect_sizes,
    hedges_correction,
    sd_from_ci,
    sd_from_se,
)
from lumbar.synthesis.heterogeneity import (
    EggerTest,
    SubgroupAnalysis,
    cumulative,
    egger_not_estimable,
    egger_test,
    leave_one_out,
    subgroups,
)
from lumbar.synthesis.models import (
    METHODS,
    MetaResult,
    Method,
    meta_analysis,
    meta_regression,
)
from lumbar.synthesis.review import Review, review
from lumbar.synthesis.studies import (
    SHIPPED,
    Placement,
    StudyTable,
    place_trial,
    read_studies,
    shipped_studies,
)

__all__ = [
    "BINARY",
    "CONTINUOUS",
    "MEASURES",
    "METHODS",
    "SHIPPED",
    "EffectSizes",
    "EggerTest",
    "Measure",
    "MetaResult",
    "Method",
    "Placement",
    "Review",
    "StudyTable",
    "SubgroupAnalysis",
    "cumulative",
    "effect_sizes",
    "egger_not_estimable",
    "egger_test",
    "hedges_correction",
    "leave_one_out",
    "meta_analysis",
    "meta_regression",
    "place_trial",
    "read_studies",
    "review",
    "sd_from_ci",
    "sd_from_se",
    "shipped_studies",
    "subgroups",
]
