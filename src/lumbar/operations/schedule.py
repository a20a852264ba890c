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

:func:`visit_statuses` is pure; :class:`ScheduleService` reads the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from lumbar.operations.context import Service, Unit
from lumbar.protocol import Protocol, Visit
from lumbar.store.schema import Allocation, Participant, Questionnaire, Withdrawal

__all__ = [
    "FOLLOW_UP_ENDS",
    "Progress",
    "ScheduleService",
    "VisitStatus",
    "follow_up_ended_on",
    "participant_statuses",
    "recorded_questionnaires",
    "start_of_day",
    "visit_statuses",
    "visit_window",
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


@dataclass(frozen=True)
class Progress:
    """Recruitment and follow-up at the sites a user sees (counts only, no arm)."""

    on: dt.date
    planned: int | None
    """The protocol's planned number of participants randomized (all sites)."""
    randomized: tuple[tuple[str, str, str, int], ...]
    """(month YYYY-MM, site, stratum, participants randomized), in order."""
    visits: tuple[tuple[str, dict[str, int]], ...]
    """Each follow-up visit and its participants by status (complete, missed, due ...)."""

    def by_month(self) -> list[tuple[str, int, int]]:
        """(month, randomized that month, randomized by its end), in order."""
        months: dict[str, int] = {}
        for month, _, _, count in self.randomized:
            months[month] = months.get(month, 0) + count
        total, out = 0, []
        for month in sorted(months):
            total += months[month]
            out.append((month, months[month], total))
        return out

    def by(self, part: Literal["site", "stratum"]) -> dict[str, int]:
        """Participants randomized by site or by stratum."""
        index = 1 if part == "site" else 2
        counts: dict[str, int] = {}
        for row in self.randomized:
            counts[str(row[index])] = counts.get(str(row[index]), 0) + int(row[3])
        return dict(sorted(counts.items()))

    @property
    def total(self) -> int:
        return sum(row[3] for row in self.randomized)


def start_of_day(day: dt.date) -> dt.datetime:
    """The first moment of ``day`` in UTC: participants' links open and expire on UTC days."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def visit_window(visit: Visit, randomized_on: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day (both included) of a follow-up visit's window."""
    return (
        randomized_on + dt.timedelta(days=visit.earliest_day),
        randomized_on + dt.timedelta(days=visit.latest_day),
    )


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
        opens, closes = visit_window(visit, randomized_on)
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


def recorded_questionnaires(
    session: Session, participant_ids: Sequence[int] | None = None
) -> dict[int, dict[str, list[tuple[str, dt.date]]]]:
    """Participant id → visit → the (instrument, completion date) pairs recorded (one query);
    every participant's when ``participant_ids`` is None."""
    query = select(
        Questionnaire.participant_id,
        Questionnaire.visit,
        Questionnaire.instrument,
        Questionnaire.completed_on,
    )
    if participant_ids is not None:
        query = query.where(Questionnaire.participant_id.in_(participant_ids))
    recorded: dict[int, dict[str, list[tuple[str, dt.date]]]] = {}
    for participant_id, visit, instrument, completed_on in session.execute(query).all():
        recorded.setdefault(participant_id, {}).setdefault(visit, []).append(
            (instrument, completed_on)
        )
    return recorded


def follow_up_ended_on(session: Session, participant_id: int) -> dt.date | None:
    """When a participant's follow-up ended (withdrawal of consent or loss), if it did."""
    return session.execute(follow_up_end(participant_id)).scalar_one_or_none()


def follow_up_end(participant_id: Any) -> Select[dt.date]:
    """The statement of :func:`follow_up_ended_on` for ``participant_id`` (a value, or a
    column to use it as a correlated subquery)."""
    return select(Withdrawal.effective_date).where(
        Withdrawal.participant_id == participant_id, Withdrawal.kind.in_(FOLLOW_UP_ENDS)
    )


class ScheduleService(Service):
    """Schedules and the list of who is due."""

    def schedule(self, reference: str, on: dt.date | None = None) -> list[VisitStatus]:
        """One participant's follow-up visits and their status on ``on`` (today by default)."""
        with self._unit("view", write=False) as unit:
            participant = unit.enrolled(reference)
            return self._statuses(unit, [participant.id], on or unit.now.date())

    def progress(self, on: dt.date | None = None) -> Progress:
        """How the trial stands at your sites on ``on``: randomizations by month, site and
        stratum, and each visit's statuses (complete, missed, due ...). No arm: counts only."""
        today = on or self.context.now().date()
        with self._unit("view", write=False) as unit:
            codes = unit.site_codes()
            rows = unit.session.execute(
                unit.scope.visible(
                    select(
                        Participant.id,
                        Participant.site_id,
                        Allocation.stratum,
                        Allocation.randomized_on,
                    ).join(Allocation, Allocation.participant_id == Participant.id)
                )
            ).all()
            randomized: dict[tuple[str, str, str], int] = {}
            for _, site_id, stratum, randomized_on in rows:
                key = (randomized_on.strftime("%Y-%m"), codes[site_id], str(stratum))
                randomized[key] = randomized.get(key, 0) + 1
            visits: dict[str, dict[str, int]] = {visit.id: {} for visit in self.protocol.visits[1:]}
            for status in self._statuses(unit, [row[0] for row in rows], today):
                counts = visits.setdefault(status.visit, {})
                counts[status.status] = counts.get(status.status, 0) + 1
            return Progress(
                today,
                self.protocol.trial.planned_participants,
                tuple(
                    (month, site, stratum, count)
                    for (month, site, stratum), count in sorted(randomized.items())
                ),
                tuple((visit, counts) for visit, counts in visits.items()),
            )

    def due(
        self, site: str | None = None, on: dt.date | None = None, *, missed: bool = False
    ) -> list[VisitStatus]:
        """Visits due or overdue on ``on`` at your sites (or one of them), by site.

        With ``missed``, visits whose window closed without them are listed too.
        """
        wanted = ("due", "overdue", "missed") if missed else ("due", "overdue")
        with self._unit("view", write=False) as unit:
            query = select(Participant.id).join(
                Allocation, Allocation.participant_id == Participant.id
            )
            if site is not None:
                query = query.where(Participant.site_id == unit.site(site).id)
            ids = list(unit.session.execute(unit.scope.visible(query)).scalars())
            statuses = self._statuses(unit, ids, on or unit.now.date())
            pending = [status for status in statuses if status.status in wanted]
            return sorted(pending, key=lambda s: (s.site, s.closes, s.study_id, s.visit))

    def _statuses(
        self, unit: Unit, participant_ids: Sequence[int], today: dt.date
    ) -> list[VisitStatus]:
        return participant_statuses(unit, self.protocol, participant_ids, today)


def participant_statuses(
    unit: Unit, protocol: Protocol, participant_ids: Sequence[int], today: dt.date
) -> list[VisitStatus]:
    """The visit statuses of these participants (already checked visible): three queries,
    none when there is no one."""
    if not participant_ids:
        return []
    session = unit.session
    codes = unit.site_codes()
    recorded = recorded_questionnaires(session, participant_ids)
    ended = dict(
        session.execute(
            select(Withdrawal.participant_id, Withdrawal.effective_date).where(
                Withdrawal.participant_id.in_(participant_ids),
                Withdrawal.kind.in_(FOLLOW_UP_ENDS),
            )
        ).all()
    )
    statuses: list[VisitStatus] = []
    for participant_id, study_id, site_id, randomized_on in session.execute(
        select(Participant.id, Participant.study_id, Participant.site_id, Allocation.randomized_on)
        .join(Allocation, Allocation.participant_id == Participant.id)
        .where(Participant.id.in_(participant_ids))
        .order_by(Participant.study_id)
    ).all():
        statuses.extend(
            visit_statuses(
                protocol,
                study_id=str(study_id),
                site=codes[site_id],
                randomized_on=randomized_on,
                recorded=recorded.get(participant_id, {}),
                today=today,
                follow_up_ended_on=ended.get(participant_id),
            )
        )
    return statuses
