"""Screening, identifiers, consent, enrolment, and leaving the trial.

A person is screened at a site and gets a screening number; the protocol's
eligibility rules are evaluated on their answers and every reason for
ineligibility is stored (these feed the CONSORT diagram). An eligible person
who consents is enrolled and gets a study id (``<site code>-0001``), the only id
that appears anywhere past this point. Names, contact details and dates of
birth go into the vault and nowhere else: not the audit trail, not the dataset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, literal, select

from lumbar.errors import OperationError, Problem
from lumbar.operations.context import (
    Service,
    Unit,
    not_after,
    not_before_consent,
    require_text,
)
from lumbar.operations.schedule import FOLLOW_UP_ENDS
from lumbar.operations.vocabulary import WITHDRAWAL_KINDS
from lumbar.protocol import check_screening_answers, evaluate_eligibility
from lumbar.store.schema import (
    Allocation,
    Consent,
    Identity,
    Participant,
    ScreeningReason,
    Site,
    Withdrawal,
)

__all__ = [
    "EnrolmentService",
    "IdentityView",
    "ParticipantView",
    "ScreeningView",
]

IDENTITY_FIELDS = ("name", "contact", "birth_date")


@dataclass(frozen=True)
class ParticipantView:
    """A participant as the list shows them (no identifiers)."""

    screening_number: str
    study_id: str | None
    site: str
    status: str


@dataclass(frozen=True)
class ScreeningView:
    """The outcome of screening one person."""

    screening_number: str
    status: str
    reasons: tuple[str, ...]
    unanswered: tuple[str, ...]
    answers: dict[str, Any] = field(default_factory=dict, compare=False)
    """The answers given so far (unanswered questions are absent)."""


@dataclass(frozen=True)
class IdentityView:
    """Direct identifiers, opened from the vault for a user allowed to see them."""

    name: str | None
    contact: str | None
    birth_date: dt.date | None


class EnrolmentService(Service):
    """Screening, identity, consent, enrolment and withdrawals; the list of participants."""

    def screen(
        self, site: str, answers: Mapping[str, Any], *, synthetic: bool = False
    ) -> ScreeningView:
        """Screen one person at ``site``: store the answers, the verdict and every reason.

        A screening without any answer is refused and stores nothing.
        """
        if not any(value is not None for value in answers.values()):
            questions = [question.id for question in self.protocol.eligibility.questions]
            raise OperationError(
                "no screening answers",
                [
                    Problem(
                        "answers",
                        "a screening records the person's answers to the eligibility questions",
                        dict(answers),
                        "give the answers (the questions: " + ", ".join(questions) + "; "
                        "'lumbar screening template' prints a file to fill in)",
                    )
                ],
            )
        with self._unit("screen") as unit:
            site_row = unit.site(site)
            checked = check_screening_answers(self.protocol.eligibility, answers)
            count = unit.session.execute(select(func.count()).select_from(Participant)).scalar_one()
            participant = Participant(
                screening_number=f"S{count + 1:05d}",
                site_id=site_row.id,
                screened_at=unit.now,
                screening_answers={k: v for k, v in checked.items() if v is not None},
                eligibility="",
                synthetic=synthetic,
            )
            unit.session.add(participant)
            view = self._evaluate(unit, participant)
            unit.audit(
                "screening.record",
                "participant",
                participant.screening_number,
                new={"site": site, "answers": participant.screening_answers, "status": view.status},
            )
            return view

    def update_screening(
        self, reference: str, answers: Mapping[str, Any], reason: str
    ) -> ScreeningView:
        """Add or correct screening answers before randomization, with a reason; re-evaluate.

        After enrolment the answers may still be completed (a covariate not asked at
        screening), but not in a way that makes the participant ineligible.
        """
        reason = require_text(reason, "reason", "reason for the change")
        with self._unit("screen") as unit:
            participant = unit.participant(reference)
            if unit.session.get(Allocation, participant.id) is not None:
                raise OperationError(
                    "already randomized",
                    [
                        Problem(
                            "participant",
                            "screening answers are fixed once a person is randomized",
                            reference,
                            "record a protocol deviation instead",
                        )
                    ],
                )
            old = dict(participant.screening_answers)
            merged = {**old, **answers}
            checked = check_screening_answers(self.protocol.eligibility, merged)
            participant.screening_answers = {k: v for k, v in checked.items() if v is not None}
            old_status = participant.eligibility
            view = self._evaluate(unit, participant)
            if participant.study_id is not None and view.status != "eligible":
                raise OperationError(
                    "an enrolled participant must stay eligible",
                    [
                        Problem(
                            "answers",
                            f"would make {participant.study_id} {view.status}",
                            dict(answers),
                            "check the answers; a person found ineligible after enrolment is "
                            "a protocol deviation",
                        )
                    ],
                )
            unit.audit(
                "screening.update",
                "participant",
                participant.screening_number,
                old={"answers": old, "status": old_status},
                new={"answers": participant.screening_answers, "status": view.status},
                reason=reason,
            )
            return view

    def _evaluate(self, unit: Unit, participant: Participant) -> ScreeningView:
        result = evaluate_eligibility(self.protocol, participant.screening_answers)
        participant.eligibility = result.status
        unit.session.flush()
        for row in unit.session.execute(
            select(ScreeningReason).where(ScreeningReason.participant_id == participant.id)
        ).scalars():
            unit.session.delete(row)
        for outcome in result.reasons:
            unit.session.add(
                ScreeningReason(
                    participant_id=participant.id,
                    rule_id=outcome.rule.id,
                    kind=outcome.kind,
                    category=outcome.rule.category,
                    label=outcome.rule.label,
                )
            )
        unit.session.flush()
        return ScreeningView(
            participant.screening_number,
            result.status,
            tuple(outcome.reason for outcome in result.reasons),
            result.unanswered,
            dict(participant.screening_answers),
        )

    def screening(self, reference: str) -> ScreeningView:
        """A person's screening as it stands: the verdict, every reason, what is unanswered.

        Reads only: the stored answers are evaluated again, as when they were recorded,
        so a page can show the verdict after the form that recorded it has gone.
        """
        with self._unit("screen", write=False) as unit:
            participant = unit.participant(reference)
            result = evaluate_eligibility(self.protocol, participant.screening_answers)
            return ScreeningView(
                participant.screening_number,
                result.status,
                tuple(outcome.reason for outcome in result.reasons),
                result.unanswered,
                dict(participant.screening_answers),
            )

    def record_identity(
        self,
        reference: str,
        *,
        name: str | None = None,
        contact: str | None = None,
        birth_date: dt.date | None = None,
    ) -> None:
        """Seal a person's direct identifiers in the vault (only the given fields change).

        The audit record says which fields were set, never their values.
        """
        given = {"name": name, "contact": contact, "birth_date": birth_date}
        changed = [field for field, value in given.items() if value is not None]
        if not changed:
            raise OperationError(
                "nothing to record",
                [
                    Problem(
                        "identity",
                        "give at least one of name, contact, birth date",
                        hint="give the name, contact or birth date",
                    )
                ],
            )
        if birth_date is not None:
            not_after(birth_date, self.context.now().date(), "birth_date")
        with self._unit("identity") as unit:
            participant = unit.participant(reference)
            if birth_date is not None:
                self._plausible_birth(participant, birth_date)
            identity = unit.session.get(Identity, participant.id)
            if identity is None:
                identity = Identity(participant_id=participant.id, updated_at=unit.now)
                unit.session.add(identity)
            for field in changed:
                value = given[field]
                text = value.isoformat() if isinstance(value, dt.date) else str(value)
                sealed = self.context.vault.seal(text, f"identity:{participant.id}:{field}")
                setattr(identity, f"{field}_sealed", sealed)
            identity.updated_at = unit.now
            unit.audit(
                "identity.set",
                "participant",
                participant.study_id or participant.screening_number,
                new={"fields": changed},
            )

    def _plausible_birth(self, participant: Participant, birth_date: dt.date) -> None:
        """A date of birth must give an age at screening that the protocol's ``age``
        question allows (a year of 1800 for 1980 gives 226)."""
        question = next((q for q in self.protocol.eligibility.questions if q.id == "age"), None)
        if question is None:
            return
        screened = participant.screened_at.date()
        age = (
            screened.year
            - birth_date.year
            - ((screened.month, screened.day) < (birth_date.month, birth_date.day))
        )
        low, high = question.minimum, question.maximum
        if (low is not None and age < low) or (high is not None and age > high):
            raise OperationError(
                "the date of birth is not plausible",
                [
                    Problem(
                        "birth_date",
                        f"gives an age of {age} at screening, outside the protocol's "
                        f"{low:g} to {high:g} years"
                        if low is not None and high is not None
                        else f"gives an age of {age} at screening, outside the protocol's range",
                        birth_date.isoformat(),
                        "check the year",
                    )
                ],
            )

    def identity(self, reference: str) -> IdentityView:
        """Open a person's identifiers (audited: who looked, and when)."""
        with self._unit("identity") as unit:
            participant = unit.participant(reference)
            identity = unit.session.get(Identity, participant.id)
            opened: dict[str, str | None] = dict.fromkeys(IDENTITY_FIELDS)
            if identity is not None:
                for field in IDENTITY_FIELDS:
                    sealed = getattr(identity, f"{field}_sealed")
                    if sealed is not None:
                        opened[field] = self.context.vault.open(
                            sealed, f"identity:{participant.id}:{field}"
                        )
            unit.audit(
                "identity.read",
                "participant",
                participant.study_id or participant.screening_number,
            )
            birth = opened["birth_date"]
            return IdentityView(
                opened["name"], opened["contact"], dt.date.fromisoformat(birth) if birth else None
            )

    def consent(self, reference: str, version: str, consent_date: dt.date) -> None:
        """Record consent on paper (form version, date, and who took it: the acting user).

        When the protocol declares consent documents, the version must be one of them.
        """
        version = require_text(version, "version", "consent form version")
        plan = self.protocol.consent
        if plan is not None and plan.document(version) is None:
            raise OperationError(
                "unknown consent version",
                [
                    Problem(
                        "version",
                        "is not a version the protocol declares",
                        version,
                        "versions: " + ", ".join(plan.versions()),
                    )
                ],
            )
        with self._unit("consent") as unit:
            participant = unit.participant(reference)
            require_eligible(participant, reference)
            not_after(consent_date, unit.now.date(), "consent_date")
            if consent_date < participant.screened_at.date():
                raise OperationError(
                    "consent before screening",
                    [
                        Problem(
                            "consent_date",
                            "must not be before the screening date "
                            f"({participant.screened_at.date().isoformat()})",
                            consent_date.isoformat(),
                            "check the date",
                        )
                    ],
                )
            unit.session.add(
                Consent(
                    participant_id=participant.id,
                    version=version,
                    consent_date=consent_date,
                    taken_by=unit.scope.id,
                    recorded_at=unit.now,
                    method="paper",
                )
            )
            unit.audit(
                "consent.record",
                "participant",
                participant.screening_number,
                new={"version": version, "date": consent_date.isoformat()},
            )

    def enrol(self, reference: str) -> str:
        """Enrol an eligible, consented person; return their new study id."""
        with self._unit("enrol") as unit:
            participant = unit.participant(reference)
            if participant.study_id is not None:
                raise OperationError(
                    "already enrolled",
                    [Problem("participant", "is enrolled", participant.study_id, "nothing to do")],
                )
            consented = unit.session.execute(
                select(Consent.id).where(Consent.participant_id == participant.id)
            ).first()
            if participant.eligibility != "eligible" or consented is None:
                missing = (
                    "eligible screening" if participant.eligibility != "eligible" else "consent"
                )
                raise OperationError(
                    "cannot enrol",
                    [
                        Problem(
                            "participant",
                            f"enrolment needs {missing}",
                            reference,
                            "screen and consent first",
                        )
                    ],
                )
            site = unit.session.get_one(Site, participant.site_id)
            enrolled_here = unit.session.execute(
                select(func.count())
                .select_from(Participant)
                .where(Participant.site_id == site.id, Participant.study_id.is_not(None))
            ).scalar_one()
            participant.study_id = f"{site.code}-{enrolled_here + 1:04d}"
            participant.enrolled_at = unit.now
            unit.audit(
                "participant.enrol",
                "participant",
                participant.screening_number,
                new={"study_id": participant.study_id},
            )
            return participant.study_id

    def withdraw(self, reference: str, kind: str, reason: str, effective_date: dt.date) -> None:
        """Record that a participant stopped treatment, withdrew consent, or was lost."""
        reason = require_text(reason, "reason", "reason")
        if kind not in WITHDRAWAL_KINDS:
            raise OperationError(
                "unknown kind of withdrawal",
                [Problem("kind", "is not allowed", kind, ", ".join(WITHDRAWAL_KINDS))],
            )
        with self._unit("withdraw") as unit:
            participant = unit.enrolled(reference)
            not_after(effective_date, unit.now.date(), "effective_date")
            not_before_consent(unit.session, participant.id, effective_date, "effective_date")
            earlier = (
                unit.session.execute(
                    select(Withdrawal.kind).where(Withdrawal.participant_id == participant.id)
                )
                .scalars()
                .all()
            )
            if kind in earlier or (set(earlier) & {"withdrew_consent", "lost_to_follow_up"}):
                raise OperationError(
                    "already recorded",
                    [
                        Problem(
                            "participant",
                            "already has: " + ", ".join(earlier),
                            participant.study_id,
                            "a participant leaves once",
                        )
                    ],
                )
            unit.session.add(
                Withdrawal(
                    participant_id=participant.id,
                    kind=kind,
                    reason=reason,
                    effective_date=effective_date,
                    recorded_by=unit.scope.id,
                    recorded_at=unit.now,
                )
            )
            unit.audit(
                f"participant.{kind}",
                "participant",
                str(participant.study_id),
                new={"kind": kind, "effective_date": effective_date.isoformat()},
                reason=reason,
            )

    def participants(self) -> list[ParticipantView]:
        """Everyone screened at your sites, with where they stand."""
        with self._unit("view", write=False) as unit:
            codes = unit.site_codes()
            rows = unit.session.execute(unit.scope.visible(_LISTED)).all()
            return [
                ParticipantView(number, study_id, codes[site_id], status)
                for number, study_id, site_id, status in rows
            ]

    def participant(self, reference: str) -> ParticipantView:
        """One participant at your sites, by study id or screening number, as
        :meth:`participants` lists them ("unknown participant" for anyone it does not list)."""
        with self._unit("view", write=False) as unit:
            found = unit.participant(reference)
            number, study_id, site_id, status = unit.session.execute(
                _LISTED.where(Participant.id == found.id)
            ).one()
            return ParticipantView(number, study_id, unit.site_codes()[site_id], status)

    def participant_counts(self) -> dict[str, dict[str, int]]:
        """Site code → status → participants screened at your sites (counted in the
        database: the statuses :meth:`participants` shows, without listing everyone)."""
        with self._unit("view", write=False) as unit:
            codes = unit.site_codes()
            listed = unit.scope.visible(
                select(Participant.site_id, _STATUS.label("status"))
            ).subquery()
            rows = unit.session.execute(
                select(listed.c.site_id, listed.c.status, func.count()).group_by(
                    listed.c.site_id, listed.c.status
                )
            ).all()
            counts: dict[str, dict[str, int]] = {}
            for site_id, status, count in rows:
                counts.setdefault(codes[site_id], {})[status] = int(count)
            return counts


