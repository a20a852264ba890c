"""A participant's rating before each treatment session, given on their own phone.

::

    link = trial.issue_rating_link("SEA-0001")           # staff who log sessions, unblinded
    principal = authenticate_rating_link(context, link.token)        # the phone
    form = SessionRatingForm(context, principal)
    form.today()                         # today's rating so far, and whether the session is in
    form.give({"bothersomeness": 6, "pain_intensity": 5})
    trial.log_session("SEA-0001", today, 60, [...], [...])   # the pending rating is attached
    trial.given_ratings("SEA-0001")      # pending, attached and superseded, for staff

The protocol's ``session_rating`` declares the 0-10 ratings asked before each session.
The therapist may enter them on the tablet when logging the session
(:meth:`~lumbar.operations.treatment.TreatmentService.log_session`); this module lets the
participant give them on their own phone beforehand, through a link like their survey
links (the same table, ``survey_token`` of kind ``session_rating``, the same token rules:
32 random bytes, prefix ``lmr_``, only the SHA-256 digest kept, audited issue and
revocation, issuing again revokes the earlier link).

The rules, and why:

- **Who issues it**: staff who log sessions (permission ``session``), unblinded. The link
  exists only for a participant with treatment sessions, so whether one can be issued
  tells the arm: a blinded user is refused for *every* participant, with the same words
  (:meth:`~lumbar.operations.scope.Scope.require_unblinded`), before the participant is
  even looked up, so neither the refusal nor its wording depends on the arm. An unblinded
  user issuing for a participant of an arm without sessions (usual care) is told so.
- **How long it opens**: from randomization to the end of the participant's planned
  course of sessions, ``planned * interval_days`` days after randomization (ASSUMPTION:
  the protocol declares no other treatment window; a session later than that is rated on
  the tablet). It closes early when the participant stops treatment or leaves the trial.
- **One rating a participant a day** (UTC days, as survey windows): stored ``pending``
  in ``given_rating``. Giving it again the same day replaces the values (audited, old and
  new keyed codes) while it is pending; once the day's session is logged it is refused:
  the rating was before that session and stays as it was.
- **When the session is logged** (:func:`attach_given_rating`, in the same unit of
  work as the session): the day's pending rating is copied into the session's
  ``session_rating`` rows and marked ``attached``; but when the therapist entered
  ratings on the tablet, the tablet's are the session's (given in the therapist's
  presence, right before it) and the phone's is kept, linked to the session, marked
  ``superseded``. A day without a logged session leaves the rating ``pending``, which
  staff see as such.
- **Who sees them**: the same users as the sessions themselves (``treatment_records``,
  unblinded): a participant with ratings is in an arm with sessions.

Audit records of ratings carry a keyed code of the values (as ``session.log`` does), not
the values, and name ``participant:<study id>`` by ``session-rating link <id>``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from lumbar.errors import OperationError, Problem
from lumbar.operations.authentication import (
    RATING_TOKEN_PREFIX,
    RatingPrincipal,
    SurveyLinkRefusedError,
    rating_link_in_force,
)
from lumbar.operations.context import Context, Service, Transaction, Unit
from lumbar.operations.links import (
    add_link,
    link_status,
    live_links,
    note_opened,
    participant_links,
    revoke_links,
)
from lumbar.operations.schedule import start_of_day
from lumbar.protocol import RATING_MAXIMUM, RATING_MINIMUM, Protocol
from lumbar.store.schema import (
    GivenRating,
    Participant,
    SessionRating,
    SurveyToken,
    TreatmentSession,
    Withdrawal,
)

__all__ = [
    "GIVEN_STATUSES",
    "RATING_LINK",
    "GivenRatingView",
    "NewRatingLink",
    "RatingLink",
    "RatingToday",
    "SessionRatingForm",
    "SessionRatingLinkService",
    "attach_given_rating",
    "pending_rating",
    "rating_problems",
]

RATING_LINK: Final = "session_rating"
"""``survey_token.kind`` (and ``visit``) of a session-rating link."""
GIVEN_STATUSES = ("pending", "attached", "superseded")
_ISSUING = "a session-rating link (only participants with sessions get one)"
"""What a blinded user is refused, in the same words whoever the participant is."""


@dataclass(frozen=True)
class NewRatingLink:
    """A session-rating link's token, shown this once (to be given to the participant)."""

    id: int
    study_id: str
    token: str
    opens_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class RatingLink:
    """A session-rating link as staff see it: its prefix and where it stands, never the token."""

    id: int
    study_id: str
    prefix: str
    status: str
    """``revoked``, ``expired``, ``not open yet``, ``opened`` or ``sent``."""
    opens_at: dt.datetime
    expires_at: dt.datetime
    opened_at: dt.datetime | None
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class GivenRatingView:
    """One day's rating a participant gave on their phone, as staff see it."""

    rated_on: dt.date
    ratings: Mapping[str, int]
    given_at: dt.datetime
    status: str
    """``pending`` (no session logged for that day yet), ``attached`` (the session's
    ratings) or ``superseded`` (the session's ratings came from the tablet)."""
    session: int | None
    """The number of the session it belongs to (the participant's first is 1)."""


