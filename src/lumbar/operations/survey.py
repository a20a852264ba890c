"""A participant's own survey link: one visit's questionnaires, answered once.

::

    link = trial.issue_survey_token("SEA-0001", "week_10")      # staff: open in its window
    principal = authenticate_survey(context, link.token)                        # the phone
    survey = Survey(context, principal)
    survey.due()                        # the visit's questionnaires not yet recorded
    survey.submit({"rdq": {...}, "bothersomeness": {...}})

Whoever may record questionnaires may send a participant the link to record
their own (:class:`SurveyLinkService`). A link is bound to one participant and
one follow-up visit, opens with the visit's window and expires when it closes, can be
revoked (issuing it again revokes the earlier one), keeps answers saved screen by screen
(:meth:`Survey.save`), and answers once: :class:`Survey` takes no
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
from dataclasses import dataclass, field, replace
from typing import Any, cast

from sqlalchemy import select

from lumbar.errors import OperationError, Problem
from lumbar.operations.authentication import (
    SURVEY_TOKEN_PREFIX,
    SurveyLinkRefusedError,
    SurveyPrincipal,
    survey_token_in_force,
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
from lumbar.operations.responses import Checked, QuestionnaireView, checked_visit, store_visit
from lumbar.operations.schedule import (
    follow_up_end,
    follow_up_ended_on,
    start_of_day,
    visit_window,
)
from lumbar.store.schema import Allocation, Participant, Questionnaire, SurveyToken

__all__ = [
    "LINK_STATUS_WORDS",
    "NewSurveyToken",
    "Survey",
    "SurveyDue",
    "SurveyLink",
    "SurveyLinkService",
]

LINK_STATUS_WORDS = {"saved": "partially answered", "used": "complete"}
"""How staff pages say a link's status where the words differ from :attr:`SurveyLink.status`
(the other statuses are said as they are: sent, opened, expired, revoked, not open yet)."""


@dataclass(frozen=True)
class NewSurveyToken:
    """A survey link's token, shown this once (to be sent to the participant)."""

    id: int
    study_id: str
    visit: str
    token: str
    opens_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class SurveyLink:
    """A survey link as staff see it: never its token, only its prefix and where it stands."""

    id: int
    study_id: str
    visit: str
    prefix: str
    status: str
    """``revoked``, ``used``, ``expired``, ``not open yet``, ``saved`` (answers saved, not
    submitted), ``opened`` or ``sent``."""
    opens_at: dt.datetime
    expires_at: dt.datetime
    opened_at: dt.datetime | None
    used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def status_words(self) -> str:
        """The status as staff pages say it (``saved`` is ``partially answered``, ``used``
        is ``complete``)."""
        return LINK_STATUS_WORDS.get(self.status, self.status)

    @property
    def live(self) -> bool:
        """Whether the link may still open its survey (not used, revoked or expired)."""
        return self.status in ("not open yet", "sent", "opened", "saved")


@dataclass(frozen=True)
class SurveyDue:
    """What a survey link opens: the questionnaires of the visit not yet recorded, and the
    answers saved so far (instrument → item → answer)."""

    study_id: str
    visit: str
    instruments: tuple[str, ...]
    expires_at: dt.datetime
    saved: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class SurveyLinkService(Service):
    """Issuing and revoking survey links (staff who may record questionnaires)."""

    def issue_survey_token(self, reference: str, visit: str) -> NewSurveyToken:
        """A one-time link for a randomized participant to answer a follow-up visit themselves.

        It opens on the first day of the visit's window and expires after its last (UTC days);
        a link issued again for the same participant and visit replaces the earlier one,
        which is revoked, and takes over the answers saved through it.
        """
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
        with self._unit("questionnaire") as unit:
            participant = unit.enrolled(reference)
            allocation = unit.allocation(participant)
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
            opens, closes = visit_window(self.protocol.visit(visit), allocation.randomized_on)
            opens_at = start_of_day(opens)
            expires_at = start_of_day(closes + dt.timedelta(days=1))
            if expires_at <= unit.now:
                raise OperationError(
                    "the visit's window has closed",
                    [
                        Problem(
                            "visit",
                            f"its window closed on {closes.isoformat()}: no link opens it now",
                            visit,
                        )
                    ],
                )
            study_id = str(participant.study_id)
            replaced = _live(unit, participant.id, visit)
            # Answers saved through the link replaced (a reminder carries a new link) go on
            # with the new one: the participant does not answer again what they saved.
            saved = next((row.draft for row in reversed(replaced) if row.draft), None)
            _revoke(unit, replaced, study_id, visit, "reissued")
            row, token = add_link(
                unit,
                SurveyToken,
                SURVEY_TOKEN_PREFIX,
                "survey_token.issue",
                {"study_id": study_id, "visit": visit},
                participant_id=participant.id,
                visit=visit,
                opens_at=opens_at,
                expires_at=expires_at,
                draft=None if saved is None else dict(saved),
            )
            return NewSurveyToken(row.id, study_id, visit, token, opens_at, expires_at)

    def revoke_survey_token(self, reference: str, visit: str) -> int:
        """Revoke the participant's live link to ``visit``; returns how many were revoked."""
        with self._unit("questionnaire") as unit:
            participant = unit.enrolled(reference)
            return _revoke(
                unit,
                _live(unit, participant.id, visit),
                str(participant.study_id),
                visit,
                "revoked",
                refusal=Problem(
                    "visit", "the participant has no unused link to it", visit, "issue one first"
                ),
            )

    def survey_links(self, reference: str) -> list[SurveyLink]:
        """A participant's survey links, oldest first, with where each stands."""
        with self._unit("questionnaire", write=False) as unit:
            participant = unit.enrolled(reference)
            rows = participant_links(
                unit, SurveyToken, participant.id, SurveyToken.kind == "survey"
            )
            return [
                SurveyLink(
                    row.id,
                    str(participant.study_id),
                    row.visit,
                    row.prefix,
                    link_status(row, unit.now),
                    row.opens_at,
                    row.expires_at,
                    row.opened_at,
                    row.used_at,
                    row.revoked_at,
                )
                for row in rows
            ]


