"""The CONSORT participant flow: how many people reached each box of the diagram.

CONSORT 2010 (Schulz, Altman & Moher, BMJ 2010;340:c332; item 13 and the flow
diagram of its figure 1) asks a trial to report, for each stage, how many people
it had and why any left:

- **enrolment**: assessed for eligibility; excluded, split into not meeting the
  criteria, declining to participate and other reasons; randomized;
- **allocation**, per arm: allocated; received the allocated intervention;
  did not receive it;
- **follow-up**, per arm: lost to follow-up; discontinued the intervention
  (with reasons);
- **analysis**, per arm: analysed; excluded from the analysis (with reasons).

:func:`consort_counts` reads the records of
:meth:`lumbar.operations.Trial.consort_records` (one row per person screened;
the same columns can come from elsewhere) and counts each box. The rules, so
that the boxes add up:

- a person not randomized is excluded for exactly one of: *not meeting
  criteria* (screened ineligible), *incomplete screening* (eligibility not
  decided), *declined* (eligible, no consent), *other* (consented but never
  randomized). So assessed = excluded + randomized;
- the reasons for ineligibility are counted per rule: one person may fail
  several rules, so the reason counts may add up to more than the people not
  meeting the criteria, and both are reported;
- *received the allocated intervention*: at least one session in an arm that
  plans sessions; everyone allocated in an arm that plans none (usual care).
  Unknown (None) when the records withhold sessions, as they do from blinded
  users;
- *discontinued the intervention*: stopped treatment (``discontinued_treatment``);
- at each follow-up visit, from the visit's status: *completed*, *missed*,
  *lost to follow-up* and *withdrew consent* (status ``withdrawn``: follow-up
  ended before the visit's window closed, so these are cumulative), and
  *pending* (``upcoming``, ``due`` or ``overdue``: the visit can still happen).
  These five add up to the arm's allocated number;
- *analysed* at the primary visit: the visit is complete (the primary outcome
  observed, as in a complete-case analysis); the rest are excluded from that
  analysis, by the same reasons.

Example::

    >>> records = pd.DataFrame(
    ...     {
    ...         "participant": ["S1", "P1"],
    ...         "eligibility": ["ineligible", "eligible"],
    ...         "reasons": [[{"rule": "age", "kind": "inclusion", "category": "demographic",
    ...                       "label": "Aged 20 to 64"}], []],
    ...         "consented": [False, True],
    ...         "randomized": [False, True],
    ...         "arm": [None, "usual_care"],
    ...         "arm_has_sessions": [None, False],
    ...         "sessions": [None, 0],
    ...         "withdrawal": [None, None],
    ...         "withdrawal_reason": [None, None],
    ...         "visit_week_10": [None, "complete"],
    ...     }
    ... )
    >>> flow = consort_counts(records, visits=["week_10"], primary_visit="week_10")
    >>> (flow.assessed, flow.excluded, flow.randomized, flow.arm("usual_care").analysed)
    (2, 1, 1, 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from lumbar.errors import AnalysisError, Problem

__all__ = [
    "ELIGIBILITY",
    "EXCLUSION_GROUPS",
    "POOLED",
    "STAGES",
    "VISIT_STATUSES",
    "ArmFlow",
    "ConsortFlow",
    "ReasonCount",
    "VisitFlow",
    "consort_counts",
]

ELIGIBILITY = ("eligible", "ineligible", "incomplete")
VISIT_STATUSES = ("complete", "missed", "withdrawn", "due", "overdue", "upcoming")
PENDING = ("due", "overdue", "upcoming")
"""Statuses of a visit that can still be completed."""
FOLLOW_UP_ENDS = ("lost_to_follow_up", "withdrew_consent")
"""Withdrawals that end follow-up (and give a visit the status ``withdrawn``)."""
DISCONTINUED = "discontinued_treatment"
POOLED = "all"
"""The one flow of a pooled count (``consort_counts(..., pooled=True)``): every arm together."""

EXCLUSION_GROUPS = ("not_meeting_criteria", "incomplete_screening", "declined", "other")
"""Why a screened person was not randomized: exactly one of these each."""
ANALYSIS_EXCLUSIONS = ("lost_to_follow_up", "withdrew_consent", "missed", "pending")
"""Why a randomized participant is not in the analysis at the primary visit."""

STAGES: dict[str, str] = {
    "assessed": "assessed for eligibility",
    "excluded": "excluded before randomization",
    "excluded_by": "excluded, by group (reason: one of EXCLUSION_GROUPS)",
    "exclusion_reason": "people failing an eligibility rule (reason: the rule's label)",
    "randomized": "randomized",
    "allocated": "allocated to the arm",
    "received": "received the allocated intervention (empty: unknown)",
    "not_received": "did not receive the allocated intervention (empty: unknown)",
    "discontinued": "discontinued the intervention",
    "discontinued_reason": "discontinued the intervention, by the reason recorded",
    "lost_to_follow_up": "lost to follow-up by the visit (cumulative)",
    "withdrew_consent": "withdrew consent by the visit (cumulative)",
    "completed": "completed the visit",
    "missed": "missed the visit (its window closed)",
    "pending": "the visit is upcoming, due or overdue",
    "analysed": "analysed at the primary visit",
    "excluded_from_analysis": "excluded from the analysis at the primary visit",
    "excluded_from_analysis_by": "excluded from the analysis, by reason (ANALYSIS_EXCLUSIONS)",
}
"""Every stage of :meth:`ConsortFlow.to_frame`, in words."""

REQUIRED = (
    "participant",
    "eligibility",
    "reasons",
    "consented",
    "randomized",
    "arm",
    "arm_has_sessions",
    "sessions",
    "withdrawal",
    "withdrawal_reason",
)

_NO_REASON = "no reason recorded"


@dataclass(frozen=True)
class ReasonCount:
    """How many people not randomized failed one eligibility rule."""

    rule: str
    kind: str
    """``inclusion`` (the rule was not met) or ``exclusion`` (the rule excluded them)."""
    category: str
    label: str
    count: int

    @property
    def text(self) -> str:
        return f"not met: {self.label}" if self.kind == "inclusion" else f"excluded: {self.label}"


@dataclass(frozen=True)
class VisitFlow:
    """One arm at one follow-up visit. The five counts add up to the arm's allocated number."""

    visit: str
    completed: int
    missed: int
    lost_to_follow_up: int
    withdrew_consent: int
    pending: int

    @property
    def total(self) -> int:
        return (
            self.completed + self.missed + self.lost_to_follow_up + self.withdrew_consent
        ) + self.pending


