"""Questionnaire responses: item-level answers per participant, visit and instrument.

Answers are checked and scored with :mod:`lumbar.instruments` before anything
is stored; a questionnaire is accepted whole or not at all. Each records its
source (the participant's own link, staff entry, or a paper form), the date it
was completed and who entered it. An edit needs a reason; the old answers and
scores stay in the audit trail beside the new ones.

A follow-up questionnaire also records, when it is stored (and again when an edit
changes its date), where its completion date falls against its visit's window:
``in_window``, ``early`` or ``late``, and the days from the target day. One outside
the window is stored, flagged, not refused (it happened; refusing it would lose
data, and REDCap and edc-visit-schedule store such forms flagged too): the result
says so at once, by how many days, and what the protocol's rule
(``analysis.out_of_window``) does with it in the analysis. The baseline is completed
before randomization, which its window counts from, so it has no window status.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import insert, select

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
from lumbar.protocol import Protocol, VisitTiming, WindowStatus
from lumbar.store.schema import (
    Allocation,
    AuditRecord,
    Participant,
    Questionnaire,
    QuestionnaireAnswer,
    QuestionnaireScore,
)

__all__ = [
    "Checked",
    "QuestionnaireEdit",
    "QuestionnaireView",
    "RecordedQuestionnaire",
    "ResponseService",
    "checked_visit",
    "store_visit",
    "window_flag",
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
    window: str | None = None
    """``in_window``, ``early`` or ``late``; None for the baseline."""
    days_from_target: int | None = None
    flag: str | None = None
    """For an answer outside its visit's window: by how many days, and what the protocol's
    rule does with it (:func:`window_flag`); None otherwise."""

    @property
    def outside_window(self) -> bool:
        return self.window in ("early", "late")


@dataclass(frozen=True)
class QuestionnaireEdit:
    """One correction of a recorded questionnaire, as its audit record keeps it."""

    at: dt.datetime
    by: str
    reason: str
    old: dict[str, Any]
    """The answers, scores and completion date the edit replaced (only what changed)."""
    new: dict[str, Any]


@dataclass(frozen=True)
class RecordedQuestionnaire:
    """A recorded questionnaire with its current answers and every edit made to it."""

    view: QuestionnaireView
    answers: dict[str, float | None]
    edits: tuple[QuestionnaireEdit, ...]


class ResponseService(Service):
    """Recording, correcting and reading questionnaires."""

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
        *,
        completed_on: dt.date | None = None,
    ) -> QuestionnaireView:
        """Change some answers of a recorded questionnaire, or its completion date (its
        window status follows the date); the reason is required."""
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
            new_date = completed_on if completed_on != questionnaire.completed_on else None
            if not changed_items and new_date is None:
                raise OperationError(
                    "nothing changed",
                    [
                        Problem(
                            "answers",
                            "are the same as those recorded, and so is the date",
                            hint="give the new answers or the new completion date",
                        )
                    ],
                )
            old: dict[str, Any] = {}
            new: dict[str, Any] = {}
            if changed_items:
                for stale in (QuestionnaireAnswer, QuestionnaireScore):
                    for old_row in unit.session.execute(
                        select(stale).where(stale.questionnaire_id == questionnaire.id)
                    ).scalars():
                        unit.session.delete(old_row)
                unit.session.flush()
                _store(unit, [(questionnaire, checked, scores)])
                old["answers"] = {item: current.get(item) for item in changed_items}
                old["scores"] = old_scores
                new["answers"] = {item: checked[item] for item in changed_items}
                new["scores"] = scores.as_dict()
            if new_date is not None:
                allocation = _dated_fits(
                    unit,
                    self.protocol,
                    participant,
                    visit,
                    new_date,
                    unit.session.get(Allocation, participant.id),
                )
                timing = _timing(self.protocol, visit, allocation, new_date)
                old.update(_date_fields(questionnaire))
                questionnaire.completed_on = new_date
                questionnaire.window_status = None if timing is None else timing.window
                questionnaire.days_from_target = None if timing is None else timing.days_from_target
                new.update(_date_fields(questionnaire))
            questionnaire.edited_at = unit.now
            unit.audit(
                "questionnaire.edit",
                "questionnaire",
                f"{participant.study_id}/{visit}/{instrument}",
                old=old,
                new=new,
                reason=reason,
            )
            return _view(self.protocol, str(participant.study_id), questionnaire, scores.as_dict())

    # ------------------------------------------------------------------ reading

    def questionnaires(self, reference: str, visit: str | None = None) -> list[QuestionnaireView]:
        """The questionnaires recorded for a participant at one visit, or at every visit
        when ``visit`` is None, in the order recorded (those who record questionnaires may
        read them; the answers say nothing about the arm)."""
        if visit is not None:
            _known_visit(self.protocol, visit)
        with self._unit("questionnaire", write=False) as unit:
            participant = unit.enrolled(reference)
            query = select(Questionnaire).where(Questionnaire.participant_id == participant.id)
            if visit is not None:
                query = query.where(Questionnaire.visit == visit)
            rows = list(unit.session.execute(query.order_by(Questionnaire.id)).scalars())
            scores: dict[int, dict[str, float | None]] = {row.id: {} for row in rows}
            for score in unit.session.execute(
                select(QuestionnaireScore).where(QuestionnaireScore.questionnaire_id.in_(scores))
            ).scalars():
                scores[score.questionnaire_id][score.score] = score.value
            return [
                _view(self.protocol, str(participant.study_id), row, scores[row.id]) for row in rows
            ]

    def questionnaire(
        self, reference: str, visit: str, instrument: str
    ) -> RecordedQuestionnaire | None:
        """One recorded questionnaire: its scores, current answers and edit history (read
        from the audit trail: who, when, why, the old and the new values); None when it is
        not recorded yet."""
        _collected(self.protocol, visit, instrument)
        with self._unit("questionnaire", write=False) as unit:
            participant = unit.enrolled(reference)
            row = self._questionnaire(unit, participant, visit, instrument)
            if row is None:
                return None
            answers = {
                answer.item: answer.value
                for answer in unit.session.execute(
                    select(QuestionnaireAnswer).where(
                        QuestionnaireAnswer.questionnaire_id == row.id
                    )
                ).scalars()
            }
            edits = tuple(
                QuestionnaireEdit(
                    record.at,
                    record.actor,
                    record.reason or "",
                    json.loads(record.old) if record.old else {},
                    json.loads(record.new) if record.new else {},
                )
                for record in unit.session.execute(
                    select(AuditRecord)
                    .where(
                        AuditRecord.action == "questionnaire.edit",
                        AuditRecord.entity == "questionnaire",
                        AuditRecord.entity_id == f"{participant.study_id}/{visit}/{instrument}",
                    )
                    .order_by(AuditRecord.seq)
                ).scalars()
            )
            view = _view(
                self.protocol, str(participant.study_id), row, self._scores_of(unit, row.id)
            )
            return RecordedQuestionnaire(view, answers, edits)

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
    allocation = _may_record(work, protocol, participant, visit, completed_on)
    timing = _timing(protocol, visit, allocation, completed_on)
    recorded = set(
        work.session.execute(
            select(Questionnaire.instrument).where(
                Questionnaire.participant_id == participant.id,
                Questionnaire.visit == visit,
                Questionnaire.instrument.in_(list(checked_all)),
            )
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
    rows = {
        instrument: Questionnaire(
            participant_id=participant.id,
            visit=visit,
            instrument=instrument,
            source=source,
            completed_on=completed_on,
            window_status=None if timing is None else timing.window,
            days_from_target=None if timing is None else timing.days_from_target,
            entered_by=entered_by,
            recorded_at=work.now,
        )
        for instrument in checked_all
    }
    work.session.add_all(rows.values())
    work.session.flush()
    _store(
        work,
        [
            (rows[instrument], checked, scores)
            for instrument, (scores, checked) in checked_all.items()
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
                "source": source,
                **_date_fields(rows[instrument]),
            },
        )
        views.append(_view(protocol, str(participant.study_id), rows[instrument], scores.as_dict()))
    return tuple(views)


def window_flag(protocol: Protocol, visit: str, timing: VisitTiming | None) -> str | None:
    """What to tell whoever stores an answer outside its visit's window: by how many days,
    and what the protocol's rule does with it in the analysis; None inside the window."""
    if timing is None or not timing.outside:
        return None
    scheduled = protocol.visit(visit)
    day = scheduled.day + timing.days_from_target
    if timing.window == "early":
        days = scheduled.earliest_day - day
        where = f"{days} day{'s' * (days != 1)} before its window opens"
    else:
        days = day - scheduled.latest_day
        where = f"{days} day{'s' * (days != 1)} after its window closed"
    rule = protocol.analysis.out_of_window
    if rule == "exclude":
        treatment = (
            "it is kept, flagged, and left out of the primary analysis "
            "(protocol rule analysis.out_of_window: exclude)"
        )
    else:
        treatment = (
            "it is kept, flagged, and included in the primary analysis, with a sensitivity "
            "analysis that leaves out such answers (protocol rule analysis.out_of_window: include)"
        )
    return (
        f"outside the window of {visit}: completed on day {day} after randomization, "
        f"{where} (days {scheduled.earliest_day} to {scheduled.latest_day}, target day "
        f"{scheduled.day}); {treatment}"
    )