@dataclass(frozen=True)
class RatingToday:
    """What the participant's link shows today."""

    study_id: str
    day: dt.date
    instruments: tuple[str, ...]
    given: Mapping[str, int] | None
    """Today's rating so far, if given."""
    session_logged: bool
    """Today's session is logged already: the rating can no longer change."""
    expires_at: dt.datetime


class SessionRatingLinkService(Service):
    """Issuing and revoking session-rating links, and the ratings given through them."""

    def issue_rating_link(self, reference: str) -> NewRatingLink:
        """A link for a participant with treatment sessions to rate before each one on their
        phone, from now to the end of their planned course (see the module's rules); issuing
        again revokes the earlier link."""
        with self._unit("session") as unit:
            # Before the participant is looked up: a blinded user is refused alike for
            # every participant, so the refusal says nothing of anyone's arm.
            unit.scope.require_unblinded(_ISSUING)
            rating = self.protocol.session_rating
            if rating is None:
                raise OperationError(
                    "no ratings before sessions",
                    [
                        Problem(
                            "session_rating",
                            "the protocol declares no rating before sessions",
                            hint="add a session_rating section to the protocol",
                        )
                    ],
                )
            participant = unit.enrolled(reference)
            allocation = unit.allocation(participant)
            arm = self.protocol.arm(self._arm(allocation))
            sessions = arm.sessions
            if sessions.planned == 0 or sessions.interval_days is None:
                raise OperationError(
                    "no sessions to rate",
                    [
                        Problem(
                            "participant",
                            f"is in the {arm.id} arm, which has no treatment sessions: "
                            "only participants with sessions rate before them",
                            reference,
                        )
                    ],
                )
            if _stopped(unit.session, participant.id):
                raise OperationError(
                    "treatment has stopped",
                    [
                        Problem(
                            "participant",
                            "has stopped treatment or left the trial: no more sessions",
                            reference,
                        )
                    ],
                )
            last_day = allocation.randomized_on + dt.timedelta(
                days=sessions.planned * sessions.interval_days
            )
            opens_at = start_of_day(allocation.randomized_on)
            expires_at = start_of_day(last_day + dt.timedelta(days=1))
            if expires_at <= unit.now:
                raise OperationError(
                    "the treatment period is over",
                    [
                        Problem(
                            "participant",
                            f"the planned course of {sessions.planned} sessions ended on "
                            f"{last_day.isoformat()}: no link opens now",
                            reference,
                            "record late ratings on the tablet when logging the session",
                        )
                    ],
                )
            study_id = str(participant.study_id)
            _revoke_live(unit, participant.id, study_id, "reissued")
            row, token = add_link(
                unit,
                SurveyToken,
                RATING_TOKEN_PREFIX,
                "rating_link.issue",
                {"study_id": study_id},
                participant_id=participant.id,
                kind=RATING_LINK,
                visit=RATING_LINK,
                opens_at=opens_at,
                expires_at=expires_at,
            )
            return NewRatingLink(row.id, study_id, token, opens_at, expires_at)

    def revoke_rating_link(self, reference: str) -> int:
        """Revoke the participant's live session-rating link; returns how many were revoked."""
        with self._unit("session") as unit:
            unit.scope.require_unblinded(_ISSUING)
            participant = unit.enrolled(reference)
            return _revoke_live(
                unit,
                participant.id,
                str(participant.study_id),
                "revoked",
                refusal=Problem(
                    "participant",
                    "has no session-rating link in force",
                    reference,
                    "issue one first",
                ),
            )

    def rating_links(self, reference: str) -> list[RatingLink]:
        """A participant's session-rating links, oldest first, with where each stands."""
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("a participant's session-rating links")
            participant = unit.enrolled(reference)
            rows = participant_links(
                unit, SurveyToken, participant.id, SurveyToken.kind == RATING_LINK
            )
            return [
                RatingLink(
                    row.id,
                    str(participant.study_id),
                    row.prefix,
                    link_status(row, unit.now),
                    row.opens_at,
                    row.expires_at,
                    row.opened_at,
                    row.revoked_at,
                )
                for row in rows
            ]

    def given_ratings(self, reference: str) -> list[GivenRatingView]:
        """The ratings a participant gave on their phone, by day: pending, attached to the
        day's session, or superseded by the tablet's (the same users as see sessions)."""
        with self._unit("treatment_records", write=False) as unit:
            unit.scope.require_unblinded("a participant's ratings before sessions")
            participant = unit.enrolled(reference)
            numbers = {
                session_id: number
                for number, session_id in enumerate(
                    unit.session.execute(
                        select(TreatmentSession.id)
                        .where(TreatmentSession.participant_id == participant.id)
                        .order_by(TreatmentSession.id)
                    ).scalars(),
                    start=1,
                )
            }
            rows = unit.session.execute(
                select(GivenRating)
                .where(GivenRating.participant_id == participant.id)
                .order_by(GivenRating.rated_on)
            ).scalars()
            return [
                GivenRatingView(
                    row.rated_on,
                    {name: int(value) for name, value in row.ratings.items()},
                    row.given_at,
                    row.status,
                    numbers.get(row.session_id) if row.session_id is not None else None,
                )
                for row in rows
            ]


