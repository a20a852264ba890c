"""Questionnaire responses: item-level answers per participant, visit and instrument.

Answers are checked and scored with :mod:`lumbar.instruments` before anything
is stored; a questionnaire is accepted whole or not at all. Each records its
source (the participant's own link, staff entry, or a paper form), the date it
was completed and who entered it. An edit needs a reason; the old answers and
scores stay in the audit trail beside the new ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from lumbar.errors import OperationError, Problem
from lumbar.instruments import INSTRUMENTS, Scores, check_answers, score_answers
from lumbar.operations.context import (
    Service,
    Transaction,
    Unit,
    not_after,
    not_before_consent,
    require_text,
)
from lumbar.operations.vocabulary import SOURCES
from lumbar.protocol import Protocol
from lumbar.store.schema import (
    Allocation,
    Participant,
    Questionnaire,
    QuestionnaireAnswer,
    QuestionnaireScore,
)

__all__ = [
    "Checked",
    "QuestionnaireView",
    "ResponseService",
    "checked_visit",
    "store_visit",
]

Source = Literal["participant_link", "staff_entry", "paper"]


@dataclass(frozen=True)
class QuestionnaireView:
    study_id: str
    visit: str
    instrument: str
    completed_on: dt.date
    source: str
    scores: dict[str, float | None]


class ResponseService(Service):
    """Recording and correcting questionnaires."""

    def record_questionnaire(
        self,
        reference: str,
        visit: str,
        instrument: str,
        answers: Mapping[str, Any],
        *,
        completed_on: dt.date,
        source: str = "staff_entry",
    ) -> QuestionnaireView:
        """Store one completed questionnaire after checking and scoring it."""
        (view,) = self.record_visit(
            reference, visit, {instrument: answers}, completed_on=completed_on, source=source
        )
        return view

    def record_visit(
        self,
        reference: str,
        visit: str,
        questionnaires: Mapping[str, Mapping[str, Any]],
        *,
        completed_on: dt.date,
        source: str = "staff_entry",
    ) -> tuple[QuestionnaireView, ...]:
        """Store several questionnaires of one visit together: all of them, or none.

        ``questionnaires`` maps an instrument to its answers, as a participant
        completing the visit's set on their phone would send them.
        """
        checked_all = checked_visit(self.protocol, visit, questionnaires, source)
        with self._unit("questionnaire", per_participant=True) as unit:
            participant = unit.enrolled(reference)
            return store_visit(
                unit,
                self.protocol,
                participant,
                visit,
                checked_all,
                completed_on=completed_on,
                source=source,
                entered_by=unit.scope.id,
            )

    def edit_questionnaire(
        self,
        reference: str,
        visit: str,
        instrument: str,
        answers: Mapping[str, Any],
        reason: str,
    ) -> QuestionnaireView:
        """Change some answers of a recorded questionnaire; the reason is required."""
        reason = require_text(reason, "reason", "reason for the edit")
        definition = _collected(self.protocol, visit, instrument)
        with self._unit("questionnaire") as unit:
            participant = unit.enrolled(reference)
            questionnaire = self._questionnaire(unit, participant, visit, instrument)
            if questionnaire is None:
                raise OperationError(
                    "not recorded",
                    [
                        Problem(
                            "questionnaire",
                            f"{instrument} at {visit} is not recorded for {participant.study_id}",
                            hint="record it first",
                        )
                    ],
                )
            current = {
                row.item: row.value
                for row in unit.session.execute(
                    select(QuestionnaireAnswer).where(
                        QuestionnaireAnswer.questionnaire_id == questionnaire.id
                    )
                ).scalars()
            }
            merged = {**current, **answers}
            scores = score_answers(definition, merged)
            checked = check_answers(definition, merged)
            old_scores = self._scores_of(unit, questionnaire.id)
            changed_items = sorted(item for item in checked if checked[item] != current.get(item))
            if not changed_items:
                raise OperationError(
                    "nothing changed",
                    [
                        Problem(
                            "answers", "are the same as those recorded", hint="give the new answers"
                        )
                    ],
                )
            for stale in (QuestionnaireAnswer, QuestionnaireScore):
                for old_row in unit.session.execute(
                    select(stale).where(stale.questionnaire_id == questionnaire.id)
                ).scalars():
                    unit.session.delete(old_row)
            unit.session.flush()
            _store(unit.session, [(questionnaire.id, checked, scores)])
            questionnaire.edited_at = unit.now
            unit.audit(
                "questionnaire.edit",
                "questionnaire",
                f"{participant.study_id}/{visit}/{instrument}",
                old={
                    "answers": {item: current.get(item) for item in changed_items},
                    "scores": old_scores,
                },
                new={
                    "answers": {item: checked[item] for item in changed_items},
                    "scores": scores.as_dict(),
                },
                reason=reason,
            )
            return QuestionnaireView(
                str(participant.study_id),
                visit,
                instrument,
                questionnaire.completed_on,
                questionnaire.source,
                scores.as_dict(),
            )

    # ------------------------------------------------------------------ helpers

    def _questionnaire(
        self, unit: Unit, participant: Participant, visit: str, instrument: str
    ) -> Questionnaire | None:
        return unit.session.execute(
            select(Questionnaire).where(
                Questionnaire.participant_id == participant.id,
                Questionnaire.visit == visit,
                Questionnaire.instrument == instrument,
            )
        ).scalar_one_or_none()

    def _scores_of(self, unit: Unit, questionnaire_id: int) -> dict[str, float | None]:
        return {
            row.score: row.value
            for row in unit.session.execute(
                select(QuestionnaireScore).where(
                    QuestionnaireScore.questionnaire_id == questionnaire_id
                )
            ).scalars()
        }


# ---------------------------------------------------------------------- recording


Checked = dict[str, tuple[Scores, dict[str, Any]]]
"""Each instrument's scores and checked answers, ready to store."""