@dataclass(frozen=True)
class ArmFlow:
    """The allocation, follow-up and analysis boxes of one arm."""

    arm: str
    allocated: int
    received: int | None
    """Received the allocated intervention; None when sessions are not known (blinded)."""
    not_received: int | None
    discontinued: int
    discontinued_reasons: tuple[tuple[str, int], ...]
    follow_up: tuple[VisitFlow, ...]
    primary_visit: str
    analysed: int
    excluded_from_analysis: tuple[tuple[str, int], ...]
    """Counts by reason (:data:`ANALYSIS_EXCLUSIONS`), all of them, zeros included."""

    @property
    def excluded(self) -> int:
        """Excluded from the analysis at the primary visit."""
        return sum(count for _, count in self.excluded_from_analysis)

    def at(self, visit: str) -> VisitFlow:
        for flow in self.follow_up:
            if flow.visit == visit:
                return flow
        raise KeyError(visit)


@dataclass(frozen=True)
class ConsortFlow:
    """The numbers of a CONSORT 2010 participant-flow diagram."""

    assessed: int
    not_meeting_criteria: int
    incomplete_screening: int
    declined: int
    other: int
    """Consented but not randomized (for instance enrolled, then left before randomization)."""
    reasons: tuple[ReasonCount, ...]
    """People failing each eligibility rule, most frequent first (one person may fail several)."""
    randomized: int
    arms: tuple[ArmFlow, ...]
    visits: tuple[str, ...]
    primary_visit: str
    pooled: bool = False
    """Every arm counted together, in one flow named :data:`POOLED` (a blinded reader's)."""

    @property
    def excluded(self) -> int:
        """Screened but not randomized."""
        return self.not_meeting_criteria + self.incomplete_screening + self.declined + self.other

    @property
    def received_known(self) -> bool:
        """Whether the records showed who received their intervention (False when blinded)."""
        return all(flow.received is not None for flow in self.arms)

    def arm(self, arm: str) -> ArmFlow:
        for flow in self.arms:
            if flow.arm == arm:
                return flow
        raise KeyError(arm)

    def to_frame(self) -> pd.DataFrame:
        """Tidy: one row per box (and reason), columns stage, arm, visit, reason, count.

        ``STAGES`` says what each stage counts; ``count`` is empty where unknown.
        """
        rows: list[tuple[str, str | None, str | None, str | None, int | None]] = [
            ("assessed", None, None, None, self.assessed),
            ("excluded", None, None, None, self.excluded),
        ]
        for group in EXCLUSION_GROUPS:
            rows.append(("excluded_by", None, None, group, getattr(self, group)))
        for reason in self.reasons:
            rows.append(("exclusion_reason", None, None, reason.label, reason.count))
        rows.append(("randomized", None, None, None, self.randomized))
        for flow in self.arms:
            arm = flow.arm
            rows += [
                ("allocated", arm, None, None, flow.allocated),
                ("received", arm, None, None, flow.received),
                ("not_received", arm, None, None, flow.not_received),
                ("discontinued", arm, None, None, flow.discontinued),
            ]
            rows += [
                ("discontinued_reason", arm, None, text, count)
                for text, count in flow.discontinued_reasons
            ]
            for visit in flow.follow_up:
                for stage in ("lost_to_follow_up", "withdrew_consent", "completed", "missed"):
                    rows.append((stage, arm, visit.visit, None, getattr(visit, stage)))
                rows.append(("pending", arm, visit.visit, None, visit.pending))
            rows += [
                ("analysed", arm, flow.primary_visit, None, flow.analysed),
                ("excluded_from_analysis", arm, flow.primary_visit, None, flow.excluded),
            ]
            rows += [
                ("excluded_from_analysis_by", arm, flow.primary_visit, reason, count)
                for reason, count in flow.excluded_from_analysis
            ]
        frame = pd.DataFrame(rows, columns=["stage", "arm", "visit", "reason", "count"])
        frame["count"] = frame["count"].astype("Int64")
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "consort_counts",
            "enrolment": {
                "assessed": self.assessed,
                "excluded": self.excluded,
                "excluded_by": {group: getattr(self, group) for group in EXCLUSION_GROUPS},
                "reasons": [asdict(reason) for reason in self.reasons],
                "randomized": self.randomized,
            },
            "arms": [
                {
                    "arm": flow.arm,
                    "allocated": flow.allocated,
                    "received": flow.received,
                    "not_received": flow.not_received,
                    "discontinued": flow.discontinued,
                    "discontinued_reasons": dict(flow.discontinued_reasons),
                    "follow_up": [asdict(visit) for visit in flow.follow_up],
                    "analysis": {
                        "visit": flow.primary_visit,
                        "analysed": flow.analysed,
                        "excluded": flow.excluded,
                        "excluded_by": dict(flow.excluded_from_analysis),
                    },
                }
                for flow in self.arms
            ],
            "visits": list(self.visits),
            "primary_visit": self.primary_visit,
            "pooled": self.pooled,
            "method_text": self.method_text,
        }

    @property
    def method_text(self) -> str:
        received = (
            "Receiving the allocated intervention means attending at least one session in "
            "an arm with sessions, and allocation itself in an arm without."
            if self.received_known
            else "Receipt of the allocated intervention is not shown to blinded users."
        )
        if self.pooled:
            received += " The arms are counted together, not one by one."
        return (
            "Participant flow is reported as recommended by CONSORT 2010 (Schulz et al., "
            "BMJ 2010;340:c332). People not randomized are counted once, by the first of: "
            "ineligible, screening incomplete, declined consent, other; the reasons for "
            "ineligibility are counted per rule, and one person may have several. "
            f"{received} Losses to follow-up and withdrawals of consent are cumulative up to "
            f"each visit; the analysis at {self.primary_visit} includes the participants who "
            "completed that visit."
        )

    def __str__(self) -> str:
        lines = [
            "CONSORT participant flow",
            "Enrolment",
            f"  Assessed for eligibility (n={self.assessed})",
            f"  Excluded (n={self.excluded})",
            f"    Not meeting inclusion criteria (n={self.not_meeting_criteria})",
        ]
        lines += [f"      {reason.text} (n={reason.count})" for reason in self.reasons]
        if self.reasons:
            lines.append("      (one person may have several reasons)")
        lines += [
            f"    Screening incomplete (n={self.incomplete_screening})",
            f"    Declined to participate (n={self.declined})",
            f"    Other reasons (n={self.other})",
            f"  Randomized (n={self.randomized})",
            "Allocation",
        ]
        for flow in self.arms:
            lines += [
                f"  {flow.arm}",
                f"    Allocated (n={flow.allocated})",
                f"    Received allocated intervention (n={_shown(flow.received)})",
                f"    Did not receive allocated intervention (n={_shown(flow.not_received)})",
            ]
        lines.append("Follow-up")
        for flow in self.arms:
            lines += [f"  {flow.arm}", f"    Discontinued intervention (n={flow.discontinued})"]
            lines += [f"      {text} (n={count})" for text, count in flow.discontinued_reasons]
            for visit in flow.follow_up:
                lines.append(
                    f"    {visit.visit}: completed {visit.completed}, missed {visit.missed}, "
                    f"lost to follow-up {visit.lost_to_follow_up}, "
                    f"withdrew consent {visit.withdrew_consent}, pending {visit.pending}"
                )
        lines.append(f"Analysis ({self.primary_visit})")
        for flow in self.arms:
            reasons = ", ".join(
                f"{reason.replace('_', ' ')} {count}"
                for reason, count in flow.excluded_from_analysis
                if count
            )
            lines += [
                f"  {flow.arm}",
                f"    Analysed (n={flow.analysed})",
                f"    Excluded from analysis (n={flow.excluded})"
                + (f": {reasons}" if reasons else ""),
            ]
        return "\n".join(lines)