class SessionRatingForm:
    """A participant rating before today's session through their link: their own, today's."""

    def __init__(self, context: Context, principal: RatingPrincipal):
        self.context = context
        self.principal = principal

    @property
    def instruments(self) -> tuple[str, ...]:
        rating = self.context.protocol.session_rating
        return tuple(rating.instruments) if rating is not None else ()

    def today(self) -> RatingToday:
        """Today's rating so far (if given) and whether today's session is logged."""
        with self._open(write=False) as (work, token, participant):
            return self._today(work, token, participant)

    def open(self) -> RatingToday:
        """:meth:`today`, noting (once, audited) that the participant opened the link."""
        with self._open(write=True) as (work, token, participant):
            note_opened(work, token, "rating_link.open", {"study_id": participant.study_id})
            return self._today(work, token, participant)

    def give(self, ratings: Mapping[str, Any]) -> RatingToday:
        """Store today's rating, pending until today's session is logged; again the same
        day replaces it, until the session is logged (then refused)."""
        declared = self.instruments
        rating = self.context.protocol.session_rating
        problems = rating_problems(
            self.context.protocol, ratings, required=rating is not None and rating.required
        )
        if not ratings and not problems:
            problems.append(
                Problem(
                    "ratings",
                    "at least one rating",
                    hint="choose a number from 0 to 10 for: " + ", ".join(declared),
                )
            )
        if problems:
            raise OperationError("the rating was not recorded", problems)
        values = {name: int(ratings[name]) for name in declared if name in ratings}
        with self._open(write=True) as (work, token, participant):
            day = work.now.date()
            if _session_on(work.session, participant.id, day):
                raise OperationError(
                    "today's session is logged",
                    [
                        Problem(
                            "ratings",
                            "today's session is logged already: the rating given before it "
                            "stays as it was",
                            hint="rate again before your next session",
                        )
                    ],
                )
            row = _given_on(work.session, participant.id, day)
            code = self.context.key("audit").code
            if row is None:
                row = GivenRating(
                    participant_id=participant.id,
                    rated_on=day,
                    ratings=values,
                    given_at=work.now,
                    token_id=token.id,
                    status="pending",
                )
                work.session.add(row)
                work.session.flush()
                work.audit(
                    "session_rating.give",
                    "given_rating",
                    row.id,
                    new={
                        "study_id": participant.study_id,
                        "day": day.isoformat(),
                        "content_code": code(json.dumps(values, sort_keys=True)),
                    },
                )
            else:
                old = dict(row.ratings)
                row.ratings = values  # a new value, so the JSON column is written
                row.given_at = work.now
                row.token_id = token.id
                work.audit(
                    "session_rating.replace",
                    "given_rating",
                    row.id,
                    old={"content_code": code(json.dumps(old, sort_keys=True))},
                    new={
                        "study_id": participant.study_id,
                        "day": day.isoformat(),
                        "content_code": code(json.dumps(values, sort_keys=True)),
                    },
                )
            return self._today(work, token, participant)

    def _today(
        self, work: Transaction, token: SurveyToken, participant: Participant
    ) -> RatingToday:
        day = work.now.date()
        row = _given_on(work.session, participant.id, day)
        return RatingToday(
            str(participant.study_id),
            day,
            self.instruments,
            None if row is None else {name: int(value) for name, value in row.ratings.items()},
            _session_on(work.session, participant.id, day),
            token.expires_at,
        )

    @contextmanager
    def _open(self, *, write: bool) -> Iterator[tuple[Transaction, SurveyToken, Participant]]:
        """A transaction on the link's own participant, while the link opens."""
        principal = self.principal
        with self.context.transaction(principal.actor, principal.origin, write=write) as work:
            token = rating_link_in_force(work.session, principal, work.now)
            participant = work.session.get(Participant, token.participant_id)
            assert participant is not None  # a foreign key
            if _stopped(work.session, participant.id) or not self.instruments:
                raise SurveyLinkRefusedError(
                    "closed",
                    "opens nothing now: treatment has ended",
                    "contact the study team",
                    summary="the session-rating link is closed",
                    link=RATING_LINK,
                )
            yield work, token, participant


