"""Concealed randomization: assigning the next slot, emergency unblinding, checking the list.

Assignment takes the next free slot of the participant's stratum in one
transaction: it advances the stratum's counter (a row every assignment locks),
opens that slot's sealed arm, and records the allocation, so a slot is never
taken twice or skipped, whatever the number of coordinators at once. Nobody
can read a slot before it is taken: arms are sealed with the randomization key
(kept outside the database) and no operation returns an unused slot. The assigned
arm is sealed too, bound to the participant and the slot, so the database holds no
arm anyone can read without that key. The audit record of an assignment carries
the slot's position and a keyed code of the arm, not the arm, so the audit trail
unblinds no one, and :meth:`RandomizationService.verify_randomization` can prove
every assignment is the one the trail recorded, in order.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, select, update

from lumbar.errors import OperationError, Problem, StoreError
from lumbar.instruments import Scores, ScoreValue
from lumbar.operations.allocation import (
    Slot,
    allocation_digest,
    check_allocation_list,
    generate_allocation_list,
)
from lumbar.operations.context import Service, Unit, arm_context, open_arm, require_text
from lumbar.protocol import assign_stratum, stratum_key
from lumbar.store.schema import (
    Allocation,
    AllocationSlot,
    AuditRecord,
    Participant,
    Questionnaire,
    QuestionnaireScore,
    StratumCounter,
    TrialRecord,
    Unblinding,
    Withdrawal,
)

__all__ = ["Assignment", "RandomizationReport", "RandomizationService"]


@dataclass(frozen=True)
class Assignment:
    """A participant's randomization, as the acting user may see it.

    ``arm`` is the arm for unblinded users and None for everyone else: a blinded user
    learns that the participant is randomized, and nothing about the arm.
    """

    study_id: str
    stratum: str
    arm: str | None
    randomized_on: dt.date


@dataclass(frozen=True)
class RandomizationReport:
    """The result of checking the allocation list and every assignment (no arms shown)."""

    source: str
    strata: int
    slots: int
    used: int
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        return not self.problems


class RandomizationService(Service):
    """Randomizing, emergency unblinding and verifying the list."""

    def randomize(self, reference: str) -> Assignment:
        """Assign the next slot of the participant's stratum.

        The baseline must be complete, and every pre-specified covariate known: a
        participant randomized without one would fall out of the adjusted analysis.
        """
        with self._unit("randomize", per_participant=True) as unit:
            participant = unit.enrolled(reference)
            connection = unit.session.connection()
            if connection.execute(_ALLOCATED, {"participant": participant.id}).first():
                raise OperationError(
                    "already randomized",
                    [
                        Problem(
                            "participant",
                            "is randomized; a participant is randomized once only",
                            participant.study_id,
                            "nothing to do",
                        )
                    ],
                )
            self._not_withdrawn(unit, participant)
            self._covariates_known(participant)
            baseline = self._baseline_scores(unit, participant)
            levels = assign_stratum(self.protocol, participant.screening_answers, baseline)
            stratum = stratum_key(levels)
            position = connection.execute(_NEXT_POSITION, {"which": stratum}).scalar_one() - 1
            slot = connection.execute(
                _SLOT, {"stratum": stratum, "position": position}
            ).one_or_none()
            if slot is None:
                raise OperationError(
                    "the allocation list is used up",
                    [
                        Problem(
                            f"stratum {stratum}",
                            f"has no slot {position}",
                            hint="the list was made for randomization.slots_per_stratum "
                            "participants a stratum; a statistician must extend it",
                        )
                    ],
                )
            vault = self.context.key("randomization")
            arm = vault.open(slot.arm_sealed, slot_context(stratum, position))
            today = unit.now.date()
            connection.execute(
                _ALLOCATE,
                {
                    "participant_id": participant.id,
                    "slot_id": slot.id,
                    "stratum": stratum,
                    "arm_sealed": vault.seal(arm, arm_context(participant.id, slot.id)),
                    "randomized_on": today,
                    "randomized_at": unit.now,
                    "randomized_by": unit.scope.id,
                },
            )
            unit.rows.add(Allocation.__table__, (participant.id,))
            unit.audit(
                "participant.randomize",
                "participant",
                str(participant.study_id),
                new={"stratum": stratum, "position": position, "arm_code": vault.code(arm)},
            )
            return Assignment(str(participant.study_id), stratum, unit.scope.arm(arm), today)

    def unblind(self, reference: str, reason: str, *, confirm: str) -> str:
        """Emergency unblinding of one participant; returns the arm (audited).

        Needs the emergency-unblinding grant, a reason, and ``confirm``: the
        participant's study id typed again, so nobody breaks the blind by a slip.
        Only this participant's arm is revealed, and only to the acting user.
        """
        reason = require_text(reason, "reason", "reason for unblinding")
        with self._unit("emergency_unblind") as unit:
            participant = unit.enrolled(reference)
            if confirm != participant.study_id:
                raise OperationError(
                    "unblinding not confirmed",
                    [
                        Problem(
                            "confirm",
                            "must repeat the participant's study id, to confirm the blind is "
                            "broken on purpose",
                            confirm,
                            f"give {participant.study_id} to confirm",
                        )
                    ],
                )
            allocation = unit.allocation(participant)
            unit.session.add(
                Unblinding(
                    participant_id=participant.id,
                    staff_id=unit.scope.id,
                    reason=reason,
                    at=unit.now,
                )
            )
            unit.audit(
                "participant.unblind", "participant", str(participant.study_id), reason=reason
            )
            return self._arm(allocation)

    def assignment(self, reference: str) -> Assignment:
        """A participant's randomization as the acting user may see it."""
        with self._unit("view", write=False) as unit:
            participant = unit.enrolled(reference)
            allocation = unit.allocation(participant)
            return Assignment(
                str(participant.study_id),
                allocation.stratum,
                self._shown_arm(unit, allocation),
                allocation.randomized_on,
            )

    def verify_randomization(self) -> RandomizationReport:
        """Check the concealed list and every assignment; report problems, never arms."""
        with self._unit("verify_randomization", write=False) as unit:
            vault = self.context.key("randomization")
            record = unit.session.execute(select(TrialRecord)).scalar_one()
            rows = list(unit.session.execute(select(AllocationSlot)).scalars())
            slots = [
                Slot(
                    row.stratum,
                    row.position,
                    row.block,
                    row.block_size,
                    vault.open(row.arm_sealed, slot_context(row.stratum, row.position)),
                )
                for row in rows
            ]
            problems = list(check_allocation_list(self.protocol, slots))
            if allocation_digest(slots, vault) != record.allocation_digest:
                problems.append(
                    Problem(
                        "allocation list",
                        "differs from the list fixed when the trial was created",
                        hint="restore the database from a backup and investigate",
                    )
                )
            if record.allocation_source == "generated" and record.allocation_seed_sealed:
                seed = int(vault.open(record.allocation_seed_sealed, "allocation-seed"))
                regenerated = generate_allocation_list(
                    self.protocol, seed, record.allocation_length
                )
                if allocation_digest(regenerated, vault) != allocation_digest(slots, vault):
                    problems.append(
                        Problem(
                            "allocation list",
                            "is not the list its recorded seed generates",
                            hint="the list was altered after it was made",
                        )
                    )
            problems.extend(self._check_assignments(unit, rows, slots))
            used = unit.session.execute(select(func.count()).select_from(Allocation)).scalar_one()
            return RandomizationReport(
                record.allocation_source,
                len({slot.stratum for slot in slots}),
                len(slots),
                used,
                tuple(problems),
            )

    # ------------------------------------------------------------------ helpers

    def _check_assignments(
        self, unit: Unit, rows: list[AllocationSlot], slots: list[Slot]
    ) -> list[Problem]:
        """Every assignment is its slot's arm, the one the audit trail recorded, in order."""
        vault = self.context.key("randomization")
        arm_of = {row.id: slot.arm for row, slot in zip(rows, slots, strict=True)}
        position_of = {row.id: (row.stratum, row.position) for row in rows}
        study_ids = dict(unit.session.execute(select(Participant.id, Participant.study_id)).all())
        recorded, problems = _recorded_assignments(unit)
        used: dict[str, list[int]] = {}
        for allocation in unit.session.execute(select(Allocation)).scalars():
            study_id = str(study_ids.get(allocation.participant_id) or allocation.participant_id)
            where = f"allocation of {study_id}"
            stratum, position = position_of[allocation.slot_id]
            used.setdefault(stratum, []).append(position)
            try:
                arm: str | None = open_arm(vault, allocation)
            except StoreError:
                arm = None
                problems.append(
                    Problem(
                        where,
                        "its sealed arm does not open for this participant and slot: it was "
                        "copied from another row or altered",
                        hint="investigate: restore the database from a backup",
                    )
                )
            if (arm is not None and arm != arm_of[allocation.slot_id]) or (
                allocation.stratum != stratum
            ):
                problems.append(
                    Problem(
                        where,
                        "does not match the slot it took",
                        hint="investigate: the record was altered",
                    )
                )
            trail = recorded.pop(study_id, None)
            if trail is None:
                problems.append(
                    Problem(
                        where,
                        "has no randomization in the audit trail",
                        hint="investigate: the allocation was written outside lumbar",
                    )
                )
            elif trail[:2] != (stratum, position) or (
                arm is not None and trail[2] != vault.code(arm)
            ):
                problems.append(
                    Problem(
                        where,
                        f"is slot {position} of {stratum}, but the audit trail recorded slot "
                        f"{trail[1]} of {trail[0]}: assignments were swapped or changed",
                        hint="investigate: restore the database from a backup",
                    )
                )
        for study_id in recorded:
            problems.append(
                Problem(
                    f"allocation of {study_id}",
                    "is in the audit trail but not in the allocation table (deleted)",
                    hint="investigate: restore the database from a backup",
                )
            )
        counters = {
            counter.stratum: counter.next_position
            for counter in unit.session.execute(select(StratumCounter)).scalars()
        }
        for stratum, next_position in counters.items():
            positions = sorted(used.get(stratum, []))
            if positions != list(range(1, next_position)):
                problems.append(
                    Problem(
                        f"stratum {stratum}",
                        "slots were not taken in order: "
                        f"{len(positions)} used, counter at {next_position}",
                        hint="investigate: a slot was skipped or reused",
                    )
                )
        return problems

    def _covariates_known(self, participant: Participant) -> None:
        questions = {question.id for question in self.protocol.eligibility.questions}
        missing = [
            covariate
            for covariate in self.protocol.analysis.covariates
            if covariate in questions and participant.screening_answers.get(covariate) is None
        ]
        if missing:
            raise OperationError(
                "a pre-specified covariate is missing",
                [
                    Problem(
                        covariate,
                        "the analysis adjusts for it, so it is needed before randomization",
                        participant.study_id,
                        f"add it to {participant.screening_number}'s screening answers "
                        "(a screening update, with a reason)",
                    )
                    for covariate in missing
                ],
            )

    def _baseline_scores(self, unit: Unit, participant: Participant) -> dict[str, Scores]:
        baseline = self.protocol.baseline
        values: dict[str, list[ScoreValue]] = {}
        for row in unit.session.connection().execute(
            _BASELINE_SCORES, {"participant": participant.id, "visit": baseline.id}
        ):
            scores = values.setdefault(row.instrument, [])
            if row.score is not None:
                scores.append(ScoreValue(row.score, row.value, 0, 0, (), row.prorated, row.reason))
        missing = [instrument for instrument in baseline.instruments if instrument not in values]
        if missing:
            raise OperationError(
                "baseline incomplete",
                [
                    Problem(
                        "baseline",
                        "every baseline questionnaire must be recorded before randomization; "
                        "missing: " + ", ".join(missing),
                        participant.study_id,
                        "record the missing baseline questionnaires",
                    )
                ],
            )
        return {
            instrument: Scores(instrument, tuple(values[instrument]))
            for instrument in baseline.instruments
        }

    def _not_withdrawn(self, unit: Unit, participant: Participant) -> None:
        withdrawn = (
            unit.session.connection().execute(_WITHDRAWN, {"participant": participant.id}).first()
        )
        if withdrawn is not None:
            raise OperationError(
                "withdrawn",
                [
                    Problem(
                        "participant",
                        f"has {withdrawn[0].replace('_', ' ')}",
                        participant.study_id,
                        "nothing can be recorded",
                    )
                ],
            )