def consort_counts(
    records: pd.DataFrame,
    *,
    arms: Sequence[str] | None = None,
    visits: Sequence[str],
    primary_visit: str,
    pooled: bool = False,
) -> ConsortFlow:
    """Count the CONSORT flow of ``records`` (one row per person screened).

    ``records`` has the columns of :meth:`lumbar.operations.Trial.consort_records`
    (``participant``, ``eligibility``, ``reasons``, ``consented``, ``randomized``,
    ``arm``, ``arm_has_sessions``, ``sessions``, ``withdrawal``,
    ``withdrawal_reason``, and ``visit_<id>`` for each of ``visits``; optionally
    ``discontinued`` and ``discontinued_reason``, which count a stop of treatment
    even when follow-up ended later). ``visits`` are the follow-up visits in
    time order and ``primary_visit`` the one the primary analysis uses. ``arms``
    orders the arms (the sorted arms of the randomized records by default) and
    must include every arm someone was randomized to. With ``pooled``, the randomized
    participants are counted together in one flow named :data:`POOLED`, and the ``arm``
    column may be empty (as it is in the records of a blinded user).

    Raises :class:`AnalysisError` for a missing column, an unknown eligibility
    or visit status, a randomized record without an arm, a ``withdrawn`` visit
    without a withdrawal that ends follow-up, or arms and visits that do not fit.
    """
    _check(records, arms, visits, primary_visit, pooled)
    randomized_mask = _flags(records["randomized"])
    consented = _flags(records["consented"])
    eligibility = records["eligibility"].astype(str)
    waiting = ~randomized_mask
    not_meeting = waiting & (eligibility == "ineligible")
    incomplete = waiting & (eligibility == "incomplete")
    eligible = waiting & (eligibility == "eligible")
    randomized = records[randomized_mask]
    if pooled:
        flows: tuple[ArmFlow, ...] = (_arm_flow(randomized, POOLED, visits, primary_visit),)
    else:
        arm_order = (
            tuple(arms)
            if arms is not None
            else tuple(sorted(randomized["arm"].astype(str).unique()))
        )
        flows = tuple(
            _arm_flow(randomized[randomized["arm"].astype(str) == arm], arm, visits, primary_visit)
            for arm in arm_order
        )
    return ConsortFlow(
        assessed=len(records),
        not_meeting_criteria=int(not_meeting.sum()),
        incomplete_screening=int(incomplete.sum()),
        declined=int((eligible & ~consented).sum()),
        other=int((eligible & consented).sum()),
        reasons=_reason_counts(
            records.loc[waiting, "reasons"], records.loc[waiting, "participant"]
        ),
        randomized=len(randomized),
        arms=flows,
        visits=tuple(visits),
        primary_visit=primary_visit,
        pooled=pooled,
    )


