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
    lost_by_visit: tuple[float, float, float] = (0.05, 0.04, 0.04)
    massage_lost_factor: float = 0.8
    attendance: float = 0.9
    never_start: float = 0.03
    adverse_event_share: float = 0.13
    serious_event_share: float = 0.005
    visit_timing_sd_days: float = 5.0
    therapists: int = 4
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
        }
    )

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
