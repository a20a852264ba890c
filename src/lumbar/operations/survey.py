"""A participant's own survey link: one visit's questionnaires, answered once.

::

    link = trial.issue_survey_token("SEA-0001", "week_10", expires_in_days=14)   # staff
    principal = authenticate_survey(context, link.token)                        # the phone
    survey = Survey(context, principal)
    survey.due()                        # the visit's questionnaires not yet recorded
    survey.submit({"rdq": {...}, "bothersomeness": {...}})

Whoever may record questionnaires may send a participant the link to record
their own (:class:`SurveyLinkService`). A link is bound to one participant and
one follow-up visit, expires, and answers once: :class:`Survey` takes no
participant or visit from its caller, only from the token, and re-checks the
token in the same transaction as every read and write. It opens nothing while
the participant is not randomized or their follow-up has ended. Answers are
checked, scored and stored by the same code as staff entry
(:func:`~lumbar.operations.responses.store_visit`), with source
``participant_link``, no member of staff as ``entered_by``, and audit records
naming ``participant:<study id>`` by ``survey token <id>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from lumbar.errors import AccessError, OperationError, Problem
from lumbar.operations.authentication import (
    SURVEY_TOKEN_PREFIX,
    SurveyPrincipal,
    new_token,
    survey_token_in_force,
)
from lumbar.operations.context import Context, Service, Transaction
from lumbar.operations.responses import QuestionnaireView, checked_visit, store_visit
from lumbar.operations.schedule import follow_up_ended_on
from lumbar.store.schema import Allocation, Participant, Questionnaire, SurveyToken

__all__ = [
    "MAX_SURVEY_DAYS",
    "NewSurveyToken",
    "Survey",
    "SurveyDue",
    "SurveyLinkService",
]

MAX_SURVEY_DAYS = 90
"""The longest a survey link lives: longer than any visit window of the reference trial
(the widest, week 52, spans 8 weeks), short for a secret sent by text or e-mail."""


@dataclass(frozen=True)
class NewSurveyToken:
    """A survey link's token, shown this once (to be sent to the participant)."""

    id: int
    study_id: str
    visit: str
    token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class SurveyDue:
    """What a survey link opens: the questionnaires of the visit not yet recorded."""

    study_id: str
    visit: str
    instruments: tuple[str, ...]
    expires_at: dt.datetime


class SurveyLinkService(Service):
    """Issuing survey links (staff who may record questionnaires)."""

    def issue_survey_token(
        self, reference: str, visit: str, expires_in_days: int
    ) -> NewSurveyToken:
        """A one-time link for a randomized participant to answer a follow-up visit themselves."""
        follow_ups = [v.id for v in self.protocol.follow_up_visits]
        if visit not in follow_ups:
            raise OperationError(
                "not a follow-up visit",
                [
                    Problem(
                        "visit",
                        "participants answer follow-up visits through a link",
                        visit,
                        "follow-up visits: " + ", ".join(follow_ups),
                    )
                ],
            )
        if not 1 <= expires_in_days <= MAX_SURVEY_DAYS:
            raise OperationError(
                "the link is not issued",
                [
                    Problem(
                        "expires_in_days",
                        f"must be from 1 to {MAX_SURVEY_DAYS} days",
                        expires_in_days,
                        "e.g. 14",
                    )
                ],
            )
        with self._unit("questionnaire") as unit:
            participant = unit.enrolled(reference)
            unit.allocation(participant)
            if follow_up_ended_on(unit.session, participant.id) is not None:
                raise OperationError(
                    "follow-up has ended",
                    [
                        Problem(
                            "participant",
                            "withdrew or was lost to follow-up: no more questionnaires",
                            reference,
                        )
                    ],
                )
            if not _due(unit, self.protocol.visit(visit).instruments, participant.id, visit):
                raise OperationError(
                    "nothing due",
                    [
                        Problem(
                            "visit",
                            f"every questionnaire of it is recorded for {participant.study_id}",
                            visit,
                        )
                    ],
                )
            token, prefix, digest = new_token(SURVEY_TOKEN_PREFIX)
            expires_at = unit.now + dt.timedelta(days=expires_in_days)
            row = SurveyToken(
                participant_id=participant.id,
                visit=visit,
                prefix=prefix,
                token_hash=digest,
                created_by=unit.scope.id,
                created_at=unit.now,
                expires_at=expires_at,
            )
            unit.session.add(row)
            unit.session.flush()
            study_id = str(participant.study_id)
            unit.audit(
                "survey_token.issue",
                "survey_token",
                row.id,
                new={
                    "study_id": study_id,
                    "visit": visit,
                    "prefix": prefix,
                    "expires_at": expires_at.isoformat(),
                },
            )
            return NewSurveyToken(row.id, study_id, visit, token, expires_at)


