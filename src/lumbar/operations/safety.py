"""Adverse events: recording, following up, and the de-identified safety table.

An adverse event's description is free text that can reveal the arm (soreness after
a massage), so listing events needs an unblinded user; recording one does not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from lumbar.errors import OperationError, Problem
from lumbar.operations.context import (
    Service,
    not_after,
    not_before_consent,
    require_text,
)
from lumbar.operations.outbox import queue_serious_adverse_event
from lumbar.operations.vocabulary import OUTCOMES, RELATEDNESS, SEVERITIES
from lumbar.store.schema import AdverseEvent, Allocation, Participant

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AdverseEventView", "SafetyService"]


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


class SafetyService(Service):
    """Recording and listing adverse events."""

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
        """Record an adverse event; a serious one is flagged in the audit trail's action and
        queued as a notification for the monitors of the participant's site."""
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
            participant = unit.enrolled(reference)
            not_after(onset_date, unit.now.date(), "onset_date")
            # Before consent, an event is medical history, not the trial's.
            not_before_consent(unit.session, participant.id, onset_date, "onset_date")
            event = AdverseEvent(
                participant_id=participant.id,
                description=description,
                onset_date=onset_date,
                severity=severity,
                serious=serious,
                relatedness=relatedness,
                outcome=outcome,
                reported_by=unit.scope.id,
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
            if serious:
                queue_serious_adverse_event(unit, event, participant)
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
            found = unit.session.execute(
                unit.scope.visible(
                    select(AdverseEvent, Participant)
                    .join(Participant, Participant.id == AdverseEvent.participant_id)
                    .where(AdverseEvent.id == event_id)
                )
            ).one_or_none()
            if found is None:
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
            event, participant = found
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

    def adverse_events(self, reference: str | None = None) -> list[AdverseEventView]:
        """Adverse events at your sites, or of one participant (their descriptions can
        reveal arms: unblinded users)."""
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("the adverse-event list")
            query = (
                select(AdverseEvent, Participant)
                .join(Participant, Participant.id == AdverseEvent.participant_id)
                .order_by(AdverseEvent.id)
            )
            if reference is not None:
                query = query.where(Participant.id == unit.enrolled(reference).id)
            views = []
            for event, participant in unit.session.execute(unit.scope.visible(query)).all():
                views.append(_event_view(event, str(participant.study_id)))
            return views

    def adverse_event_table(self) -> pd.DataFrame:
        """Every adverse event at your sites, de-identified (no description: it is free text).

        Onset counts days from randomization (None before it). Unblinded users only.
        """
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("the adverse-event table")
            rows = []
            for event, participant, allocation in unit.session.execute(
                unit.scope.visible(
                    select(AdverseEvent, Participant, Allocation)
                    .join(Participant, Participant.id == AdverseEvent.participant_id)
                    .outerjoin(Allocation, Allocation.participant_id == Participant.id)
                    .order_by(AdverseEvent.id)
                )
            ).all():
                rows.append(
                    {
                        "participant": participant.study_id,
                        "arm": None if allocation is None else self._arm(allocation),
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
            import pandas as pd  # noqa: PLC0415 - only the analysis side loads pandas

            return pd.DataFrame(rows, columns=columns)


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
