"""Treatment sessions and adherence.

Sessions differ by arm (usual care has none; each massage arm its own techniques), so
reading them needs an unblinded user; logging them needs the therapist who gave them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, insert, select

from lumbar.errors import OperationError, Problem
from lumbar.operations.context import Service, Unit, not_before_consent
from lumbar.operations.ratings import attach_given_rating, pending_rating, rating_problems
from lumbar.store.schema import (
    Allocation,
    Participant,
    SessionRating,
    Staff,
    TreatmentSession,
    Withdrawal,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Adherence", "SessionView", "TreatmentPlan", "TreatmentService"]

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
class TreatmentPlan:
    """One participant's arm and what its sessions may record, for an unblinded user."""

    study_id: str
    arm: str
    arm_label: str
    planned: int
    attended: int
    techniques: tuple[str, ...]
    body_regions: tuple[str, ...]
    home_care: tuple[str, ...]
    stopped: bool
    """Stopped treatment or left the trial: no more sessions are logged."""
    ratings: tuple[str, ...] = ()
    """The 0-10 ratings (instrument names) the protocol asks before each session."""
    ratings_required: bool = False
    """Whether a session is logged only with every rating given."""


@dataclass(frozen=True)
class SessionView:
    """One logged treatment session, as an unblinded user reads it back."""

    number: int
    """The participant's first session is 1."""
    session_date: dt.date
    minutes: int
    therapist: str
    techniques: tuple[str, ...]
    body_regions: tuple[str, ...]
    home_care: tuple[str, ...]
    notes: str
    ratings: Mapping[str, int]
    """The 0-10 ratings given before the session, by instrument; a rating left out is absent."""