def _view(
    protocol: Protocol, study_id: str, row: Questionnaire, scores: dict[str, float | None]
) -> QuestionnaireView:
    timing = None
    if row.window_status is not None and row.days_from_target is not None:
        timing = VisitTiming(cast(WindowStatus, row.window_status), row.days_from_target)
    return QuestionnaireView(
        study_id,
        row.visit,
        row.instrument,
        row.completed_on,
        row.source,
        scores,
        window=row.window_status,
        days_from_target=row.days_from_target,
        flag=window_flag(protocol, row.visit, timing),
    )


def _date_fields(row: Questionnaire) -> dict[str, Any]:
    """The completion date and window status, as the audit record keeps them."""
    return {
        "completed_on": row.completed_on.isoformat(),
        "window": row.window_status,
        "days_from_target": row.days_from_target,
    }


def _timing(
    protocol: Protocol, visit: str, allocation: Allocation | None, completed_on: dt.date
) -> VisitTiming | None:
    """A follow-up's completion date against its window; None for the baseline."""
    if allocation is None or visit == protocol.baseline.id:
        return None
    return protocol.visit(visit).timing((completed_on - allocation.randomized_on).days)


def _known_visit(protocol: Protocol, visit: str) -> None:
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


def _collected(protocol: Protocol, visit: str, instrument: str) -> Any:
    _known_visit(protocol, visit)
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
) -> Allocation | None:
    """Refuse a questionnaire the participant's stage or the date rules out; return the
    participant's allocation (None before randomization)."""
    allocation = work.session.get(Allocation, participant.id)
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
    elif allocation is None:
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
    return _dated_fits(work, protocol, participant, visit, completed_on, allocation)