def checked_visit(
    protocol: Protocol, visit: str, questionnaires: Mapping[str, Mapping[str, Any]], source: str
) -> Checked:
    """Check and score a visit's questionnaires before any transaction opens."""
    if source not in SOURCES:
        raise OperationError(
            "unknown source",
            [Problem("source", "is not a source", source, "sources: " + ", ".join(SOURCES))],
        )
    if not questionnaires:
        raise OperationError(
            "nothing to record",
            [
                Problem(
                    "questionnaires",
                    "give at least one instrument's answers",
                    hint="give the answers",
                )
            ],
        )
    checked_all: Checked = {}
    for instrument, answers in questionnaires.items():
        definition = _collected(protocol, visit, instrument)
        checked_all[instrument] = (
            score_answers(definition, answers),
            check_answers(definition, answers),
        )
    return checked_all


def store_visit(
    work: Transaction,
    protocol: Protocol,
    participant: Participant,
    visit: str,
    checked_all: Checked,
    *,
    completed_on: dt.date,
    source: str,
    entered_by: int | None,
) -> tuple[QuestionnaireView, ...]:
    """Store checked questionnaires of one visit, each with its audit record: all, or none.

    ``entered_by`` is the member of staff who entered them; None when the participant
    answered through their own link.
    """
    _may_record(work, protocol, participant, visit, completed_on)
    connection = work.session.connection()
    recorded = set(
        connection.execute(
            _RECORDED,
            {"participant": participant.id, "visit": visit, "instruments": list(checked_all)},
        ).scalars()
    )
    if recorded:
        raise OperationError(
            "already recorded",
            [
                Problem(
                    "questionnaire",
                    f"{instrument} at {visit} is recorded for {participant.study_id}",
                    hint="correct it with an edit and a reason",
                )
                for instrument in sorted(recorded)
            ],
        )
    ids = connection.execute(
        _INSERT_QUESTIONNAIRES,
        [
            {
                "participant_id": participant.id,
                "visit": visit,
                "instrument": instrument,
                "source": source,
                "completed_on": completed_on,
                "entered_by": entered_by,
                "recorded_at": work.now,
            }
            for instrument in checked_all
        ],
    ).scalars()
    _store(
        work.session,
        [
            (questionnaire_id, checked, scores)
            for questionnaire_id, (scores, checked) in zip(ids, checked_all.values(), strict=True)
        ],
    )
    views = []
    for instrument, (scores, checked) in checked_all.items():
        work.audit(
            "questionnaire.record",
            "questionnaire",
            f"{participant.study_id}/{visit}/{instrument}",
            new={
                "answers": checked,
                "scores": scores.as_dict(),
                "completed_on": completed_on.isoformat(),
                "source": source,
            },
        )
        views.append(
            QuestionnaireView(
                str(participant.study_id),
                visit,
                instrument,
                completed_on,
                source,
                scores.as_dict(),
            )
        )
    return tuple(views)