# ---------------------------------------------------------------------- counting


def _arm_flow(rows: pd.DataFrame, arm: str, visits: Sequence[str], primary: str) -> ArmFlow:
    allocated = len(rows)
    received = _received(rows)
    if "discontinued" in rows.columns:
        stopped = _flags(rows["discontinued"])
        texts = rows["discontinued_reason"] if "discontinued_reason" in rows.columns else None
    else:
        stopped = rows["withdrawal"].astype("string").eq(DISCONTINUED).fillna(False).astype(bool)
        texts = rows["withdrawal_reason"]
    reasons: Counter[str] = Counter()
    if texts is not None:
        for text in texts[stopped]:
            reasons[_NO_REASON if _absent(text) else str(text).strip() or _NO_REASON] += 1
    else:
        reasons[_NO_REASON] += int(stopped.sum())
    follow_up = tuple(_visit_flow(rows, visit) for visit in visits)
    at_primary = next(flow for flow in follow_up if flow.visit == primary)
    return ArmFlow(
        arm=arm,
        allocated=allocated,
        received=received,
        not_received=None if received is None else allocated - received,
        discontinued=int(stopped.sum()),
        discontinued_reasons=_ordered(reasons),
        follow_up=follow_up,
        primary_visit=primary,
        analysed=at_primary.completed,
        excluded_from_analysis=(
            ("lost_to_follow_up", at_primary.lost_to_follow_up),
            ("withdrew_consent", at_primary.withdrew_consent),
            ("missed", at_primary.missed),
            ("pending", at_primary.pending),
        ),
    )