def rating_problems(
    protocol: Protocol, ratings: Mapping[str, Any], *, required: bool
) -> list[Problem]:
    """What is wrong with ratings given before a session, against the protocol's
    ``session_rating``: an instrument it does not declare, a value not a whole number from
    0 to 10, and (``required``) a declared rating left out."""
    declared = tuple(protocol.session_rating.instruments) if protocol.session_rating else ()
    problems = []
    for instrument, value in ratings.items():
        field = f"rating_{instrument}"
        if instrument not in declared:
            problems.append(
                Problem(
                    field,
                    "is not a rating the protocol asks before a session",
                    instrument,
                    "the protocol's ratings are: " + (", ".join(declared) or "none"),
                )
            )
        elif (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not RATING_MINIMUM <= value <= RATING_MAXIMUM
        ):
            problems.append(
                Problem(
                    field,
                    f"must be a whole number from {RATING_MINIMUM} to {RATING_MAXIMUM}",
                    value,
                    f"give the participant's {instrument} rating before the session",
                )
            )
    if required:
        for instrument in declared:
            if instrument not in ratings:
                problems.append(
                    Problem(
                        f"rating_{instrument}",
                        "is required before a session is logged (the protocol's "
                        "session_rating.required)",
                        hint=f"ask the participant's {instrument} rating (0-10)",
                    )
                )
    return problems


def attach_given_rating(
    unit: Unit,
    protocol: Protocol,
    participant_id: int,
    session_id: int,
    session_date: dt.date,
    *,
    from_tablet: bool,
) -> dict[str, int]:
    """Settle the participant's pending rating of ``session_date`` as its session is logged,
    in the session's unit of work: ``attached`` (copied into the session's ratings, which
    are returned) unless the tablet gave ratings (``from_tablet``), then ``superseded``
    (nothing is returned). No pending rating: nothing happens."""
    row = _given_on(unit.session, participant_id, session_date)
    if row is None or row.status != "pending":
        return {}
    row.session_id = session_id
    declared = protocol.session_rating.instruments if protocol.session_rating else ()
    if from_tablet:
        row.status = "superseded"
        unit.audit(
            "session_rating.supersede",
            "given_rating",
            row.id,
            new={"session": session_id, "by": "the tablet's ratings"},
        )
        return {}
    row.status = "attached"
    attached = {name: int(value) for name, value in row.ratings.items() if name in declared}
    for instrument, value in attached.items():
        unit.session.add(SessionRating(session_id=session_id, instrument=instrument, value=value))
    unit.audit("session_rating.attach", "given_rating", row.id, new={"session": session_id})
    return attached


def pending_rating(session: Session, participant_id: int, day: dt.date) -> dict[str, int]:
    """The participant's pending rating of ``day`` (empty when none)."""
    row = _given_on(session, participant_id, day)
    if row is None or row.status != "pending":
        return {}
    return {name: int(value) for name, value in row.ratings.items()}


def _given_on(session: Session, participant_id: int, day: dt.date) -> GivenRating | None:
    return session.execute(
        select(GivenRating).where(
            GivenRating.participant_id == participant_id, GivenRating.rated_on == day
        )
    ).scalar_one_or_none()


def _session_on(session: Session, participant_id: int, day: dt.date) -> bool:
    return (
        session.execute(
            select(TreatmentSession.id)
            .where(
                TreatmentSession.participant_id == participant_id,
                TreatmentSession.session_date == day,
            )
            .limit(1)
        ).first()
        is not None
    )


def _stopped(session: Session, participant_id: int) -> bool:
    """Stopped treatment or left the trial (any withdrawal ends sessions)."""
    return (
        session.execute(
            select(Withdrawal.id).where(Withdrawal.participant_id == participant_id).limit(1)
        ).first()
        is not None
    )


def _revoke_live(
    unit: Unit, participant_id: int, study_id: str, reason: str, *, refusal: Problem | None = None
) -> int:
    """Revoke the participant's unrevoked, unexpired session-rating links (audited)."""
    rows = live_links(
        unit,
        SurveyToken,
        participant_id,
        SurveyToken.kind == RATING_LINK,
        SurveyToken.expires_at > unit.now,
    )
    new = {"study_id": study_id, "reason": reason}
    return revoke_links(unit, rows, "rating_link.revoke", new, refusal=refusal)
