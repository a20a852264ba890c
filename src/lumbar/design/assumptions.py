"""What a sample-size or power calculation assumes, checked once when it is written down.

:class:`PowerAssumptions` holds every number the analytic calculation needs: the
difference to detect, the outcome's SD, its correlation with baseline, the
significance level, the number of arms and how they are compared, the allocation
ratio and the expected dropout. It is frozen and validated on construction;
every broken rule is reported at once, as a :class:`DesignError` naming the
field, the value received, the rule and what to try.

:func:`protocol_defaults` reads what a trial protocol already says: the arms,
the allocation ratio, the significance level and the between-arm difference
the protocol calls meaningful for a primary outcome.

Exceptions::

    LumbarError
    └── DesignError     assumptions of a sample-size or power calculation break a rule
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from lumbar.errors import DesignError, Problem
from lumbar.protocol import Protocol

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_POWER",
    "DesignError",
    "Method",
    "Multiplicity",
    "PowerAssumptions",
    "ProtocolDefaults",
    "check_positive_count",
    "protocol_defaults",
]

DEFAULT_ALPHA = 0.05
"""Two-sided 5%: the conventional significance level (ICH E9, Statistical principles for
clinical trials, 1998, section 3.5)."""

DEFAULT_POWER = 0.80
"""80%: the conventional lowest acceptable power (Cohen J. Statistical Power Analysis for the
Behavioral Sciences, 2nd ed. 1988, section 2.4)."""

Method = Literal["borm", "exact"]
"""How an ANCOVA's power is computed (see :mod:`lumbar.design.sample_size`)."""

Multiplicity = Literal["none", "bonferroni"]
"""How alpha is shared among the comparisons of the treatment arms with the reference arm."""

METHODS: tuple[Method, ...] = ("borm", "exact")
MULTIPLICITIES: tuple[Multiplicity, ...] = ("none", "bonferroni")


@dataclass(frozen=True)
class PowerAssumptions:
    """Everything an analytic sample-size or power calculation assumes.

    ``difference`` is the treatment arm's mean minus the reference arm's mean at
    follow-up (its sign does not change a two-sided answer); ``sd`` the outcome's
    standard deviation in each arm. ``baseline_correlation`` is the correlation of
    the outcome with its baseline value: give it for the pre-specified ANCOVA
    (``outcome ~ arm + baseline``); leave it ``None`` for an unadjusted comparison
    (the two-sample t test of R's ``power.t.test``).

    With more than two arms, each treatment arm is compared with the reference
    arm (``arms - 1`` comparisons); the residual variance is pooled over all arms.
    ``multiplicity="bonferroni"`` tests each comparison at ``alpha / (arms - 1)``,
    which keeps the chance of any false positive at most ``alpha``; ``"none"`` tests
    each at ``alpha``, as trials with co-primary comparisons often pre-specify.

    ``allocation_ratio`` is participants in each treatment arm per participant in
    the reference arm (2 means 2:1). ``dropout`` is the share of randomized
    participants expected to have no follow-up outcome; the analysed numbers are
    inflated to randomized numbers by ``n / (1 - dropout)``, rounded up.
    """

    difference: float
    sd: float
    baseline_correlation: float | None = None
    alpha: float = DEFAULT_ALPHA
    two_sided: bool = True
    arms: int = 2
    allocation_ratio: float = 1.0
    dropout: float = 0.0
    multiplicity: Multiplicity = "none"
    method: Method = "borm"

    def __post_init__(self) -> None:
        problems = [
            *_finite("difference", self.difference),
            *_finite("sd", self.sd),
            *_finite("allocation_ratio", self.allocation_ratio),
        ]
        if not problems:
            if self.difference == 0:
                problems.append(
                    Problem(
                        "difference",
                        "must not be 0: no sample size detects no difference",
                        self.difference,
                        "give the smallest difference worth detecting, e.g. 2 (RDQ points)",
                    )
                )
            if self.sd <= 0:
                problems.append(
                    Problem("sd", "must be greater than 0", self.sd, "e.g. 5 for the RDQ")
                )
            if self.allocation_ratio <= 0:
                problems.append(
                    Problem(
                        "allocation_ratio",
                        "must be greater than 0 (treatment participants per reference one)",
                        self.allocation_ratio,
                        "1 for equal allocation, 2 for 2:1",
                    )
                )
        problems += check_correlation("baseline_correlation", self.baseline_correlation)
        problems += check_share("alpha", self.alpha, "e.g. 0.05")
        problems += check_dropout("dropout", self.dropout)
        if isinstance(self.arms, bool) or not isinstance(self.arms, int) or self.arms < 2:
            problems.append(
                Problem("arms", "must be a whole number of at least 2", self.arms, "e.g. 3")
            )
        if self.multiplicity not in MULTIPLICITIES:
            problems.append(
                Problem(
                    "multiplicity", f"must be one of {', '.join(MULTIPLICITIES)}", self.multiplicity
                )
            )
        if self.method not in METHODS:
            problems.append(Problem("method", f"must be one of {', '.join(METHODS)}", self.method))
        if problems:
            raise DesignError("the power calculation's assumptions are not valid", problems)

    @property
    def comparisons(self) -> int:
        """Treatment arms, each compared with the reference arm."""
        return self.arms - 1

    @property
    def alpha_per_comparison(self) -> float:
        if self.multiplicity == "bonferroni":
            return self.alpha / self.comparisons
        return self.alpha

    @property
    def adjusted(self) -> bool:
        """True for the ANCOVA adjusted for baseline; False for the unadjusted t test."""
        return self.baseline_correlation is not None

    @property
    def residual_sd(self) -> float:
        """The outcome's SD given baseline: ``sd * sqrt(1 - rho^2)`` (``sd`` if unadjusted)."""
        rho = self.baseline_correlation or 0.0
        return self.sd * math.sqrt(1.0 - rho * rho)

    @property
    def analysis(self) -> str:
        if self.adjusted:
            return "ANCOVA adjusted for baseline"
        return "two-sample t test" if self.arms == 2 else "t test with variance pooled over arms"

    def to_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference,
            "sd": self.sd,
            "baseline_correlation": self.baseline_correlation,
            "alpha": self.alpha,
            "two_sided": self.two_sided,
            "arms": self.arms,
            "comparisons": self.comparisons,
            "multiplicity": self.multiplicity,
            "alpha_per_comparison": self.alpha_per_comparison,
            "allocation_ratio": self.allocation_ratio,
            "dropout": self.dropout,
            "method": self.method if self.adjusted else "t",
            "analysis": self.analysis,
        }