def _dated_fits(
    work: Transaction,
    protocol: Protocol,
    participant: Participant,
    visit: str,
    completed_on: dt.date,
    allocation: Allocation | None,
) -> Allocation | None:
    """Refuse a completion date in the future, before consent, before randomization for a
    follow-up or after it for the baseline; return the participant's ``allocation``."""
    not_after(completed_on, work.now.date(), "completed_on")
    not_before_consent(work.session, participant.id, completed_on, "completed_on")
    if allocation is None:
        return None
    if visit == protocol.baseline.id:
        if completed_on > allocation.randomized_on:
            raise OperationError(
                "baseline after randomization",
                [
                    Problem(
                        "completed_on",
                        "the baseline is completed before randomization "
                        f"({allocation.randomized_on})",
                        completed_on.isoformat(),
                        "check the date",
                    )
                ],
            )
    elif completed_on < allocation.randomized_on:
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
    return allocation


def _store(
    work: Transaction,
    entries: Sequence[tuple[Questionnaire, Mapping[str, Any], Scores]],
) -> None:
    """Every answer and score of the questionnaires: one multi-row INSERT each (their rows
    imaged into the work's audit record like any other)."""
    session = work.session
    ids = [questionnaire.id for questionnaire, _, _ in entries]
    work.rows.add_where(QuestionnaireAnswer, QuestionnaireAnswer.questionnaire_id.in_(ids))
    work.rows.add_where(QuestionnaireScore, QuestionnaireScore.questionnaire_id.in_(ids))
    session.execute(
        insert(QuestionnaireAnswer),
        [
            {
                "questionnaire_id": questionnaire.id,
                "item": item,
                "value": None if value is None else float(value),
            }
            for questionnaire, answers, _ in entries
            for item, value in answers.items()
        ],
    )
    session.execute(
        insert(QuestionnaireScore),
        [
            {
                "questionnaire_id": questionnaire.id,
                "score": value.score,
                "value": value.value,
                "prorated": value.prorated,
                "missing_items": len(value.missing_items),
                "reason": value.reason,
            }
            for questionnaire, _, scores in entries
            for value in scores.values
        ],
    )