def _collected(protocol: Protocol, visit: str, instrument: str) -> Any:
    visits = [v.id for v in protocol.visits]
    if visit not in visits:
        raise OperationError(
            "unknown visit",
            [
                Problem(
                    "visit",
                    "is not a visit of the protocol",
                    visit,
                    "visits: " + ", ".join(visits),
                )
            ],
        )
    collected = protocol.visit(visit).instruments
    if instrument not in collected:
        raise OperationError(
            "instrument not collected at this visit",
            [
                Problem(
                    "instrument",
                    f"is not collected at {visit}",
                    instrument,
                    f"{visit} collects: " + ", ".join(collected),
                )
            ],
        )
    return INSTRUMENTS.get(instrument)


def _may_record(
    work: Transaction,
    protocol: Protocol,
    participant: Participant,
    visit: str,
    completed_on: dt.date,
) -> None:
    not_after(completed_on, work.now.date(), "completed_on")
    not_before_consent(work.session, participant.id, completed_on, "completed_on")
    allocation = (
        work.session.connection().execute(_RANDOMIZED, {"participant": participant.id}).first()
    )
    if visit == protocol.baseline.id:
        if allocation is not None:
            raise OperationError(
                "baseline after randomization",
                [
                    Problem(
                        "visit",
                        "the baseline is completed before randomization",
                        visit,
                        "record a follow-up visit, or edit the baseline with a reason",
                    )
                ],
            )
        return
    if allocation is None:
        raise OperationError(
            "not randomized",
            [
                Problem(
                    "visit",
                    "follow-up visits come after randomization",
                    visit,
                    "randomize first",
                )
            ],
        )
    if completed_on < allocation.randomized_on:
        raise OperationError(
            "before randomization",
            [
                Problem(
                    "completed_on",
                    "a follow-up cannot be completed before randomization "
                    f"({allocation.randomized_on})",
                    completed_on.isoformat(),
                    "check the date",
                )
            ],
        )


def _store(
    session: Session,
    entries: Sequence[tuple[int, Mapping[str, Any], Scores]],
) -> None:
    """Every answer and score of the questionnaires (by id): one multi-row INSERT each."""
    connection = session.connection()
    connection.execute(
        _INSERT_ANSWERS,
        [
            {
                "questionnaire_id": questionnaire_id,
                "item": item,
                "value": None if value is None else float(value),
            }
            for questionnaire_id, answers, _ in entries
            for item, value in answers.items()
        ],
    )
    connection.execute(
        _INSERT_SCORES,
        [
            {
                "questionnaire_id": questionnaire_id,
                "score": value.score,
                "value": value.value,
                "prorated": value.prorated,
                "missing_items": len(value.missing_items),
                "reason": value.reason,
            }
            for questionnaire_id, _, scores in entries
            for value in scores.values
        ],
    )


# Built once: these run on every questionnaire recorded.
_RECORDED = select(Questionnaire.instrument).where(
    Questionnaire.participant_id == bindparam("participant"),
    Questionnaire.visit == bindparam("visit"),
    Questionnaire.instrument.in_(bindparam("instruments", expanding=True)),
)
_RANDOMIZED = select(Allocation.randomized_on).where(
    Allocation.participant_id == bindparam("participant")
)
_INSERT_QUESTIONNAIRES = insert(Questionnaire).returning(
    Questionnaire.id, sort_by_parameter_order=True
)
_INSERT_ANSWERS = insert(QuestionnaireAnswer)
_INSERT_SCORES = insert(QuestionnaireScore)
