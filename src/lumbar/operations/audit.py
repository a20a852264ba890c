"""Reading the audit trail: its records, narrowed by who, what, when and which participant.

Checking the trail (:meth:`~lumbar.operations.trial.Trial.verify_audit`) says whether it
is intact; this says what it holds, for a monitor's or statistician's review. Both need
the ``audit`` permission, and reading the records needs all sites too (a record names no
site, so one bound to some sites could not be kept from the others'). The records hold
no arm in plain text (a randomization is recorded with a keyed code of the arm, a
session with a keyed code of its content), so a blinded reviewer reads them without
learning any arm; the keyed row images, of use only to the verifier, are left out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from lumbar.errors import AccessError, OperationError, Problem
from lumbar.operations.context import Service
from lumbar.store.schema import AuditRecord, Participant

__all__ = ["MAX_AUDIT_PAGE", "AuditRecordView", "AuditRecords", "AuditService"]

MAX_AUDIT_PAGE = 500
"""The most records one call returns: a page of a review, never the whole trail at once."""


@dataclass(frozen=True)
class AuditRecordView:
    """One audit record as a reviewer reads it (the chain's links and row images left out)."""

    seq: int
    at: dt.datetime
    actor: str
    origin: str | None
    action: str
    entity: str
    entity_id: str
    old: str | None
    """The values before, as canonical JSON (None when nothing was replaced)."""
    new: str | None
    reason: str | None


@dataclass(frozen=True)
class AuditRecords:
    """One page of audit records, newest first."""

    records: tuple[AuditRecordView, ...]
    offset: int
    limit: int
    more: bool
    """Older records match beyond this page."""


class AuditService(Service):
    """The audit trail's records, for review."""

    def audit_records(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
        participant: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> AuditRecords:
        """Audit records, newest first, narrowed by each filter given.

        ``actor``: the user name exactly. ``action``: an action (``staff.add``) or a family
        of them (``staff``: every ``staff.*``). ``since`` and ``until``: dates (UTC),
        both included. ``participant``: a study id or screening number; the records about
        that participant (their screening, enrolment, randomization, questionnaires,
        sessions and adverse events).
        """
        problems = []
        if offset < 0:
            problems.append(Problem("offset", "must be 0 or more", offset, "e.g. 0"))
        if not 1 <= limit <= MAX_AUDIT_PAGE:
            problems.append(
                Problem("limit", f"must be from 1 to {MAX_AUDIT_PAGE}", limit, "e.g. 50")
            )
        if since is not None and until is not None and since > until:
            problems.append(
                Problem("until", "must not be before the first date", until, f"{since} or later")
            )
        if problems:
            raise OperationError("the audit records cannot be listed so", problems)
        where: list[ColumnElement[bool]] = []
        if actor:
            where.append(AuditRecord.actor == actor.strip())
        if action:
            name = action.strip()
            where.append(
                or_(
                    AuditRecord.action == name,
                    AuditRecord.action.startswith(name + ".", autoescape=True),
                )
            )
        if since is not None:
            where.append(AuditRecord.at >= _midnight(since))
        if until is not None:
            where.append(AuditRecord.at < _midnight(until + dt.timedelta(days=1)))
        with self._unit("audit", write=False) as unit:
            if not unit.scope.all_sites:
                # A record names no site: one bound to some sites could not be kept from
                # the others' participants, so the trail is read by trial-wide staff only.
                raise AccessError(
                    "the audit trail covers every site",
                    [
                        Problem(
                            "sites",
                            "reading audit records needs access to all sites",
                            hint="ask an admin or a trial-wide monitor",
                        )
                    ],
                )
            if participant:
                where.append(_about(unit.session, participant.strip()))
            rows = unit.session.execute(
                select(
                    AuditRecord.seq,
                    AuditRecord.at,
                    AuditRecord.actor,
                    AuditRecord.origin,
                    AuditRecord.action,
                    AuditRecord.entity,
                    AuditRecord.entity_id,
                    AuditRecord.old,
                    AuditRecord.new,
                    AuditRecord.reason,
                )
                .where(*where)
                .order_by(AuditRecord.seq.desc())
                .offset(offset)
                .limit(limit + 1)
            ).all()
            records = tuple(
                AuditRecordView(
                    row.seq,
                    row.at,
                    row.actor,
                    row.origin,
                    row.action,
                    row.entity,
                    row.entity_id,
                    row.old,
                    row.new,
                    row.reason,
                )
                for row in rows[:limit]
            )
            return AuditRecords(records, offset, limit, len(rows) > limit)


def _about(session: Session, reference: str) -> ColumnElement[bool]:
    """The records about one participant, known by study id or screening number: those
    written before enrolment name the screening number, later ones the study id."""
    found = session.execute(
        select(Participant.screening_number, Participant.study_id).where(
            or_(Participant.study_id == reference, Participant.screening_number == reference)
        )
    ).first()
    names = {reference} if found is None else {str(name) for name in found if name}
    return or_(
        *(
            or_(
                (AuditRecord.entity == "participant") & (AuditRecord.entity_id == name),
                # questionnaires: STUDY-ID/visit/instrument
                AuditRecord.entity_id.startswith(name + "/", autoescape=True),
                # sessions and adverse events name their participant in the payload
                # (canonical JSON: no spaces)
                AuditRecord.new.contains(f'"participant":"{name}"', autoescape=True),
            )
            for name in sorted(names)
        )
    )


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
