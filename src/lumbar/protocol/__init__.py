"""Trial protocols as data: models, YAML loading, eligibility and strata (pure; no database).

:func:`load_protocol` reads a protocol file and :func:`shipped_protocol`
returns one shipped with lumbar (``massage-clbp``, the reference trial); both
check every rule and raise :class:`~lumbar.errors.ProtocolError` naming the
file, line, field, value and rule of each problem. :func:`evaluate_eligibility`
screens a person against the protocol's rules; :func:`assign_stratum` finds
their randomization stratum.
"""

from lumbar.protocol.eligibility import (
    EligibilityResult,
    RuleOutcome,
    check_screening_answers,
    describe_condition,
    evaluate_condition,
    evaluate_eligibility,
)
from lumbar.protocol.loading import (
    load_protocol,
    parse_protocol,
    resolve_protocol,
    shipped_protocol,
    shipped_protocol_names,
    shipped_text,
)
from lumbar.protocol.model import (
    PROTOCOL_FORMAT,
    RATING_MAXIMUM,
    RATING_MINIMUM,
    AnalysisPlan,
    Arm,
    Condition,
    Eligibility,
    Outcome,
    OutOfWindowRule,
    Protocol,
    Question,
    Randomization,
    Rule,
    RuleCategory,
    ScoreSource,
    SessionPlan,
    SessionRating,
    StratumFactor,
    StratumLevel,
    Term,
    TrialInfo,
    Visit,
    VisitTiming,
    Vocabulary,
    Window,
    WindowStatus,
)
from lumbar.protocol.strata import all_strata, assign_stratum, stratum_key

__all__ = [
    "PROTOCOL_FORMAT",
    "RATING_MAXIMUM",
    "RATING_MINIMUM",
    "AnalysisPlan",
    "Arm",
    "Condition",
    "Eligibility",
    "EligibilityResult",
    "OutOfWindowRule",
    "Outcome",
    "Protocol",
    "Question",
    "Randomization",
    "Rule",
    "RuleCategory",
    "RuleOutcome",
    "ScoreSource",
    "SessionPlan",
    "SessionRating",
    "StratumFactor",
    "StratumLevel",
    "Term",
    "TrialInfo",
    "Visit",
    "VisitTiming",
    "Vocabulary",
    "Window",
    "WindowStatus",
    "all_strata",
    "assign_stratum",
    "check_screening_answers",
    "describe_condition",
    "evaluate_condition",
    "evaluate_eligibility",
    "load_protocol",
    "parse_protocol",
    "resolve_protocol",
    "shipped_protocol",
    "shipped_protocol_names",
    "shipped_text",
    "stratum_key",
]
