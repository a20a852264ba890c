"""A participant consenting again on their phone, through a consent link.

::

    principal = authenticate_consent(context, token)     # the link in the address
    link = ConsentLink(context, principal)
    link.open()                                          # the document (hash checked)
    link.submit({"understood": True}, "Ada Lovelace")    # once; the link is used up

A consent link (issued by :meth:`ConsentService.issue_consent_link
<lumbar.operations.consent.ConsentService.issue_consent_link>`) is bound to one
participant and one version of the consent document. :class:`ConsentLink` takes no
participant or version from its caller, only from the token, and re-checks the token in
the same transaction as every read and write; a link that opens nothing raises
:class:`~lumbar.operations.authentication.SurveyLinkRefusedError` with its reason, as a
survey link does. The consent is checked and stored by the same code as at the site
(method ``participant_link``, no member of staff), with audit records naming
``participant:<study id>`` by ``consent token <id>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from lumbar.operations.authentication import (
    SurveyLinkRefusedError,
    SurveyRefusal,
    find_participant_link,
)
from lumbar.operations.consent import (
    CONSENT_TOKEN_PREFIX,
    ConsentRecord,
    ConsentText,
    _record,
    read_consent_document,
)
from lumbar.operations.context import Context, Transaction
from lumbar.operations.links import note_opened
from lumbar.operations.schedule import follow_up_ended_on
from lumbar.store.schema import ConsentToken, Participant

__all__ = ["ConsentLink", "ConsentPrincipal", "authenticate_consent"]


@dataclass(frozen=True)
class ConsentPrincipal:
    """A participant holding a consent link: one participant, one version, nothing else."""

    token_id: int
    participant_id: int
    study_id: str
    version: str

    @property
    def actor(self) -> str:
        return f"participant:{self.study_id}"

    @property
    def origin(self) -> str:
        return f"consent token {self.token_id}"


def _refused(
    reason: SurveyRefusal, rule: str, hint: str = "", **more: Any
) -> SurveyLinkRefusedError:
    """A consent link's refusal, worded for consent on the participant's page."""
    if hint:
        more["hint"] = hint
    return SurveyLinkRefusedError(reason, rule, link="consent", **more)


def authenticate_consent(context: Context, token: str) -> ConsentPrincipal:
    """The participant and version a consent link opens; refused (with the reason, for
    the page to explain) when it opens nothing."""
    forged = _refused("forged", "is not a valid consent link")
    with context.db.read() as session:
        row, study_id = find_participant_link(
            session, ConsentToken, token, CONSENT_TOKEN_PREFIX, forged
        )
        principal = ConsentPrincipal(row.id, row.participant_id, study_id, row.version)
        _in_force(session, principal, context.now())
        return principal


def _in_force(session: Session, principal: ConsentPrincipal, now: dt.datetime) -> ConsentToken:
    row = session.get(ConsentToken, principal.token_id)
    if (
        row is None
        or row.participant_id != principal.participant_id
        or row.version != principal.version
    ):
        raise _refused("forged", "is not a valid consent link")
    if row.revoked_at is not None:
        raise _refused(
            "revoked", "was withdrawn by the study team", "use the newest link you were sent"
        )
    if row.used_at is not None:
        raise _refused("used", "was used already", "contact the study team if something is wrong")
    if row.expires_at <= now:
        raise _refused(
            "expired",
            f"expired on {row.expires_at.strftime('%Y-%m-%d %H:%M')} UTC",
            "ask the study team for a new link",
            day=row.expires_at.date(),
        )
    return row


class ConsentLink:
    """A participant consenting again through their link: their one version, once."""

    def __init__(self, context: Context, principal: ConsentPrincipal):
        self.context = context
        self.principal = principal

    def document(self) -> ConsentText:
        """The document the link asks consent to (read and checked against its hash)."""
        with self._open(write=False):
            pass
        return read_consent_document(
            self.context.protocol, self.context.consent_documents, self.principal.version
        )

    def open(self) -> ConsentText:
        """:meth:`document`, noting (once, audited) that the participant opened the link."""
        document = read_consent_document(
            self.context.protocol, self.context.consent_documents, self.principal.version
        )
        with self._open(write=True) as (work, token, participant):
            new = {"study_id": participant.study_id, "version": token.version}
            note_opened(work, token, "consent_token.open", new)
        return document

    def submit(self, answers: Mapping[str, Any], typed_name: str) -> ConsentRecord:
        """Record the consent; the link is then used up."""
        with self._open(write=True) as (work, token, participant):
            document = read_consent_document(
                self.context.protocol, self.context.consent_documents, token.version
            )
            row = _record(
                self.context,
                work,
                participant,
                document,
                answers,
                typed_name,
                method="participant_link",
                taken_by=None,
                token_id=token.id,
            )
            token.used_at = work.now
            work.audit(
                "consent_token.use",
                "consent_token",
                token.id,
                new={"study_id": participant.study_id, "version": token.version},
            )
            return ConsentRecord(
                row.id,
                row.version,
                row.consent_date,
                row.recorded_at,
                row.method,
                None,
                row.document_sha256,
                dict(row.answers or {}),
                True,
            )

    @contextmanager
    def _open(self, *, write: bool) -> Iterator[tuple[Transaction, ConsentToken, Participant]]:
        principal = self.principal
        with self.context.transaction(principal.actor, principal.origin, write=write) as work:
            token = _in_force(work.session, principal, work.now)
            participant = work.session.get(Participant, token.participant_id)
            assert participant is not None  # a foreign key
            plan = self.context.protocol.consent
            current = plan.current(work.now.date()) if plan is not None else None
            if current is None or current.version != token.version:
                raise _refused(
                    "revoked",
                    "asks consent to a version no longer in effect",
                    "ask the study team for a new link",
                )
            if follow_up_ended_on(work.session, participant.id) is not None:
                raise _refused(
                    "closed",
                    "asks nothing now: follow-up has ended",
                    "contact the study team",
                    summary="the consent link is closed",
                )
            yield work, token, participant
