"""Treatment sessions, adherence, adverse events and withdrawals."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select

from lumbar.errors import OperationError, Problem
from lumbar.operations.access import require_unblinded
from lumbar.operations.context import Unit, not_after, require_text
from lumbar.operations.schedule import ScheduleOperations
from lumbar.store.schema import (
    AdverseEvent,
    Allocation,
    Participant,
    TreatmentSession,
    Withdrawal,
)

__all__ = [
    "OUTCOMES",
    "RELATEDNESS",
    "SEVERITIES",
    "WITHDRAWAL_KINDS",
    "Adherence",
    "AdverseEventView",
    "TreatmentOperations",
]

SEVERITIES = ("mild", "moderate", "severe")
RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
"""How likely the event was caused by the treatment (a common five-point scale)."""
OUTCOMES = (
    "recovered",
    "recovering",
    "not_recovered",
    "recovered_with_sequelae",
    "fatal",
    "unknown",
)
WITHDRAWAL_KINDS = ("discontinued_treatment", "withdrew_consent", "lost_to_follow_up")
"""``discontinued_treatment`` stops sessions but not follow-up; the other two end follow-up."""

MAX_SESSION_MINUTES = 240


@dataclass(frozen=True)
class Adherence:
    study_id: str
    arm: str
    attended: int
    planned: int

    @property
    def share(self) -> float | None:
        return self.attended / self.planned if self.planned else None


@dataclass(frozen=True)
class AdverseEventView:
    id: int
    study_id: str
    description: str
    onset_date: dt.date
    severity: str
    serious: bool
    relatedness: str
    outcome: str


class TreatmentOperations(ScheduleOperations):
    """Logging sessions and safety events; withdrawals."""

    def log_session(
        self,
        reference: str,
        session_date: dt.date,
        minutes: int,
        techniques: Sequence[str],
        body_regions: Sequence[str],
        *,
        home_care: Sequence[str] = (),
        notes: str = "",
    ) -> int:
        """Log one treatment session given by the acting therapist; returns its number."""
        with self._unit("session") as unit:
            require_unblinded(unit.actor, "logging sessions")
            participant = self._enrolled(unit, reference)
            allocation = self._allocation(unit, participant)
            arm = self.protocol.arm(allocation.arm)
            problems = []
            if arm.sessions.planned == 0:
                problems.append(
                    Problem(
                        "participant",
                        "is in an arm without treatment sessions",
                        reference,
                        "check the id",
                    )
                )
            if not 1 <= minutes <= MAX_SESSION_MINUTES:
                problems.append(
                    Problem(
                        "minutes",
                        f"must be from 1 to {MAX_SESSION_MINUTES}",
                        minutes,
                        "give the session's length",
                    )
                )
            if not techniques:
                problems.append(
                    Problem("techniques", "at least one technique", hint="name the techniques used")
                )
            problems += _unknown(
                techniques, arm.techniques, "techniques", "the techniques allowed in this arm"
            )
            regions = [term.id for term in self.protocol.vocabulary.body_regions]
            problems += _unknown(body_regions, regions, "body_regions", "the regions")
            problems += _unknown(home_care, arm.home_care, "home_care", "the advice of this arm")
            today = unit.now.date()
            if not allocation.randomized_on <= session_date <= today:
                problems.append(
                    Problem(
                        "session_date",
                        f"must be from randomization ({allocation.randomized_on}) "
                        f"to today ({today})",
                        session_date.isoformat(),
                        "check the date",
                    )
                )
            if self._stopped_treatment(unit, participant):
                problems.append(
                    Problem(
                        "participant",
                        "has stopped treatment or left the trial",
                        reference,
                        "check the id",
                    )
                )
            if problems:
                raise OperationError("the session was not logged", problems)
            row = TreatmentSession(
                participant_id=participant.id,
                therapist_id=unit.actor.id,
                session_date=session_date,
                minutes=minutes,
                techniques=list(techniques),
                body_regions=list(body_regions),
                home_care=list(home_care),
                notes=notes.strip(),
                recorded_at=unit.now,
            )
            unit.session.add(row)
            unit.session.flush()
            number = unit.session.execute(
                select(func.count())
                .select_from(TreatmentSession)
                .where(TreatmentSession.participant_id == participant.id)
            ).scalar_one()
            # Techniques and home care differ by arm: the audit keeps a keyed code of the
            # session's content (verifiable with the vault key), not the content, so the
            # audit trail unblinds no one.
            content = {
                "techniques": list(techniques),
                "body_regions": list(body_regions),
                "home_care": list(home_care),
                "notes": row.notes,
            }
            unit.audit(
                "session.log",
                "treatment_session",
                row.id,
                new={
                    "participant": participant.study_id,
                    "date": session_date.isoformat(),
                    "minutes": minutes,
                    "content_code": self.vault.code(json.dumps(content, sort_keys=True)),
                },
            )
            return int(number)

    def adherence(self) -> list[Adherence]:
        """Sessions attended over sessions planned, per randomized participant at your sites.

        Planned sessions differ by arm, so only unblinded users may see this.
        """
        with self._unit("treatment_records", write=False) as unit:
            require_unblinded(unit.actor, "adherence")
            counts = dict(
                unit.session.execute(
                    select(TreatmentSession.participant_id, func.count()).group_by(
                        TreatmentSession.participant_id
                    )
                ).all()
            )
            rows = []
            for participant, allocation in unit.session.execute(
                select(Participant, Allocation)
                .join(Allocation, Allocation.participant_id == Participant.id)
                .order_by(Participant.study_id)
            ).all():
                if not unit.actor.sees_site(participant.site_id):
                    continue
                planned = self.protocol.arm(allocation.arm).sessions.planned
                rows.append(
                    Adherence(
                        str(participant.study_id),
                        allocation.arm,
                        counts.get(participant.id, 0),
                        planned,
                    )
                )
            return rows

    def sessions_table(self) -> pd.DataFrame:
        """Every session at your sites, de-identified: participant, arm, day, minutes, content.

        Days count from randomization; notes are left out (free text). Unblinded users only.
        """
        with self._unit("treatment_records", write=False) as unit:
            require_unblinded(unit.actor, "the sessions table")
            rows = []
            for session, participant, allocation in unit.session.execute(
                select(TreatmentSession, Participant, Allocation)
                .join(Participant, Participant.id == TreatmentSession.participant_id)
                .join(Allocation, Allocation.participant_id == Participant.id)
                .order_by(TreatmentSession.id)
            ).all():
                if not unit.actor.sees_site(participant.site_id):
                    continue
                rows.append(
                    {
                        "participant": participant.study_id,
                        "arm": allocation.arm,
                        "day": (session.session_date - allocation.randomized_on).days,
                        "minutes": session.minutes,
                        "techniques": list(session.techniques),
                        "body_regions": list(session.body_regions),
                        "home_care": list(session.home_care),
                    }
                )
            columns = [
                "participant",
                "arm",
                "day",
                "minutes",
                "techniques",
                "body_regions",
                "home_care",
            ]
            return pd.DataFrame(rows, columns=columns)

    def adverse_event_table(self) -> pd.DataFrame:
        """Every adverse event at your sites, de-identified (no description: it is free text).

        Onset counts days from randomization (None before it). Unblinded users only.
        """
        with self._unit("treatment_records", write=False) as unit:
            require_unblinded(unit.actor, "the adverse-event table")
            rows = []
            for event, participant in unit.session.execute(
                select(AdverseEvent, Participant)
                .join(Participant, Participant.id == AdverseEvent.participant_id)
                .order_by(AdverseEvent.id)
            ).all():
                if not unit.actor.sees_site(participant.site_id):
                    continue
                allocation = unit.session.get(Allocation, participant.id)
                rows.append(
                    {
                        "participant": participant.study_id,
                        "arm": None if allocation is None else allocation.arm,
                        "onset_day": None
                        if allocation is None
                        else (event.onset_date - allocation.randomized_on).days,
                        "severity": event.severity,
                        "serious": event.serious,
                        "relatedness": event.relatedness,
                        "outcome": event.outcome,
                    }
                )
            columns = [
                "participant",
                "arm",
                "onset_day",
                "severity",
                "serious",
                "relatedness",
                "outcome",
            ]
            return pd.DataFrame(rows, columns=columns)

    def report_adverse_event(
        self,
        reference: str,
        description: str,
        onset_date: dt.date,
        *,
        severity: str,
        serious: bool,
        relatedness: str,
        outcome: str = "unknown",
    ) -> AdverseEventView:
        """Record an adverse event; a serious one is flagged in the audit trail's action."""
        description = require_text(description, "description", "description of the event")
        problems = []
        for field, value, allowed in (
            ("severity", severity, SEVERITIES),
            ("relatedness", relatedness, RELATEDNESS),
            ("outcome", outcome, OUTCOMES),
        ):
            if value not in allowed:
                problems.append(
                    Problem(field, "is not one of the allowed values", value, ", ".join(allowed))
                )
        if problems:
            raise OperationError("the adverse event was not recorded", problems)
        with self._unit("adverse_event") as unit:
            participant = self._enrolled(unit, reference)
            not_after(onset_date, unit.now.date(), "onset_date")
            event = AdverseEvent(
                participant_id=participant.id,
                description=description,
                onset_date=onset_date,
                severity=severity,
                serious=serious,
                relatedness=relatedness,
                outcome=outcome,
                reported_by=unit.actor.id,
                recorded_at=unit.now,
            )
            unit.session.add(event)
            unit.session.flush()
            unit.audit(
                "adverse_event.serious" if serious else "adverse_event.record",
                "adverse_event",
                event.id,
                new=_event_payload(event, str(participant.study_id)),
            )
            return _event_view(event, str(participant.study_id))

    def update_adverse_event(self, event_id: int, *, outcome: str, reason: str) -> AdverseEventView:
        """Record how an adverse event turned out (the old outcome stays in the audit)."""
        reason = require_text(reason, "reason", "reason for the update")
        if outcome not in OUTCOMES:
            raise OperationError(
                "unknown outcome",
                [Problem("outcome", "is not allowed", outcome, ", ".join(OUTCOMES))],
            )
        with self._unit("adverse_event") as unit:
            event = unit.session.get(AdverseEvent, event_id)
            participant = (
                None if event is None else unit.session.get(Participant, event.participant_id)
            )
            if (
                event is None
                or participant is None
                or not unit.actor.sees_site(participant.site_id)
            ):
                raise OperationError(
                    "unknown adverse event",
                    [
                        Problem(
                            "event",
                            "is not an adverse event at your sites",
                            event_id,
                            "check the number",
                        )
                    ],
                )
            old = event.outcome
            event.outcome = outcome
            unit.audit(
                "adverse_event.update",
                "adverse_event",
                event.id,
                old={"outcome": old},
                new={"outcome": outcome},
                reason=reason,
            )
            return _event_view(event, str(participant.study_id))

    def adverse_events(self) -> list[AdverseEventView]:
        """Adverse events at your sites (their descriptions can reveal arms: unblinded users)."""
        with self._unit("treatment_records", write=False) as unit:
            require_unblinded(unit.actor, "the adverse-event list")
            views = []
            for event, participant in unit.session.execute(
                select(AdverseEvent, Participant)
                .join(Participant, Participant.id == AdverseEvent.participant_id)
                .order_by(AdverseEvent.id)
            ).all():
                if unit.actor.sees_site(participant.site_id):
                    views.append(_event_view(event, str(participant.study_id)))
            return views

    def withdraw(self, reference: str, kind: str, reason: str, effective_date: dt.date) -> None:
        """Record that a participant stopped treatment, withdrew consent, or was lost."""
        reason = require_text(reason, "reason", "reason")
        if kind not in WITHDRAWAL_KINDS:
            raise OperationError(
                "unknown kind of withdrawal",
                [Problem("kind", "is not allowed", kind, ", ".join(WITHDRAWAL_KINDS))],
            )
        with self._unit("withdraw") as unit:
            participant = self._enrolled(unit, reference)
            not_after(effective_date, unit.now.date(), "effective_date")
            earlier = (
                unit.session.execute(
                    select(Withdrawal.kind).where(Withdrawal.participant_id == participant.id)
                )
                .scalars()
                .all()
            )
            if kind in earlier or (set(earlier) & {"withdrew_consent", "lost_to_follow_up"}):
                raise OperationError(
                    "already recorded",
                    [
                        Problem(
                            "participant",
                            "already has: " + ", ".join(earlier),
                            participant.study_id,
                            "a participant leaves once",
                        )
                    ],
                )
            unit.session.add(
                Withdrawal(
                    participant_id=participant.id,
                    kind=kind,
                    reason=reason,
                    effective_date=effective_date,
                    recorded_by=unit.actor.id,
                    recorded_at=unit.now,
                )
            )
            unit.audit(
                f"participant.{kind}",
                "participant",
                str(participant.study_id),
                new={"kind": kind, "effective_date": effective_date.isoformat()},
                reason=reason,
            )

    def _stopped_treatment(self, unit: Unit, participant: Participant) -> bool:
        return (
            unit.session.execute(
                select(Withdrawal.id).where(Withdrawal.participant_id == participant.id)
            ).first()
            is not None
        )


def _unknown(values: Sequence[str], allowed: Sequence[str], field: str, what: str) -> list[Problem]:
    problems = []
    for value in values:
        if value not in allowed:
            problems.append(
                Problem(field, f"is not one of {what}", value, "choose from: " + ", ".join(allowed))
            )
    if len(set(values)) != len(values):
        problems.append(Problem(field, "lists an entry twice", list(values), "list each once"))
    return problems


def _event_payload(event: AdverseEvent, study_id: str) -> dict[str, object]:
    return {
        "participant": study_id,
        "onset_date": event.onset_date.isoformat(),
        "severity": event.severity,
        "serious": event.serious,
        "relatedness": event.relatedness,
        "outcome": event.outcome,
        "description_length": len(event.description),
    }


def _event_view(event: AdverseEvent, study_id: str) -> AdverseEventView:
    return AdverseEventView(
        event.id,
        study_id,
        event.description,
        event.onset_date,
        event.severity,
        event.serious,
        event.relatedness,
        event.outcome,
    )
