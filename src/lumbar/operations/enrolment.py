"""Screening, identifiers, consent and enrolment.

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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from lumbar.errors import OperationError, Problem
from lumbar.operations.context import Unit, not_after, require_text
from lumbar.operations.people import PeopleOperations
from lumbar.protocol import check_screening_answers, evaluate_eligibility
from lumbar.store.schema import Consent, Identity, Participant, ScreeningReason, Site

__all__ = ["EnrolmentOperations", "IdentityView", "ScreeningView"]

IDENTITY_FIELDS = ("name", "contact", "birth_date")


@dataclass(frozen=True)
class ScreeningView:
    """The outcome of screening one person."""

    screening_number: str
    status: str
    reasons: tuple[str, ...]
    unanswered: tuple[str, ...]


@dataclass(frozen=True)
class IdentityView:
    """Direct identifiers, opened from the vault for a user allowed to see them."""

    name: str | None
    contact: str | None
    birth_date: dt.date | None


class EnrolmentOperations(PeopleOperations):
    """Screening, identity, consent and enrolment."""

    def screen(
        self, site: str, answers: Mapping[str, Any], *, synthetic: bool = False
    ) -> ScreeningView:
        """Screen one person at ``site``: store the answers, the verdict and every reason."""
        with self._unit("screen") as unit:
            site_row = self._site(unit, site)
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
        """Add or correct screening answers before enrolment, with a reason; re-evaluate."""
        reason = require_text(reason, "reason", "reason for the change")
        with self._unit("screen") as unit:
            participant = self._participant(unit, reference)
            if participant.study_id is not None:
                raise OperationError(
                    "already enrolled",
                    [
                        Problem(
                            "participant",
                            "screening answers are fixed once a person is enrolled",
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
                        "identity", "give at least one of name, contact, birth date", hint="--name"
                    )
                ],
            )
        if birth_date is not None:
            not_after(birth_date, self._now().date(), "birth_date")
        with self._unit("identity") as unit:
            participant = self._participant(unit, reference)
            identity = unit.session.get(Identity, participant.id)
            if identity is None:
                identity = Identity(participant_id=participant.id, updated_at=unit.now)
                unit.session.add(identity)
            for field in changed:
                value = given[field]
                text = value.isoformat() if isinstance(value, dt.date) else str(value)
                sealed = self.vault.seal(text, f"identity:{participant.id}:{field}")
                setattr(identity, f"{field}_sealed", sealed)
            identity.updated_at = unit.now
            unit.audit(
                "identity.set",
                "participant",
                participant.study_id or participant.screening_number,
                new={"fields": changed},
            )

    def identity(self, reference: str) -> IdentityView:
        """Open a person's identifiers (audited: who looked, and when)."""
        with self._unit("identity") as unit:
            participant = self._participant(unit, reference)
            identity = unit.session.get(Identity, participant.id)
            opened: dict[str, str | None] = dict.fromkeys(IDENTITY_FIELDS)
            if identity is not None:
                for field in IDENTITY_FIELDS:
                    sealed = getattr(identity, f"{field}_sealed")
                    if sealed is not None:
                        opened[field] = self.vault.open(
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
        """Record consent (form version, date, and who took it: the acting user)."""
        version = require_text(version, "version", "consent form version")
        with self._unit("consent") as unit:
            participant = self._participant(unit, reference)
            if participant.eligibility != "eligible":
                raise OperationError(
                    "not eligible",
                    [
                        Problem(
                            "participant",
                            f"screening says {participant.eligibility}; only eligible people "
                            "are consented",
                            reference,
                            "complete or correct screening first",
                        )
                    ],
                )
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
                    taken_by=unit.actor.id,
                    recorded_at=unit.now,
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
            participant = self._participant(unit, reference)
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
