"""What the simulator assumes: every number, with where it comes from or why it was chosen.

The synthetic trial is calibrated to the published facts of the reference trial
(Cherkin et al., Ann Intern Med 2011;155:1-9; protocol Trials 2009;10:96): 401
randomized, ages 20-64, the adjusted differences at 10 weeks, benefits that
lasted to 26 weeks and mostly faded by 52. Everything the papers do not report
is an assumption, marked as such, and adjustable: pass your own
:class:`Assumptions` to see how the results move.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["DEFAULT_ASSUMPTIONS", "Assumptions"]

SEEN = "seen: Cherkin et al. 2011"
SEEN_2001 = "seen for the same group's 2001 trial (Cherkin et al., Arch Intern Med 2001;161:1081)"
ASSUMED = "assumption"


@dataclass(frozen=True)
class Assumptions:
    """Every parameter of the synthetic trial. ``notes`` says where each comes from."""

    participants: int = 401
    eligible_share: float = 0.45
    declined_share: float = 0.05
    recruitment_days: int = 365
    age_mean: float = 47.0
    age_sd: float = 11.0
    female_share: float = 0.64
    rdq_baseline_mean: float = 12.0
    rdq_baseline_sd: float = 4.8
    bother_baseline_mean: float = 6.2
    bother_baseline_sd: float = 1.6
    rdq_usual_care_change: tuple[float, float, float] = (-2.0, -2.5, -3.0)
    bother_usual_care_change: tuple[float, float, float] = (-1.0, -1.2, -1.4)
    rdq_effect: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: {"relaxation": (-2.9, -2.5, -1.3), "structural": (-2.5, -2.0, -0.5)}
    )
    bother_effect: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: {"relaxation": (-1.7, -1.2, -0.4), "structural": (-1.4, -1.0, -0.3)}
    )
    rdq_sd: float = 5.0
    bother_sd: float = 2.3
    baseline_correlation: float = 0.55
    visit_correlation: float = 0.6
    outcome_correlation: float = 0.3
    lost_by_visit: tuple[float, float, float] = (0.05, 0.04, 0.04)
    massage_lost_factor: float = 0.8
    attendance: float = 0.9
    never_start: float = 0.03
    adverse_event_share: float = 0.13
    serious_event_share: float = 0.005
    visit_timing_sd_days: float = 5.0
    therapists: int = 4
    ineligibility_weights: dict[str, float] = field(
        default_factory=lambda: {
            "adult_under_65": 0.08,
            "chronic_low_back_pain": 0.16,
            "within_reach": 0.06,
            "sciatica": 0.14,
            "recent_massage": 0.14,
            "other_provider": 0.08,
            "prone": 0.05,
            "stenosis": 0.06,
            "recent_surgery": 0.05,
            "litigation": 0.04,
            "disc_disease": 0.05,
            "fibromyalgia": 0.03,
            "cancer": 0.02,
            "pregnancy": 0.02,
            "english": 0.02,
        }
    )
    second_reason_share: float = 0.2
    link_share: float = 0.8
    notes: dict[str, str] = field(
        default_factory=lambda: {
            "participants": f"{SEEN}: 401 randomized",
            "eligible_share": f"{ASSUMED}: share of people screened who are eligible",
            "declined_share": f"{ASSUMED}: share of eligible people who decline consent",
            "recruitment_days": f"{ASSUMED}: recruitment spread over one year",
            "age_mean": f"{ASSUMED}: within the published range 20-64",
            "age_sd": ASSUMED,
            "female_share": ASSUMED,
            "rdq_baseline_mean": f"{ASSUMED}, close to the 12.2 {SEEN_2001}",
            "rdq_baseline_sd": ASSUMED,
            "bother_baseline_mean": f"6.2 {SEEN_2001}",
            "bother_baseline_sd": ASSUMED,
            "rdq_usual_care_change": f"{ASSUMED}: improvement in usual care by 10, 26, 52 weeks",
            "bother_usual_care_change": ASSUMED,
            "rdq_effect": f"10 weeks {SEEN} (-2.9 relaxation, -2.5 structural); 26 weeks "
            f"{ASSUMED} (benefit 'persisted'); 52 weeks {ASSUMED} (small for relaxation only)",
            "bother_effect": f"10 weeks {SEEN} (-1.7 relaxation, -1.4 structural); later {ASSUMED}",
            "rdq_sd": f"{ASSUMED}: SD of follow-up RDQ around the mean",
            "bother_sd": ASSUMED,
            "baseline_correlation": f"{ASSUMED}: correlation of follow-up with baseline",
            "visit_correlation": f"{ASSUMED}: correlation between follow-up visits",
            "outcome_correlation": f"{ASSUMED}: correlation between the RDQ and bothersomeness "
            "deviations, within and across visits",
            "lost_by_visit": f"{ASSUMED}: share newly lost before each visit (about 88% "
            "followed to 52 weeks; the 2001 trial followed 95%)",
            "massage_lost_factor": f"{ASSUMED}: massage arms lose fewer participants",
            "attendance": f"{ASSUMED}: chance of attending each planned session",
            "never_start": f"{ASSUMED}: share of massage participants who never start",
            "adverse_event_share": "increased pain in 1.5%-25% of participants (Furlan et al., "
            "Cochrane 2015); 13% assumed",
            "serious_event_share": f"{ASSUMED}: serious events are rare and unrelated "
            "(none reported in the Cochrane review)",
            "visit_timing_sd_days": f"{ASSUMED}: spread of visit dates around the target day",
            "therapists": f"{ASSUMED} (27 therapists took part in the trial)",
            "ineligibility_weights": f"{ASSUMED}: relative frequency of each eligibility rule "
            "among the reasons people are excluded (keys are the protocol's rule ids; rules the "
            "protocol does not have are ignored)",
            "second_reason_share": f"{ASSUMED}: share of ineligible people with two reasons",
            "link_share": f"{ASSUMED}: share of follow-up visits answered by the participant "
            "through their survey link; the rest by telephone, entered by a blinded assessor "
            "(the reference trial interviewed by telephone)",
        }
    )

    def __post_init__(self) -> None:
        shares = (
            "eligible_share",
            "declined_share",
            "female_share",
            "massage_lost_factor",
            "attendance",
            "never_start",
            "adverse_event_share",
            "serious_event_share",
            "second_reason_share",
            "link_share",
        )
        for name in shares:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"assumption {name}: {value} must be a share between 0 and 1")
        for name in ("baseline_correlation", "visit_correlation", "outcome_correlation"):
            value = getattr(self, name)
            if not -1.0 < value < 1.0:
                raise ValueError(f"assumption {name}: {value} must be a correlation in (-1, 1)")
        if any(not 0.0 <= share < 1.0 for share in self.lost_by_visit):
            raise ValueError(
                f"assumption lost_by_visit: {self.lost_by_visit} must be shares in [0, 1)"
            )
        visits = len(self.lost_by_visit)
        per_visit = {
            "rdq_usual_care_change": self.rdq_usual_care_change,
            "bother_usual_care_change": self.bother_usual_care_change,
            **{f"rdq_effect[{arm}]": value for arm, value in self.rdq_effect.items()},
            **{f"bother_effect[{arm}]": value for arm, value in self.bother_effect.items()},
        }
        for name, value in per_visit.items():
            if len(value) != visits:
                raise ValueError(
                    f"assumption {name}: give one value per follow-up visit ({visits}), "
                    f"not {len(value)}"
                )
        if np.linalg.eigvalsh(self.noise_correlation()).min() <= 1e-10:
            raise ValueError(
                "assumptions visit_correlation and outcome_correlation: together they do not "
                "make a valid correlation matrix; outcome_correlation must stay below "
                "(1 + 2 x visit_correlation) / 3 in size"
            )
        if self.participants < 1:
            raise ValueError(f"assumption participants: {self.participants} must be at least 1")
        if self.eligible_share == 0.0:
            raise ValueError("assumption eligible_share: 0 means nobody could be randomized")
        weights = self.ineligibility_weights
        if (
            not weights
            or any(value < 0 for value in weights.values())
            or sum(weights.values()) == 0
        ):
            raise ValueError(
                "assumption ineligibility_weights: give at least one rule with a positive weight, "
                "and no negative weights"
            )

    def noise_correlation(self) -> np.ndarray:
        """Correlation of the follow-up deviations: RDQ at each visit, then bothersomeness.

        Visits of one outcome correlate by ``visit_correlation``; the two outcomes
        correlate by ``outcome_correlation`` at any pair of visits.
        """
        visits = len(self.lost_by_visit)
        matrix = np.full((2 * visits, 2 * visits), self.outcome_correlation)
        block = np.full((visits, visits), self.visit_correlation)
        matrix[:visits, :visits] = block
        matrix[visits:, visits:] = block
        np.fill_diagonal(matrix, 1.0)
        return matrix

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value, where it comes from) for every assumption, for reports."""
        rows = []
        for item in fields(self):
            if item.name == "notes":
                continue
            value: Any = getattr(self, item.name)
            rows.append((item.name, _text(value), self.notes.get(item.name, ASSUMED)))
        return rows


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{key} {_text(item)}" for key, item in value.items())
    if isinstance(value, tuple):
        return ", ".join(f"{item:g}" for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


DEFAULT_ASSUMPTIONS = Assumptions()
