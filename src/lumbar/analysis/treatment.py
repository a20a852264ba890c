"""What each arm received and what harmed: adherence, techniques, adverse events.

Pure summaries of the de-identified tables that
:meth:`lumbar.operations.Trial.sessions_table` and
:meth:`~lumbar.operations.Trial.adverse_event_table` return (or the same
columns from elsewhere). Denominators are the participants allocated to each
arm, so an arm whose participants never came still shows its zeros.

Example::

    >>> allocated = pd.Series({"P1": "massage", "P2": "massage", "P3": "usual"})
    >>> sessions = pd.DataFrame({"participant": ["P1", "P1"], "arm": ["massage"] * 2,
    ...     "day": [3, 10], "minutes": [90, 60], "techniques": [["kneading"], ["kneading"]],
    ...     "body_regions": [["low_back"], ["low_back"]], "home_care": [[], []]})
    >>> summary = treatment_summary(sessions, allocated, {"massage": 10, "usual": 0})
    >>> row = summary.adherence.loc["massage"]
    >>> (int(row["allocated"]), int(row["started"]), float(row["sessions_median"]))
    (2, 1, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lumbar.errors import AnalysisError, Problem

__all__ = [
    "RELATED",
    "SafetySummary",
    "TreatmentSummary",
    "safety_summary",
    "treatment_summary",
]

SESSION_COLUMNS = ("participant", "arm", "day", "minutes", "techniques", "body_regions")
EVENT_COLUMNS = ("participant", "arm", "severity", "serious", "relatedness")
RELATED = ("possible", "probable", "definite")
"""Relatedness grades counted as related to treatment (the usual convention)."""
SEVERITIES = ("mild", "moderate", "severe")


@dataclass(frozen=True)
class TreatmentSummary:
    """Sessions attended per arm, and what the sessions contained."""

    adequate_share: float
    """A participant "completed" treatment by attending at least this share of planned sessions."""
    adherence: pd.DataFrame = field(repr=False)
    """Index arm: allocated, planned, started, completed, sessions_mean, sessions_median,
    sessions_q1, sessions_q3, minutes_mean, first_minutes_mean."""
    attendance: pd.DataFrame = field(repr=False)
    """arm, sessions (0..planned), participants."""
    content: pd.DataFrame = field(repr=False)
    """arm, kind (technique, body_region, home_care), item, sessions, share_of_sessions,
    participants, share_of_participants (of those who started)."""

    def adherence_frame(self) -> pd.DataFrame:
        return self.adherence.reset_index()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "treatment_summary",
            "adequate_share": self.adequate_share,
            "adherence": self.adherence_frame().to_dict(orient="records"),
            "attendance": self.attendance.to_dict(orient="records"),
            "content": self.content.to_dict(orient="records"),
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        return (
            "Adherence is the number of treatment sessions each allocated participant "
            "attended, out of the number the protocol planned; a participant started treatment "
            "with one session and completed it by attending at least "
            f"{100 * self.adequate_share:.0f}% of the planned sessions. Techniques, body regions "
            "and home-care advice are counted per session and per participant treated."
        )


@dataclass(frozen=True)
class SafetySummary:
    """Adverse events per arm."""

    by_arm: pd.DataFrame = field(repr=False)
    """Index arm: allocated, participants_with_event, share_with_event, events, serious_events,
    participants_with_serious, related_events, mild, moderate, severe."""

    def to_frame(self) -> pd.DataFrame:
        return self.by_arm.reset_index()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "safety_summary",
            "by_arm": self.to_frame().to_dict(orient="records"),
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        return (
            "Adverse events are counted per arm as events and as participants with at least "
            "one event, of those allocated; an event is related to treatment when its "
            f"relatedness was graded {', '.join(RELATED)}."
        )


def treatment_summary(
    sessions: pd.DataFrame,
    allocated: pd.Series,
    planned: Mapping[str, int],
    *,
    arms: Sequence[str] | None = None,
    adequate_share: float = 0.8,
) -> TreatmentSummary:
    """Adherence and session content per arm.

    ``allocated`` maps each randomized participant to their arm; ``planned`` gives
    each arm's planned number of sessions (0 for an arm without treatment sessions).
    """
    _require(sessions, SESSION_COLUMNS, "sessions")
    order = _arm_order(allocated, arms)
    missing = [arm for arm in order if arm not in planned]
    if missing:
        raise AnalysisError(
            "unknown arm",
            [Problem(f"arm {missing[0]}", "has no planned number of sessions", hint="check arms")],
        )
    counts = sessions.groupby("participant").size()
    attended = allocated.index.to_series().map(counts).fillna(0).astype(int)
    rows = []
    attendance = []
    for arm in order:
        mine = attended[allocated == arm]
        arm_sessions = sessions[sessions["arm"] == arm]
        target = int(planned[arm])
        first = arm_sessions.sort_values("day").groupby("participant")["minutes"].first()
        rows.append(
            {
                "arm": arm,
                "allocated": len(mine),
                "planned": target,
                "started": int((mine > 0).sum()),
                "completed": int((mine >= adequate_share * target).sum()) if target else 0,
                "sessions_mean": float(mine.mean()) if len(mine) else float("nan"),
                "sessions_median": float(mine.median()) if len(mine) else float("nan"),
                "sessions_q1": float(mine.quantile(0.25)) if len(mine) else float("nan"),
                "sessions_q3": float(mine.quantile(0.75)) if len(mine) else float("nan"),
                "minutes_mean": float(arm_sessions["minutes"].mean())
                if len(arm_sessions)
                else float("nan"),
                "first_minutes_mean": float(first.mean()) if len(first) else float("nan"),
            }
        )
        top = max(target, int(mine.max()) if len(mine) else 0)
        for number in range(top + 1):
            attendance.append(
                {"arm": arm, "sessions": number, "participants": int((mine == number).sum())}
            )
    return TreatmentSummary(
        adequate_share,
        pd.DataFrame(rows).set_index("arm"),
        pd.DataFrame(attendance, columns=["arm", "sessions", "participants"]),
        _content(sessions, order),
    )


def _content(sessions: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    kinds = [("technique", "techniques"), ("body_region", "body_regions")]
    if "home_care" in sessions.columns:
        kinds.append(("home_care", "home_care"))
    rows = []
    for arm in order:
        mine = sessions[sessions["arm"] == arm]
        treated = mine["participant"].nunique()
        for kind, column in kinds:
            exploded = mine[["participant", column]].explode(column).dropna(subset=[column])
            for item, group in exploded.groupby(column, sort=True):
                used = len(group)
                people = group["participant"].nunique()
                rows.append(
                    {
                        "arm": arm,
                        "kind": kind,
                        "item": str(item),
                        "sessions": used,
                        "share_of_sessions": used / len(mine),
                        "participants": people,
                        "share_of_participants": people / treated,
                    }
                )
    columns = [
        "arm",
        "kind",
        "item",
        "sessions",
        "share_of_sessions",
        "participants",
        "share_of_participants",
    ]
    return pd.DataFrame(rows, columns=columns)


def safety_summary(
    events: pd.DataFrame, allocated: pd.Series, *, arms: Sequence[str] | None = None
) -> SafetySummary:
    """Adverse events per arm of ``allocated`` (events of people not randomized are left out)."""
    _require(events, EVENT_COLUMNS, "adverse events")
    order = _arm_order(allocated, arms)
    rows = []
    for arm in order:
        mine = events[events["arm"] == arm]
        serious = mine[mine["serious"].astype(bool)]
        allocated_here = int((allocated == arm).sum())
        with_event = mine["participant"].nunique()
        rows.append(
            {
                "arm": arm,
                "allocated": allocated_here,
                "participants_with_event": int(with_event),
                "share_with_event": with_event / allocated_here if allocated_here else float("nan"),
                "events": len(mine),
                "serious_events": len(serious),
                "participants_with_serious": int(serious["participant"].nunique()),
                "related_events": int(mine["relatedness"].isin(RELATED).sum()),
                **{grade: int((mine["severity"] == grade).sum()) for grade in SEVERITIES},
            }
        )
    return SafetySummary(pd.DataFrame(rows).set_index("arm"))


def _arm_order(allocated: pd.Series, arms: Sequence[str] | None) -> list[str]:
    present = sorted(allocated.astype(str).unique())
    if arms is None:
        return present
    unknown = [arm for arm in present if arm not in arms]
    if unknown:
        raise AnalysisError(
            "unknown arm",
            [Problem(f"arm {unknown[0]}", "is allocated but not among the arms given")],
        )
    return list(arms)


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    absent = [name for name in columns if name not in frame.columns]
    if absent:
        raise AnalysisError(
            f"the {what} table lacks a column",
            [
                Problem(
                    f"column {absent[0]!r}",
                    f"is required in the {what} table",
                    hint="needed: " + ", ".join(columns),
                )
            ],
        )