def _received(rows: pd.DataFrame) -> int | None:
    """Received the allocated intervention; None when any record withholds what decides it."""
    count = 0
    for has_sessions, sessions in zip(rows["arm_has_sessions"], rows["sessions"], strict=True):
        if _absent(has_sessions):
            return None
        if not bool(has_sessions):
            count += 1
        elif _absent(sessions):
            return None
        elif int(sessions) >= 1:
            count += 1
    return count


def _visit_flow(rows: pd.DataFrame, visit: str) -> VisitFlow:
    status = rows[f"visit_{visit}"].astype("string")
    withdrawal = rows["withdrawal"].astype("string")
    withdrawn = status.eq("withdrawn").fillna(False)
    return VisitFlow(
        visit=visit,
        completed=int(status.eq("complete").fillna(False).sum()),
        missed=int(status.eq("missed").fillna(False).sum()),
        lost_to_follow_up=int((withdrawn & withdrawal.eq("lost_to_follow_up").fillna(False)).sum()),
        withdrew_consent=int((withdrawn & withdrawal.eq("withdrew_consent").fillna(False)).sum()),
        pending=int(status.isin(PENDING).fillna(False).sum()),
    )


def _reason_counts(reasons: pd.Series, participants: pd.Series) -> tuple[ReasonCount, ...]:
    """People per rule (a rule listed twice for one person counts once)."""
    counts: Counter[str] = Counter()
    described: dict[str, tuple[str, str, str]] = {}
    for entries, participant in zip(reasons, participants, strict=True):
        rules = set()
        for entry in _entries(entries, participant):
            rule = str(entry["rule"])
            described.setdefault(
                rule, (str(entry["kind"]), str(entry["category"]), str(entry["label"]))
            )
            rules.add(rule)
        counts.update(rules)
    ordered = sorted(counts, key=lambda rule: (-counts[rule], described[rule][2]))
    return tuple(ReasonCount(rule, *described[rule], count=counts[rule]) for rule in ordered)


_REASON_KEYS = ("rule", "kind", "category", "label")


def _entries(entries: object, participant: object) -> list[Mapping[str, Any]]:
    """One person's reasons: a list of mappings with rule, kind, category and label."""
    if _absent(entries):
        return []
    if isinstance(entries, list | tuple | np.ndarray) and all(
        isinstance(entry, Mapping) and all(key in entry for key in _REASON_KEYS)
        for entry in entries
    ):
        return list(entries)
    raise AnalysisError(
        "the CONSORT records are not consistent",
        [
            Problem(
                "column 'reasons'",
                "must hold a list of {rule, kind, category, label} for each person",
                entries,
                f"participant {participant}; an empty list when there is no reason",
            )
        ],
    )