def _finite(where: str, value: object) -> list[Problem]:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return [Problem(where, "must be a finite number", value)]
    return []


def check_correlation(where: str, value: float | None) -> list[Problem]:
    """A correlation with baseline: None (no baseline in the model) or strictly within (-1, 1)."""
    if value is None:
        return []
    problems = _finite(where, value)
    if not problems and not -1.0 < value < 1.0:
        problems.append(
            Problem(
                where,
                "must be between -1 and 1, exclusive",
                value,
                "e.g. 0.5; a correlation of +-1 would make the outcome its baseline",
            )
        )
    return problems


def check_share(where: str, value: float, example: str) -> list[Problem]:
    """A probability strictly between 0 and 1 (a significance level, a power)."""
    problems = _finite(where, value)
    if not problems and not 0.0 < value < 1.0:
        problems.append(Problem(where, "must be between 0 and 1, exclusive", value, example))
    return problems


def check_dropout(where: str, value: float) -> list[Problem]:
    """A dropout share: at least 0 and below 1."""
    problems = _finite(where, value)
    if not problems and not 0.0 <= value < 1.0:
        problems.append(
            Problem(
                where,
                "must be at least 0 and below 1 (a share of randomized participants)",
                value,
                "e.g. 0.12 for 12% without a follow-up outcome",
            )
        )
    return problems


def check_positive_count(where: str, value: object, least: int, example: str) -> list[Problem]:
    """A whole number of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        return [Problem(where, f"must be a whole number of at least {least}", value, example)]
    return []


@dataclass(frozen=True)
class ProtocolDefaults:
    """What a protocol says that a power calculation needs (everything but the SD)."""

    protocol: str
    outcome: str
    difference: float
    difference_source: str
    arms: tuple[str, ...]
    """Arm ids, the reference arm first."""
    allocation_ratio: float
    alpha: float


def protocol_defaults(protocol: Protocol, outcome: str | None = None) -> ProtocolDefaults:
    """The arms, allocation ratio, alpha and meaningful difference a protocol pre-specifies.

    ``outcome`` is a protocol outcome id; by default the first primary outcome
    whose instrument has a ``meaningful_group_difference``. The protocol does not
    give the outcome's SD or its correlation with baseline: those stay assumptions.
    """
    candidates = protocol.outcomes if outcome is not None else protocol.primary_outcomes
    chosen = [item for item in candidates if outcome is None or item.id == outcome]
    if outcome is not None and not chosen:
        raise DesignError(
            "no such outcome",
            [
                Problem(
                    "outcome",
                    f"is not an outcome of protocol {protocol.id}",
                    outcome,
                    "one of " + ", ".join(item.id for item in protocol.outcomes),
                )
            ],
        )
    for item in chosen:
        meaningful = protocol.thresholds_for(item.instrument).meaningful_group_difference
        if meaningful is None:
            continue
        reference = protocol.analysis.reference_arm
        arms = (reference, *(arm.id for arm in protocol.arms if arm.id != reference))
        ratio = protocol.randomization.ratio
        treatment_ratios = {ratio[arm] for arm in arms[1:]}
        if len(treatment_ratios) != 1:
            raise DesignError(
                "the protocol's allocation cannot be summarised by one ratio",
                [
                    Problem(
                        "randomization.ratio",
                        "treatment arms with different ratios are not supported here",
                        dict(ratio),
                        "give --ratio yourself",
                    )
                ],
            )
        return ProtocolDefaults(
            protocol=protocol.id,
            outcome=item.id,
            difference=float(meaningful.value),
            difference_source=meaningful.source,
            arms=arms,
            allocation_ratio=treatment_ratios.pop() / ratio[reference],
            alpha=float(protocol.analysis.alpha),
        )
    raise DesignError(
        "the protocol gives no meaningful difference",
        [
            Problem(
                "outcome",
                f"no {'such' if outcome else 'primary'} outcome's instrument has a "
                "meaningful_group_difference in protocol " + protocol.id,
                outcome,
                "give the difference to detect yourself",
            )
        ],
    )
