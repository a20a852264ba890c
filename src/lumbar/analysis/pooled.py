"""Follow-up and outcomes by visit for all participants together: no arm, nothing per arm.

What a blinded reader may see of a trial's outcomes, and what an early trial can
show before any comparison between arms is possible. :func:`pooled_summary` reads
the tidy dataset (docs/dataset.md) and never looks at its ``arm`` column, so
nothing it returns can tell the arms apart. For each visit (baseline first):

- **follow-up**: the participants randomized, and how many of their visits are
  complete, still to come (upcoming, due, overdue: the window is still open or
  not yet reached), missed (the window closed) or withdrawn (follow-up ended
  before the visit). At baseline a visit is complete or incomplete;
- **outcomes**, for each outcome: the participants *expected* (randomized, minus
  those whose visit can still happen), how many have a value (``n``), its mean,
  SD (divisor n - 1) and median, and completeness, ``n / expected``;
- **missing data**: the expected values that are missing, by reason: the visit
  was missed, follow-up ended (withdrawn), or the visit was recorded without a
  value for this outcome (too many items unanswered to score, or an incomplete
  baseline).

Example::

    >>> tidy = pd.DataFrame(
    ...     {
    ...         "participant": ["P1", "P1", "P2", "P2"],
    ...         "arm": [pd.NA] * 4,
    ...         "visit": ["baseline", "week_10", "baseline", "week_10"],
    ...         "status": ["complete", "complete", "complete", "due"],
    ...         "rdq_total": [12.0, 7.0, 9.0, None],
    ...     }
    ... )
    >>> summary = pooled_summary(
    ...     tidy, ["rdq_total"], visits=["baseline", "week_10"], baseline_visit="baseline"
    ... )
    >>> row = summary.at("rdq_total", "week_10")
    >>> (row.participants, row.expected, row.n, row.mean, summary.visit("week_10").pending)
    (2, 1, 1, 7.0, 1)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from lumbar.errors import AnalysisError, Problem

__all__ = ["OutcomeAtVisit", "PooledSummary", "VisitFollowUp", "pooled_summary"]

PENDING = ("upcoming", "due", "overdue")
"""Statuses of a follow-up visit that can still happen."""


@dataclass(frozen=True)
class VisitFollowUp:
    """Where every randomized participant stands at one visit."""

    visit: str
    participants: int
    complete: int
    upcoming: int
    due: int
    overdue: int
    missed: int
    withdrawn: int
    incomplete: int
    """Baseline only: recorded in part (a follow-up visit is complete or not recorded)."""

    @property
    def pending(self) -> int:
        """Visits that can still happen: upcoming, due or overdue."""
        return self.upcoming + self.due + self.overdue


@dataclass(frozen=True)
class OutcomeAtVisit:
    """One outcome at one visit, all participants together."""

    outcome: str
    visit: str
    participants: int
    expected: int
    """Participants whose visit can no longer happen later (randomized minus pending)."""
    n: int
    mean: float
    sd: float
    median: float
    missed: int
    withdrawn: int
    not_scored: int
    """The visit was recorded (or, at baseline, begun) without a value of this outcome."""

    @property
    def missing(self) -> int:
        return self.expected - self.n

    @property
    def completeness(self) -> float:
        """``n / expected``; NaN when no value is expected yet."""
        return self.n / self.expected if self.expected else math.nan

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing, "completeness": self.completeness}


@dataclass(frozen=True)
class PooledSummary:
    """Follow-up and outcomes at every visit, all participants together."""

    visits: tuple[str, ...]
    baseline_visit: str
    outcomes: tuple[str, ...]
    follow_up: tuple[VisitFollowUp, ...]
    rows: tuple[OutcomeAtVisit, ...]
    data_hash: str
    """SHA-256 of the data summarised (participant, visit, status and outcomes, as CSV)."""

    def visit(self, visit: str) -> VisitFollowUp:
        for flow in self.follow_up:
            if flow.visit == visit:
                return flow
        raise KeyError(visit)

    def at(self, outcome: str, visit: str) -> OutcomeAtVisit:
        for row in self.rows:
            if row.outcome == outcome and row.visit == visit:
                return row
        raise KeyError((outcome, visit))

    @property
    def follow_up_observed(self) -> bool:
        """Whether any outcome has a value at any visit after baseline."""
        return any(row.n > 0 for row in self.rows if row.visit != self.baseline_visit)

    def follow_up_frame(self) -> pd.DataFrame:
        """One row per visit: participants, complete, upcoming, due, overdue, missed,
        withdrawn, incomplete and pending."""
        return pd.DataFrame(
            [{**asdict(flow), "pending": flow.pending} for flow in self.follow_up],
            columns=[
                "visit",
                "participants",
                "complete",
                "upcoming",
                "due",
                "overdue",
                "missed",
                "withdrawn",
                "incomplete",
                "pending",
            ],
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per outcome and visit: counts, mean, SD, median, missing and completeness."""
        return pd.DataFrame([row.row() for row in self.rows])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "pooled_summary",
            "visits": list(self.visits),
            "baseline_visit": self.baseline_visit,
            "outcomes": list(self.outcomes),
            "data_hash": self.data_hash,
            "follow_up": self.follow_up_frame().to_dict(orient="records"),
            "rows": [row.row() for row in self.rows],
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        return (
            "Outcomes are summarised at each visit for all randomized participants together, "
            "without regard to arm: the number with a value, mean (SD) and median. A value is "
            "expected once the visit's window has closed (or the visit is complete); "
            "completeness is the share of expected values recorded, and missing values are "
            "counted by reason (visit missed, follow-up ended, visit recorded without a value)."
        )

    def __str__(self) -> str:
        lines = ["Outcomes by visit, all participants"]
        for row in self.rows:
            lines.append(
                f"  {row.outcome} at {row.visit}: n={row.n} of {row.expected} expected "
                f"(pending {row.participants - row.expected}), mean {row.mean:.2f} "
                f"(SD {row.sd:.2f})"
            )
        return "\n".join(lines)