def _status() -> Any:
    """Where a participant stands, as SQL: a withdrawal kind when they have one (those that
    end follow-up first, then in alphabetical order), else randomized, enrolled, consented,
    or the eligibility screening found."""
    ending = sorted(set(WITHDRAWAL_KINDS) & set(FOLLOW_UP_ENDS))
    kinds = [*ending, *sorted(set(WITHDRAWAL_KINDS) - set(ending))]

    def exists(table: Any, *conditions: Any) -> Any:
        return (
            select(table.participant_id)
            .where(table.participant_id == Participant.id, *conditions)
            .exists()
        )

    return case(
        *((exists(Withdrawal, Withdrawal.kind == kind), literal(kind)) for kind in kinds),
        (exists(Allocation), literal("randomized")),
        (Participant.study_id.is_not(None), literal("enrolled")),
        (exists(Consent), literal("consented")),
        else_=Participant.eligibility,
    )


_STATUS = _status()
_LISTED = select(
    Participant.screening_number, Participant.study_id, Participant.site_id, _STATUS
).order_by(Participant.screening_number)
"""Each participant's screening number, study id, site id and status, in order."""


def require_eligible(participant: Participant, reference: str) -> None:
    """Refuse consent for someone whose screening did not find them eligible."""
    if participant.eligibility != "eligible":
        raise OperationError(
            "not eligible",
            [
                Problem(
                    "participant",
                    f"screening says {participant.eligibility}; only eligible people are consented",
                    reference,
                    "complete or correct screening first",
                )
            ],
        )