class Survey:
    """A participant answering through their link: their one visit, once."""

    def __init__(self, context: Context, principal: SurveyPrincipal):
        self.context = context
        self.principal = principal

    def due(self) -> SurveyDue:
        """The questionnaires of the link's visit not yet recorded, and the answers saved."""
        with self._open(write=False) as (work, token, participant):
            return self._due(work, token, participant)

    def open(self) -> SurveyDue:
        """:meth:`due`, noting (once, audited) that the participant opened the link."""
        with self._open(write=True) as (work, token, participant):
            note_opened(
                work,
                token,
                "survey_token.open",
                {"study_id": participant.study_id, "visit": token.visit},
            )
            return self._due(work, token, participant)

    def save(self, instrument: str, answers: Mapping[str, Any]) -> SurveyDue:
        """Keep one questionnaire's answers until the survey is submitted.

        They are checked as on submission first, so a refused answer is named at its item
        (:class:`~lumbar.errors.AnswerError`) and nothing is saved.
        """
        checked_visit(
            self.context.protocol,
            self.principal.visit,
            {instrument: answers},
            "participant_link",
        )
        with self._open(write=True) as (work, token, participant):
            due = self._due(work, token, participant)
            if instrument not in due.instruments:
                raise OperationError(
                    "not in this survey",
                    [Problem("instrument", "is not due at this visit", instrument)],
                )
            draft = dict(token.draft or {})
            draft[instrument] = dict(answers)
            token.draft = draft  # a new value, so the JSON column is written
            # Saving answers records no questionnaire: what is due stays as read above.
            saved = {name: draft[name] for name in due.instruments if name in draft}
            return replace(due, saved=saved)

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
            return self._record(work, token, participant, due, checked)

    def _record(
        self,
        work: Transaction,
        token: SurveyToken,
        participant: Participant,
        due: tuple[str, ...],
        checked: Checked,
    ) -> tuple[QuestionnaireView, ...]:
        """Store the checked answers of every questionnaire due, and use the link up."""
        visit = self.principal.visit
        token.used_at = work.now
        token.draft = None
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

    def submit_saved(self) -> tuple[QuestionnaireView, ...] | None:
        """:meth:`submit` the answers saved through the link, read in the same transaction
        as they are recorded; None (and nothing changes) when a questionnaire due has no
        saved answers yet."""
        visit = self.principal.visit
        with self._open(write=True) as (work, token, participant):
            due = _due(work, self.context.protocol.visit(visit).instruments, participant.id, visit)
            draft = token.draft or {}
            if not due or any(name not in draft for name in due):
                return None
            checked = checked_visit(
                self.context.protocol,
                visit,
                {name: draft[name] for name in due},
                "participant_link",
            )
            return self._record(work, token, participant, due, checked)

    def _due(self, work: Transaction, token: SurveyToken, participant: Participant) -> SurveyDue:
        instruments = _due(
            work, self.context.protocol.visit(token.visit).instruments, participant.id, token.visit
        )
        saved = {
            name: answers for name, answers in (token.draft or {}).items() if name in instruments
        }
        return SurveyDue(
            str(participant.study_id), token.visit, instruments, token.expires_at, saved
        )

    @contextmanager
    def _open(self, *, write: bool) -> Iterator[tuple[Transaction, SurveyToken, Participant]]:
        """A transaction on the link's own participant and visit, while the link opens them."""
        principal = self.principal
        with self.context.transaction(principal.actor, principal.origin, write=write) as work:
            token = survey_token_in_force(work.session, principal, work.now)
            # The participant, whether they are randomized and whether their follow-up
            # ended, in one statement.
            row = work.session.execute(
                select(
                    Participant,
                    select(Allocation.participant_id)
                    .where(Allocation.participant_id == Participant.id)
                    .exists(),
                    follow_up_end(Participant.id).scalar_subquery(),
                ).where(Participant.id == token.participant_id)
            ).one()
            participant: Participant = row[0]
            randomized, ended = bool(row[1]), cast("dt.date | None", row[2])
            if not randomized or ended is not None:
                raise SurveyLinkRefusedError(
                    "closed",
                    "opens no questionnaires now: follow-up has ended",
                    "contact the study team",
                    summary="the survey is closed",
                )
            yield work, token, participant


def _live(unit: Unit, participant_id: int, visit: str) -> list[SurveyToken]:
    """The participant's unused, unrevoked links to ``visit``, oldest first."""
    return live_links(
        unit, SurveyToken, participant_id, SurveyToken.kind == "survey", SurveyToken.visit == visit
    )


def _revoke(
    unit: Unit,
    rows: list[SurveyToken],
    study_id: str,
    visit: str,
    reason: str,
    *,
    refusal: Problem | None = None,
) -> int:
    """Revoke the links ``rows`` to ``visit`` (audited)."""
    new = {"study_id": study_id, "visit": visit, "reason": reason}
    return revoke_links(unit, rows, "survey_token.revoke", new, refusal=refusal)


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