# Built once: these run on every randomization.
_ALLOCATED = select(Allocation.participant_id).where(
    Allocation.participant_id == bindparam("participant")
)
_NEXT_POSITION = (
    update(StratumCounter)
    .where(StratumCounter.stratum == bindparam("which"))
    .values(next_position=StratumCounter.next_position + 1)
    .returning(StratumCounter.next_position)
)
_SLOT = select(AllocationSlot.id, AllocationSlot.arm_sealed).where(
    AllocationSlot.stratum == bindparam("stratum"),
    AllocationSlot.position == bindparam("position"),
)
_ALLOCATE = insert(Allocation)
_WITHDRAWN = select(Withdrawal.kind).where(
    Withdrawal.participant_id == bindparam("participant"),
    Withdrawal.kind.in_(("withdrew_consent", "lost_to_follow_up")),
)
_BASELINE_SCORES = (
    select(
        Questionnaire.instrument,
        QuestionnaireScore.score,
        QuestionnaireScore.value,
        QuestionnaireScore.prorated,
        QuestionnaireScore.reason,
    )
    .outerjoin(QuestionnaireScore, QuestionnaireScore.questionnaire_id == Questionnaire.id)
    .where(
        Questionnaire.participant_id == bindparam("participant"),
        Questionnaire.visit == bindparam("visit"),
    )
    .order_by(Questionnaire.id, QuestionnaireScore.score)
)