class TreatmentService(Service):
    """Logging sessions; adherence and the sessions table."""

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
        ratings: Mapping[str, int] | None = None,
    ) -> int:
        """Log one treatment session given by the acting therapist; returns its number.

        ``ratings``: the 0-10 ratings the participant gave before the session, by
        instrument name, as the protocol's ``session_rating`` declares them.
        """
        with self._unit("session", per_participant=True) as unit:
            unit.scope.require_unblinded("logging sessions")
            participant = unit.enrolled(reference)
            not_before_consent(unit.session, participant.id, session_date, "session_date")
            allocation = unit.allocation(participant)
            arm = self.protocol.arm(self._arm(allocation))
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
            if arm.sessions.planned and not techniques:
                problems.append(
                    Problem(
                        "techniques",
                        "at least one technique",
                        hint=f"name the techniques used; the {arm.id} arm's are: "
                        + ", ".join(arm.techniques),
                    )
                )
            if arm.sessions.planned:
                problems += _unknown(
                    techniques,
                    arm.techniques,
                    "techniques",
                    f"the techniques of the {arm.id} arm ({participant.study_id}'s arm)",
                )
                problems += _unknown(
                    home_care, arm.home_care, "home_care", f"the advice of the {arm.id} arm"
                )
            regions = [term.id for term in self.protocol.vocabulary.body_regions]
            problems += _unknown(body_regions, regions, "body_regions", "the body regions")
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
            ratings = dict(ratings or {})
            # The participant's rating given on their phone today, when the tablet gives
            # none, is the session's (see lumbar.operations.ratings).
            pending = {} if ratings else pending_rating(unit.session, participant.id, session_date)
            rating = self.protocol.session_rating
            required = rating is not None and rating.required and not pending
            problems += rating_problems(self.protocol, ratings, required=required)
            if problems:
                raise OperationError("the session was not logged", problems)
            connection = unit.session.connection()
            notes = notes.strip()
            session_id = connection.execute(
                _INSERT_SESSION,
                {
                    "participant_id": participant.id,
                    "therapist_id": unit.scope.id,
                    "session_date": session_date,
                    "minutes": minutes,
                    "techniques": list(techniques),
                    "body_regions": list(body_regions),
                    "home_care": list(home_care),
                    "notes": notes,
                    "recorded_at": unit.now,
                },
            ).scalar_one()
            unit.rows.add(TreatmentSession.__table__, (session_id,))
            for instrument, value in ratings.items():
                rating_id = connection.execute(
                    _INSERT_RATING,
                    {"session_id": session_id, "instrument": instrument, "value": value},
                ).scalar_one()
                unit.rows.add(SessionRating.__table__, (rating_id,))
            if rating is not None:
                attached = attach_given_rating(
                    unit,
                    self.protocol,
                    participant.id,
                    session_id,
                    session_date,
                    from_tablet=bool(ratings),
                )
                ratings = ratings or attached
            number = connection.execute(_SESSIONS_OF, {"participant": participant.id}).scalar_one()
            # Techniques and home care differ by arm: the audit keeps a keyed code of the
            # session's content (verifiable with the audit key), not the content, so the
            # audit trail unblinds no one.
            content = {
                "techniques": list(techniques),
                "body_regions": list(body_regions),
                "home_care": list(home_care),
                "notes": notes,
                "ratings": ratings,
            }
            unit.audit(
                "session.log",
                "treatment_session",
                session_id,
                new={
                    "participant": participant.study_id,
                    "date": session_date.isoformat(),
                    "minutes": minutes,
                    "content_code": self.context.key("audit").code(
                        json.dumps(content, sort_keys=True)
                    ),
                },
            )
            return int(number)

    def plan(self, reference: str) -> TreatmentPlan:
        """A participant's arm and what a session of it may record (unblinded users only)."""
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("a participant's treatment plan")
            participant = unit.enrolled(reference)
            arm = self.protocol.arm(self._arm(unit.allocation(participant)))
            attended = unit.session.execute(
                select(func.count())
                .select_from(TreatmentSession)
                .where(TreatmentSession.participant_id == participant.id)
            ).scalar_one()
            return TreatmentPlan(
                str(participant.study_id),
                arm.id,
                arm.label,
                arm.sessions.planned,
                int(attended),
                tuple(arm.techniques),
                tuple(term.id for term in self.protocol.vocabulary.body_regions),
                tuple(arm.home_care),
                self._stopped_treatment(unit, participant),
                self._rated(),
                bool(self.protocol.session_rating and self.protocol.session_rating.required),
            )

    def sessions(self, reference: str) -> list[SessionView]:
        """One participant's sessions in the order they were logged, notes included
        (their content differs by arm: unblinded users only)."""
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("a participant's treatment sessions")
            participant = unit.enrolled(reference)
            rows = unit.session.execute(
                select(TreatmentSession, Staff.username)
                .join(Staff, Staff.id == TreatmentSession.therapist_id)
                .where(TreatmentSession.participant_id == participant.id)
                .order_by(TreatmentSession.id)
            ).all()
            ratings: dict[int, dict[str, int]] = {}
            for session_id, instrument, value in unit.session.execute(
                select(SessionRating.session_id, SessionRating.instrument, SessionRating.value)
                .join(TreatmentSession, TreatmentSession.id == SessionRating.session_id)
                .where(TreatmentSession.participant_id == participant.id)
            ).all():
                ratings.setdefault(session_id, {})[instrument] = value
            return [
                SessionView(
                    number,
                    row.session_date,
                    row.minutes,
                    str(therapist),
                    tuple(row.techniques),
                    tuple(row.body_regions),
                    tuple(row.home_care),
                    row.notes,
                    {
                        name: ratings[row.id][name]
                        for name in self._rated()
                        if name in ratings.get(row.id, {})
                    },
                )
                for number, (row, therapist) in enumerate(rows, start=1)
            ]

    def adherence(self) -> list[Adherence]:
        """Sessions attended over sessions planned, per randomized participant at your sites.

        Planned sessions differ by arm, so only unblinded users may see this.
        """
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("adherence")
            counts = dict(
                unit.session.execute(
                    select(TreatmentSession.participant_id, func.count()).group_by(
                        TreatmentSession.participant_id
                    )
                ).all()
            )
            rows = []
            for participant, allocation in unit.session.execute(
                unit.scope.visible(
                    select(Participant, Allocation)
                    .join(Allocation, Allocation.participant_id == Participant.id)
                    .order_by(Participant.study_id)
                )
            ).all():
                planned = self.protocol.arm(self._arm(allocation)).sessions.planned
                rows.append(
                    Adherence(
                        str(participant.study_id),
                        self._arm(allocation),
                        counts.get(participant.id, 0),
                        planned,
                    )
                )
            return rows

    def sessions_table(self) -> pd.DataFrame:
        """Every session at your sites, de-identified: participant, arm, day, minutes, content,
        and a ``rating_<instrument>`` column for each rating the protocol asks before a
        session (empty where it was not given).

        Days count from randomization; notes are left out (free text). Unblinded users only.
        """
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("the sessions table")
            rated = self._rated()
            ratings: dict[int, dict[str, int]] = {}
            for session_id, instrument, value in unit.session.execute(
                unit.scope.visible(
                    select(SessionRating.session_id, SessionRating.instrument, SessionRating.value)
                    .join(TreatmentSession, TreatmentSession.id == SessionRating.session_id)
                    .join(Participant, Participant.id == TreatmentSession.participant_id)
                )
            ).all():
                ratings.setdefault(session_id, {})[instrument] = value
            rows = []
            for session, participant, allocation in unit.session.execute(
                unit.scope.visible(
                    select(TreatmentSession, Participant, Allocation)
                    .join(Participant, Participant.id == TreatmentSession.participant_id)
                    .join(Allocation, Allocation.participant_id == Participant.id)
                    .order_by(TreatmentSession.id)
                )
            ).all():
                rows.append(
                    {
                        "participant": participant.study_id,
                        "arm": self._arm(allocation),
                        "day": (session.session_date - allocation.randomized_on).days,
                        "minutes": session.minutes,
                        "techniques": list(session.techniques),
                        "body_regions": list(session.body_regions),
                        "home_care": list(session.home_care),
                    }
                    | {f"rating_{name}": ratings.get(session.id, {}).get(name) for name in rated}
                )
            columns = [
                "participant",
                "arm",
                "day",
                "minutes",
                "techniques",
                "body_regions",
                "home_care",
                *(f"rating_{name}" for name in rated),
            ]
            import pandas as pd  # noqa: PLC0415 - only the analysis side loads pandas

            return pd.DataFrame(rows, columns=columns)

    def _rated(self) -> tuple[str, ...]:
        rating = self.protocol.session_rating
        return tuple(rating.instruments) if rating is not None else ()

    def _stopped_treatment(self, unit: Unit, participant: Participant) -> bool:
        return (
            unit.session.connection().execute(_WITHDRAWN, {"participant": participant.id}).first()
            is not None
        )


# Built once: these run on every session logged.
_INSERT_SESSION = insert(TreatmentSession).returning(TreatmentSession.id)
_INSERT_RATING = insert(SessionRating).returning(SessionRating.id)
_SESSIONS_OF = (
    select(func.count())
    .select_from(TreatmentSession)
    .where(TreatmentSession.participant_id == bindparam("participant"))
)
_WITHDRAWN = select(Withdrawal.id).where(Withdrawal.participant_id == bindparam("participant"))


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
