"""The visit schedule of each participant, and who is due.

Due dates follow from the randomization date and the protocol's windows: a
follow-up visit's window runs from ``day - before`` to ``day + after`` days after
randomization. A visit is

- ``complete`` when every instrument it collects is recorded (flagged
  ``out of window`` when the last was completed outside the window);
- otherwise ``upcoming`` before its window opens, ``due`` from the window's
  opening to the target day, ``overdue`` after the target day until the window
  closes, and ``missed`` once it has closed;
- ``withdrawn`` when the participant withdrew or was lost before the window closed.

:func:`visit_statuses` is pure; :class:`ScheduleOperations` reads the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumbar.operations.context import Unit
from lumbar.operations.randomization import RandomizationOperations
from lumbar.protocol import Protocol
from lumbar.store.schema import Allocation, Participant, Questionnaire, Site, Withdrawal

__all__ = [
    "FOLLOW_UP_ENDS",
    "ScheduleOperations",
    "VisitStatus",
    "follow_up_ended_on",
    "visit_statuses",
]

Status = Literal["upcoming", "due", "overdue", "missed", "complete", "withdrawn"]
FOLLOW_UP_ENDS = ("withdrew_consent", "lost_to_follow_up")
"""Withdrawal kinds that end follow-up (stopping treatment does not)."""


@dataclass(frozen=True)
class VisitStatus:
    """One participant's visit: its dates and where it stands on a given day."""

    study_id: str
    site: str
    visit: str
    target: dt.date
    opens: dt.date
    closes: dt.date
    status: Status
    completed_on: dt.date | None
    out_of_window: bool


def visit_statuses(
    protocol: Protocol,
    *,
    study_id: str,
    site: str,
    randomized_on: dt.date,
    recorded: Mapping[str, Sequence[tuple[str, dt.date]]],
    today: dt.date,
    follow_up_ended_on: dt.date | None = None,
) -> list[VisitStatus]:
    """Every follow-up visit's status on ``today``.

    ``recorded`` maps a visit id to the (instrument, completion date) pairs recorded.
    """
    statuses = []
    for visit in protocol.follow_up_visits:
        target = randomized_on + dt.timedelta(days=visit.day)
        opens = randomized_on + dt.timedelta(days=visit.earliest_day)
        closes = randomized_on + dt.timedelta(days=visit.latest_day)
        done = dict(recorded.get(visit.id, ()))
        completed_on: dt.date | None = None
        out_of_window = False
        status: Status
        if all(instrument in done for instrument in visit.instruments):
            status = "complete"
            completed_on = max(done.values())
            out_of_window = not opens <= completed_on <= closes
        elif follow_up_ended_on is not None and follow_up_ended_on <= closes:
            status = "withdrawn"
        elif today < opens:
            status = "upcoming"
        elif today <= target:
            status = "due"
        elif today <= closes:
            status = "overdue"
        else:
            status = "missed"
        statuses.append(
            VisitStatus(
                study_id, site, visit.id, target, opens, closes, status, completed_on, out_of_window
            )
        )
    return statuses


def follow_up_ended_on(session: Session, participant_id: int) -> dt.date | None:
    """When a participant's follow-up ended (withdrawal of consent or loss), if it did."""
    return session.execute(
        select(Withdrawal.effective_date).where(
            Withdrawal.participant_id == participant_id, Withdrawal.kind.in_(FOLLOW_UP_ENDS)
        )
    ).scalar_one_or_none()


class ScheduleOperations(RandomizationOperations):
    """Schedules and the list of who is due."""

    def schedule(self, reference: str, on: dt.date | None = None) -> list[VisitStatus]:
        """One participant's follow-up visits and their status on ``on`` (today by default)."""
        with self._unit("view", write=False) as unit:
            participant = self._enrolled(unit, reference)
            return self._statuses(unit, [participant], on or unit.now.date())

    def due(self, site: str | None = None, on: dt.date | None = None) -> list[VisitStatus]:
        """Visits due or overdue on ``on``, for the actor's sites (or one of them), by site."""
        with self._unit("view", write=False) as unit:
            query = select(Participant).join(
                Allocation, Allocation.participant_id == Participant.id
            )
            if site is not None:
                query = query.where(Participant.site_id == self._site(unit, site).id)
            participants = [
                participant
                for participant in unit.session.execute(query).scalars()
                if unit.actor.sees_site(participant.site_id)
            ]
            statuses = self._statuses(unit, participants, on or unit.now.date())
            pending = [status for status in statuses if status.status in ("due", "overdue")]
            return sorted(pending, key=lambda s: (s.site, s.closes, s.study_id, s.visit))

    def _statuses(
        self, unit: Unit, participants: Sequence[Participant], today: dt.date
    ) -> list[VisitStatus]:
        session = unit.session
        codes = {site.id: site.code for site in session.execute(select(Site)).scalars()}
        statuses: list[VisitStatus] = []
        for participant in participants:
            allocation = session.get(Allocation, participant.id)
            if allocation is None:
                continue
            recorded: dict[str, list[tuple[str, dt.date]]] = {}
            for questionnaire in session.execute(
                select(Questionnaire).where(Questionnaire.participant_id == participant.id)
            ).scalars():
                recorded.setdefault(questionnaire.visit, []).append(
                    (questionnaire.instrument, questionnaire.completed_on)
                )
            ended = follow_up_ended_on(session, participant.id)
            statuses.extend(
                visit_statuses(
                    self.protocol,
                    study_id=str(participant.study_id),
                    site=codes[participant.site_id],
                    randomized_on=allocation.randomized_on,
                    recorded=recorded,
                    today=today,
                    follow_up_ended_on=ended,
                )
            )
        return statuses