def slot_context(stratum: str, position: int) -> str:
    """Where a slot's arm is sealed: bound to its stratum and position."""
    return f"slot:{stratum}:{position}"


def _recorded_assignments(
    unit: Unit,
) -> tuple[dict[str, tuple[str, int, str]], list[Problem]]:
    """Study id → (stratum, position, arm code) as the audit trail recorded each
    randomization, and a problem wherever positions do not rise by one within a stratum
    in the trail's order."""
    recorded: dict[str, tuple[str, int, str]] = {}
    problems: list[Problem] = []
    last: dict[str, int] = {}
    for seq, study_id, new in unit.session.execute(
        select(AuditRecord.seq, AuditRecord.entity_id, AuditRecord.new)
        .where(AuditRecord.action == "participant.randomize")
        .order_by(AuditRecord.seq)
    ):
        payload = json.loads(new or "{}")
        stratum, position = str(payload.get("stratum")), int(payload.get("position", 0))
        recorded[study_id] = (stratum, position, str(payload.get("arm_code")))
        if position != last.get(stratum, 0) + 1:
            problems.append(
                Problem(
                    f"audit record {seq}",
                    f"randomized {study_id} to slot {position} of {stratum} after slot "
                    f"{last.get(stratum, 0)}: slots were not assigned in order",
                    hint="investigate: the trail or the list was altered",
                )
            )
        last[stratum] = position
    return recorded, problems