def _ordered(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _flags(values: pd.Series) -> pd.Series:
    return values.astype("boolean").fillna(False).astype(bool)


def _absent(value: object) -> bool:
    """None or a missing-value marker (NaN, pd.NA); never a list or other container."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _shown(count: int | None) -> str:
    return "unknown" if count is None else str(count)


# ---------------------------------------------------------------------- checks


def _check(
    records: pd.DataFrame,
    arms: Sequence[str] | None,
    visits: Sequence[str],
    primary_visit: str,
    pooled: bool,
) -> None:
    problems: list[Problem] = []
    if isinstance(visits, str) or not visits:
        problems.append(
            Problem("visits", "must list the follow-up visits in time order", visits, '["week_10"]')
        )
        raise AnalysisError("the CONSORT flow cannot be counted", problems)
    if len(set(visits)) != len(visits):
        problems.append(Problem("visits", "lists a visit twice", list(visits), "list each once"))
    if primary_visit not in visits:
        problems.append(
            Problem("primary_visit", "is not one of the visits", primary_visit, ", ".join(visits))
        )
    columns = [*REQUIRED, *(f"visit_{visit}" for visit in visits)]
    missing = [name for name in columns if name not in records.columns]
    problems += [
        Problem(
            f"column {name!r}",
            "is not in the records",
            hint="use the records of Trial.consort_records(), or give every column it has",
        )
        for name in missing
    ]
    if arms is not None and (isinstance(arms, str) or not arms):
        problems.append(Problem("arms", "must list at least one arm", arms, "or omit it"))
    if pooled and arms is not None:
        problems.append(Problem("arms", "cannot order the arms of a pooled count", arms, "omit it"))
    if problems:
        raise AnalysisError("the CONSORT flow cannot be counted", problems)
    problems += _check_values(records, arms, visits, pooled)
    if problems:
        raise AnalysisError("the CONSORT records are not consistent", problems)


def _check_values(
    records: pd.DataFrame, arms: Sequence[str] | None, visits: Sequence[str], pooled: bool
) -> list[Problem]:
    problems: list[Problem] = []

    def first(mask: pd.Series) -> str:
        return str(records.loc[mask[mask].index[0], "participant"])

    for column in ("consented", "randomized"):
        if records[column].isna().any():
            problems.append(
                Problem(
                    f"column {column!r}", "is empty for some people", first(records[column].isna())
                )
            )
    eligibility = records["eligibility"]
    unknown = ~eligibility.isin(ELIGIBILITY)
    if unknown.any():
        problems.append(
            Problem(
                "column 'eligibility'",
                "holds a value that is not " + ", ".join(ELIGIBILITY),
                str(eligibility[unknown].iloc[0]),
                f"participant {first(unknown)}",
            )
        )
    randomized = _flags(records["randomized"])
    no_arm = randomized & records["arm"].isna()
    if no_arm.any() and not pooled:
        problems.append(
            Problem("column 'arm'", "is empty for a randomized participant", first(no_arm))
        )
    present = sorted(records.loc[randomized & ~no_arm, "arm"].astype(str).unique())
    if arms is not None:
        unlisted = [arm for arm in present if arm not in arms]
        if unlisted:
            problems.append(
                Problem("arms", "leaves out arms participants were randomized to", unlisted)
            )
        if len(set(arms)) != len(arms):
            problems.append(Problem("arms", "lists an arm twice", list(arms), "list each once"))
    ends = records["withdrawal"].astype("string").isin(FOLLOW_UP_ENDS).fillna(False)
    for visit in visits:
        status = records[f"visit_{visit}"].astype("string")
        odd = randomized & ~status.isin(VISIT_STATUSES).fillna(False)
        if odd.any():
            problems.append(
                Problem(
                    f"column 'visit_{visit}'",
                    "holds a status that is not " + ", ".join(VISIT_STATUSES),
                    None if pd.isna(status[odd].iloc[0]) else str(status[odd].iloc[0]),
                    f"participant {first(odd)}",
                )
            )
        unexplained = randomized & status.eq("withdrawn").fillna(False) & ~ends
        if unexplained.any():
            problems.append(
                Problem(
                    f"column 'visit_{visit}'",
                    "is withdrawn, but the withdrawal is not one that ends follow-up "
                    "(" + ", ".join(FOLLOW_UP_ENDS) + ")",
                    first(unexplained),
                    "record the withdrawal",
                )
            )
    return problems