class Survey:
    """A participant answering through their link: their one visit, once."""

    def __init__(self, context: Context, principal: SurveyPrincipal):
        self.context = context
        self.principal = principal

    def due(self) -> SurveyDue:
        """The questionnaires of the link's visit not yet recorded."""
        with self._open(write=False) as (work, token, participant):
            instruments = self.context.protocol.visit(token.visit).instruments
            return SurveyDue(
                str(participant.study_id),
                token.visit,
                _due(work, instruments, participant.id, token.visit),
                token.expires_at,
            )

    def submit(
        self, answers_by_instrument: Mapping[str, Mapping[str, Any]]
    ) -> tuple[QuestionnaireView, ...]:
        """Record the answers to every questionnaire due; the link is then used up."""
        visit = self.principal.visit
        checked = checked_visit(
            self.context.protocol, visit, answers_by_instrument, "participant_link"
        )
        with self._open(write=True) as (work, token, participant):
            due = _due(work, self.context.protocol.visit(visit).instruments, participant.id, visit)
            missing = [instrument for instrument in due if instrument not in checked]
            extra = sorted(set(checked) - set(due))
            if missing or extra:
                raise OperationError(
                    "the answers do not match the survey",
                    [
                        Problem("questionnaires", "is due and has no answers", instrument)
                        for instrument in missing
                    ]
                    + [
                        Problem("questionnaires", "is not due at this visit", instrument)
                        for instrument in extra
                    ],
                )
            token.used_at = work.now
            work.audit(
                "survey_token.use",
                "survey_token",
                token.id,
                new={"study_id": participant.study_id, "visit": visit, "instruments": list(due)},
            )
            return store_visit(
                work,
                self.context.protocol,
                participant,
                visit,
                checked,
                completed_on=work.now.date(),
                source="participant_link",
                entered_by=None,
            )

    @contextmanager
    def _open(self, *, write: bool) -> Iterator[tuple[Transaction, SurveyToken, Participant]]:
        """A transaction on the link's own participant and visit, while the link opens them."""
        principal = self.principal
        with self.context.transaction(principal.actor, principal.origin, write=write) as work:
            token = survey_token_in_force(work.session, principal, work.now)
            participant = work.session.get(Participant, token.participant_id)
            assert participant is not None  # a foreign key
            randomized = work.session.get(Allocation, participant.id) is not None
            if not randomized or follow_up_ended_on(work.session, participant.id) is not None:
                raise AccessError(
                    "the survey is closed",
                    [
                        Problem(
                            "token",
                            "opens no questionnaires now: follow-up has ended",
                            hint="contact the study team",
                        )
                    ],
                )
            yield work, token, participant


def _due(
    work: Transaction, instruments: tuple[str, ...] | list[str], participant_id: int, visit: str
) -> tuple[str, ...]:
    recorded = set(
        work.session.execute(
            select(Questionnaire.instrument).where(
                Questionnaire.participant_id == participant_id, Questionnaire.visit == visit
            )
        ).scalars()
    )
    return tuple(instrument for instrument in instruments if instrument not in recorded)