def pooled_summary(
    tidy: pd.DataFrame,
    outcomes: Sequence[str],
    *,
    visits: Sequence[str],
    baseline_visit: str,
) -> PooledSummary:
    """Summarise ``outcomes`` (score columns of the tidy dataset) at each of ``visits``
    (baseline first), for all participants together; see the module docstring.

    Raises :class:`AnalysisError` for a column the tidy dataset lacks or a visit listed
    twice; a visit nobody has reached yet has zero counts.
    """
    problems = [
        Problem(f"column {name!r}", "is not in the data", hint="pass the tidy dataset")
        for name in ("participant", "visit", "status", *outcomes)
        if name not in tidy.columns
    ]
    if len(set(visits)) != len(visits):
        problems.append(Problem("visits", "lists a visit twice", list(visits), "list each once"))
    if baseline_visit not in visits:
        problems.append(Problem("baseline_visit", "is not one of the visits", baseline_visit))
    if problems:
        raise AnalysisError("the outcomes cannot be summarised", problems)
    follow_up = []
    rows = []
    for visit in visits:
        at_visit = tidy[tidy["visit"].astype(str) == visit]
        status = at_visit["status"].astype("string")
        counts = {name: int(status.eq(name).fillna(False).sum()) for name in _STATUS_FIELDS}
        flow = VisitFollowUp(visit=visit, participants=len(at_visit), **counts)
        follow_up.append(flow)
        expected_mask = ~status.isin(PENDING).fillna(False)
        for outcome in outcomes:
            values = pd.to_numeric(at_visit[outcome], errors="coerce").astype("Float64")
            present = values.notna() & expected_mask
            observed = values[present].to_numpy(dtype=float)
            absent = expected_mask & ~values.notna()
            rows.append(
                OutcomeAtVisit(
                    outcome=outcome,
                    visit=visit,
                    participants=len(at_visit),
                    expected=int(expected_mask.sum()),
                    n=len(observed),
                    mean=float(observed.mean()) if len(observed) else math.nan,
                    sd=float(observed.std(ddof=1)) if len(observed) > 1 else math.nan,
                    median=float(np.median(observed)) if len(observed) else math.nan,
                    missed=int((absent & status.eq("missed").fillna(False)).sum()),
                    withdrawn=int((absent & status.eq("withdrawn").fillna(False)).sum()),
                    not_scored=int(
                        (absent & status.isin(("complete", "incomplete")).fillna(False)).sum()
                    ),
                )
            )
    return PooledSummary(
        visits=tuple(visits),
        baseline_visit=baseline_visit,
        outcomes=tuple(outcomes),
        follow_up=tuple(follow_up),
        rows=tuple(rows),
        data_hash=_hash(tidy[["participant", "visit", "status", *outcomes]]),
    )


def _hash(frame: pd.DataFrame) -> str:
    text = frame.to_csv(index=False, float_format="%.17g", lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_STATUS_FIELDS = ("complete", "upcoming", "due", "overdue", "missed", "withdrawn", "incomplete")
