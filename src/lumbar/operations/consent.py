"""Electronic consent: a declared document shown, questions answered, a typed name, a digest.

::

    trial.consent_document()                                   # the version in effect
    trial.record_electronic_consent("S00001", "1.0", {"understood": True, ...}, "Ada Lovelace")
    trial.consents("SEA-0001")          # the history, each electronic one verified
    trial.reconsent_due()               # enrolled, in follow-up, consented to an older version
    link = trial.issue_consent_link("SEA-0001")                # staff: to the phone
    # the phone: lumbar.operations.consent_link (authenticate_consent, ConsentLink)

The protocol declares each version of the consent document (:mod:`lumbar.protocol.consent`):
its label, the day it takes effect, its file and the SHA-256 of the file's bytes. The file
is read from the consent documents folder the trial is opened with
(:attr:`Context.consent_documents <lumbar.operations.context.Context.consent_documents>`)
and is shown, or consented to, only when its bytes match the declared digest.

A consent is confirmed with the participant's typed name, which must match the name held
in the vault (compared without regard to case, accents or spacing). The typed name is an
identifier: it is kept only sealed with the identity key, and no audit value, log or
export holds it. Each electronic consent keeps a digest, an HMAC under the audit key over
the participant, version, document digest, date and time, method, member of staff, link,
answers and the sealed name; :meth:`ConsentService.consents` recomputes it, so a row
changed outside lumbar shows as not verified (and the audit trail's row images catch it
too).

When a newer version takes effect, everyone enrolled whose follow-up has not ended and
whose latest consent is to an older version is due to consent again
(:meth:`ConsentService.reconsent_due`): at the site, or on their phone through a consent
link, which works like a survey link (a random token kept as a SHA-256 digest, one
participant and one version, expires, revoked when issued again, used once).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lumbar.errors import OperationError, Problem
from lumbar.operations.context import Context, Service, Transaction, Unit
from lumbar.operations.enrolment import require_eligible
from lumbar.operations.links import (
    add_link,
    link_status,
    live_links,
    participant_links,
    revoke_links,
)
from lumbar.operations.schedule import follow_up_ended_on
from lumbar.protocol import ConsentDocument, ConsentQuestion, Protocol, shipped_consent_documents
from lumbar.store.schema import (
    Consent,
    ConsentToken,
    Identity,
    Participant,
    Site,
    Staff,
    Withdrawal,
)
from lumbar.store.vault import Vault

__all__ = [
    "CONSENT_LINK_DAYS",
    "CONSENT_TOKEN_PREFIX",
    "ConsentCheck",
    "ConsentLinkView",
    "ConsentRecord",
    "ConsentService",
    "ConsentText",
    "NewConsentToken",
    "ReconsentDue",
    "normalise_name",
    "read_consent_document",
]

CONSENT_TOKEN_PREFIX = "lmc_"
CONSENT_LINK_DAYS = 14
"""How long a consent link stays open. ASSUMPTION: two weeks, as long as the shortest
follow-up reminder cycle of the reference protocol; change it for your own trial."""

METHODS = ("paper", "site", "participant_link")


def normalise_name(text: str) -> str:
    """A name as compared: accents dropped, case folded, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(plain.casefold().split())


@dataclass(frozen=True)
class ConsentText:
    """A version of the consent document, read from its file and checked against its hash."""

    version: str
    effective: dt.date
    sha256: str
    text: str
    questions: tuple[ConsentQuestion, ...]


@dataclass(frozen=True)
class ConsentRecord:
    """One consent as the participant's history shows it (no name)."""

    id: int
    version: str
    consent_date: dt.date
    recorded_at: dt.datetime
    method: str
    taken_by: str | None
    document_sha256: str | None
    answers: Mapping[str, bool]
    verified: bool | None
    """Electronic: whether the row's digest checks (None: on paper, nothing to check; or
    the audit key is not at hand)."""


@dataclass(frozen=True)
class ConsentCheck:
    """Every electronic consent at the user's sites checked: how many, and which failed."""

    checked: int
    failed: tuple[tuple[str, int], ...]
    """(study id or screening number, consent id) of each row whose digest does not check."""

    @property
    def intact(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class ReconsentDue:
    """An enrolled participant in follow-up whose latest consent is to an older version."""

    study_id: str
    site: str
    consented_version: str
    consented_on: dt.date
    due_version: str
    link: str | None
    """Where their newest consent link stands (``sent``, ``opened``, ``expired``...), if any."""


@dataclass(frozen=True)
class NewConsentToken:
    """A consent link's token, shown this once (to be sent to the participant)."""

    id: int
    study_id: str
    version: str
    token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ConsentLinkView:
    """A consent link as staff see it: never its token, only its prefix and where it stands."""

    id: int
    study_id: str
    version: str
    prefix: str
    status: str
    expires_at: dt.datetime
    opened_at: dt.datetime | None
    used_at: dt.datetime | None
    revoked_at: dt.datetime | None


# ---------------------------------------------------------------------- the document


def read_consent_document(protocol: Protocol, folder: Path | None, version: str) -> ConsentText:
    """The declared ``version`` read from ``folder``; refused unless its bytes match the
    protocol's SHA-256."""
    document = _declared(protocol, version)
    if folder is None and (shipped_consent_documents() / document.file).is_file():
        # lumbar's own example documents (the reference protocol's); the hash below still
        # decides whether the file is the one declared.
        folder = shipped_consent_documents()
    if folder is None:
        raise OperationError(
            "no consent documents folder",
            [
                Problem(
                    "consent_documents",
                    "electronic consent shows the trial's own document file, and no folder "
                    "of consent documents was given",
                    hint="start lumbar with --consent-documents DIR (the folder holding "
                    f"{document.file})",
                )
            ],
        )
    path = folder / document.file
    try:
        data = path.read_bytes()
    except OSError:
        raise OperationError(
            "cannot read the consent document",
            [
                Problem(
                    "consent_documents",
                    f"has no readable file {document.file} (version {version})",
                    str(folder),
                    "put the document the protocol declares in that folder",
                )
            ],
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != document.sha256:
        raise OperationError(
            "the consent document does not match the protocol",
            [
                Problem(
                    "document",
                    f"{document.file} has SHA-256 {actual}, the protocol declares "
                    f"{document.sha256} for version {version}",
                    document.file,
                    "restore the file the protocol declares; a changed document is a new "
                    "version, declared with its own hash",
                )
            ],
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OperationError(
            "cannot read the consent document",
            [Problem("document", "is not UTF-8 text", document.file, "save it as UTF-8")],
        ) from None
    return ConsentText(
        document.version, document.effective, document.sha256, text, document.questions
    )


def _declared(protocol: Protocol, version: str) -> ConsentDocument:
    plan = protocol.consent
    if plan is None:
        raise OperationError(
            "no electronic consent",
            [
                Problem(
                    "version",
                    "the protocol declares no consent documents",
                    version,
                    "record consent on paper (a version and a date)",
                )
            ],
        )
    document = plan.document(version)
    if document is None:
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
    return document


def _current(protocol: Protocol, today: dt.date) -> ConsentDocument:
    plan = protocol.consent
    current = plan.current(today) if plan is not None else None
    if plan is None or current is None:
        raise OperationError(
            "no consent version in effect",
            [
                Problem(
                    "version",
                    "the protocol declares no consent document in effect today"
                    if plan is not None
                    else "the protocol declares no consent documents",
                    today.isoformat(),
                    "record consent on paper, or declare a consent document",
                )
            ],
        )
    return current


def checked_answers(
    questions: tuple[ConsentQuestion, ...], answers: Mapping[str, Any]
) -> dict[str, bool]:
    """Every question answered yes or no, each required one yes; refused naming each
    question that is not."""
    problems = []
    known = {question.id for question in questions}
    for key in sorted(set(answers) - known):
        problems.append(Problem(key, "is not a question of this consent document", key))
    checked: dict[str, bool] = {}
    for question in questions:
        value = answers.get(question.id)
        if not isinstance(value, bool):
            problems.append(
                Problem(question.id, "must be answered yes or no", value, question.text)
            )
            continue
        if question.required and not value:
            problems.append(
                Problem(
                    question.id,
                    "must be answered yes to consent",
                    "no",
                    f"{question.text} (without it the person cannot take part)",
                )
            )
            continue
        checked[question.id] = value
    if problems:
        raise OperationError("the consent answers are not complete", problems)
    return checked


# ---------------------------------------------------------------------- recording


def _digest(key: Vault, row: Consent) -> str:
    """The HMAC under the audit key over everything an electronic consent says."""
    content = {
        "participant": row.participant_id,
        "version": row.version,
        "document_sha256": row.document_sha256,
        "consent_date": row.consent_date.isoformat(),
        "recorded_at": row.recorded_at.astimezone(dt.UTC).isoformat(),
        "method": row.method,
        "taken_by": row.taken_by,
        "token": row.token_id,
        "answers": row.answers,
        "name": hashlib.sha256(row.name_sealed or b"").hexdigest(),
    }
    return key.mac(
        json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


def _verified(key: Vault | None, row: Consent) -> bool | None:
    if row.method == "paper" or key is None:
        return None
    return row.digest is not None and _digest(key, row) == row.digest


def _record(
    context: Context,
    work: Transaction,
    participant: Participant,
    document: ConsentText,
    answers: Mapping[str, Any],
    typed_name: str,
    *,
    method: str,
    taken_by: int | None,
    token_id: int | None,
) -> Consent:
    """Check the answers and the typed name, then store the consent with its digest."""
    checked = checked_answers(document.questions, answers)
    identity = work.session.get(Identity, participant.id)
    vault = context.vault
    if identity is None or identity.name_sealed is None:
        raise OperationError(
            "no name to confirm against",
            [
                Problem(
                    "typed_name",
                    "the participant's name is not recorded in the vault",
                    hint="record their name first ('lumbar participant identity', or the "
                    "identifiers page)",
                )
            ],
        )
    held = vault.open(identity.name_sealed, f"identity:{participant.id}:name")
    if not normalise_name(typed_name) or normalise_name(typed_name) != normalise_name(held):
        raise OperationError(
            "the typed name does not match",
            [
                Problem(
                    "typed_name",
                    "must be the participant's name as the study holds it (case, accents "
                    "and spacing do not matter)",
                    hint="type the full name as given to the study team",
                )
            ],
        )
    latest = _latest(work, participant.id)
    if latest is not None and latest.version == document.version:
        raise OperationError(
            "already consented",
            [
                Problem(
                    "version",
                    f"the participant consented to this version on "
                    f"{latest.consent_date.isoformat()}",
                    document.version,
                    "nothing to do",
                )
            ],
        )
    row = Consent(
        participant_id=participant.id,
        version=document.version,
        consent_date=work.now.date(),
        taken_by=taken_by,
        recorded_at=work.now,
        method=method,
        document_sha256=document.sha256,
        answers=checked,
        name_sealed=vault.seal(typed_name.strip(), f"consent:{participant.id}:name"),
        token_id=token_id,
    )
    work.session.add(row)
    work.session.flush()
    row.digest = _digest(context.key("audit"), row)
    work.audit(
        "consent.record",
        "participant",
        participant.study_id or participant.screening_number,
        new={
            "version": document.version,
            "date": row.consent_date.isoformat(),
            "method": method,
            "document_sha256": document.sha256,
            "answers": checked,
            "digest": row.digest,
        },
    )
    return row


def _latest(work: Transaction, participant_id: int) -> Consent | None:
    return work.session.execute(
        select(Consent)
        .where(Consent.participant_id == participant_id)
        .order_by(Consent.recorded_at.desc(), Consent.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _follow_up_over(work: Transaction, participant: Participant, reference: str) -> None:
    if follow_up_ended_on(work.session, participant.id) is not None:
        raise OperationError(
            "follow-up has ended",
            [
                Problem(
                    "participant",
                    "withdrew or was lost to follow-up: nothing to consent to",
                    reference,
                )
            ],
        )


class ConsentService(Service):
    """Electronic consent, its history and check, and asking for consent again."""

    def consent_document(self, version: str | None = None) -> ConsentText:
        """A version of the consent document (the one in effect today by default), read
        from the consent documents folder and checked against the protocol's hash."""
        with self._unit("consent", write=False) as unit:
            today = unit.now.date()
        if version is None:
            version = _current(self.protocol, today).version
        return read_consent_document(self.protocol, self.context.consent_documents, version)

    def record_electronic_consent(
        self, reference: str, version: str, answers: Mapping[str, Any], typed_name: str
    ) -> ConsentRecord:
        """Record a consent given at the site on a staff device (the acting user present).

        The version must be the one in effect; its document must match the protocol's
        hash; every question answered (required ones yes); the typed name must match the
        name in the vault. Refused otherwise, naming the field, and nothing is stored.
        """
        version = (version or "").strip()
        _declared(self.protocol, version)
        with self._unit("consent") as unit:
            participant = unit.participant(reference)
            current = _current(self.protocol, unit.now.date())
            if version != current.version:
                raise OperationError(
                    "not the version in effect",
                    [
                        Problem(
                            "version",
                            f"consent is given to the version in effect ({current.version})",
                            version,
                            f"use version {current.version}",
                        )
                    ],
                )
            require_eligible(participant, reference)
            _follow_up_over(unit, participant, reference)
            document = read_consent_document(self.protocol, self.context.consent_documents, version)
            row = _record(
                self.context,
                unit,
                participant,
                document,
                answers,
                typed_name,
                method="site",
                taken_by=unit.scope.id,
                token_id=None,
            )
            return self._view(row, unit.scope.username)

    def consents(self, reference: str) -> list[ConsentRecord]:
        """A participant's consents, oldest first; each electronic one's digest checked."""
        with self._unit("view", write=False) as unit:
            participant = unit.participant(reference)
            rows = unit.session.execute(
                select(Consent, Staff.username)
                .outerjoin(Staff, Staff.id == Consent.taken_by)
                .where(Consent.participant_id == participant.id)
                .order_by(Consent.recorded_at, Consent.id)
            ).all()
            return [self._view(row, username) for row, username in rows]

    def verify_consents(self) -> ConsentCheck:
        """Recompute the digest of every electronic consent at your sites."""
        key = self.context.key("audit")
        with self._unit("consent", write=False) as unit:
            rows = unit.session.execute(
                unit.scope.visible(
                    select(Consent, Participant.study_id, Participant.screening_number)
                    .join(Participant, Participant.id == Consent.participant_id)
                    .where(Consent.method != "paper")
                    .order_by(Consent.id)
                )
            ).all()
            failed = tuple(
                (study_id or number, row.id)
                for row, study_id, number in rows
                if not _verified(key, row)
            )
            return ConsentCheck(len(rows), failed)

    def reconsent_due(self) -> list[ReconsentDue]:
        """Everyone enrolled at your sites, in follow-up, whose latest consent is to a
        version older than the one in effect, by study id."""
        with self._unit("consent", write=False) as unit:
            plan = self.protocol.consent
            current = plan.current(unit.now.date()) if plan is not None else None
            if plan is None or current is None:
                return []
            order = {version: index for index, version in enumerate(plan.versions())}
            ended = select(Withdrawal.participant_id).where(
                Withdrawal.kind.in_(("withdrew_consent", "lost_to_follow_up"))
            )
            rows = unit.session.execute(
                unit.scope.visible(
                    select(Participant, Site.code)
                    .join(Site, Site.id == Participant.site_id)
                    .where(Participant.study_id.is_not(None), Participant.id.not_in(ended))
                    .order_by(Participant.study_id)
                )
            ).all()
            due = []
            for participant, site in rows:
                latest = _latest(unit, participant.id)
                if latest is None:
                    continue
                if order.get(latest.version, -1) >= order[current.version]:
                    continue
                link = unit.session.execute(
                    select(ConsentToken)
                    .where(
                        ConsentToken.participant_id == participant.id,
                        ConsentToken.version == current.version,
                    )
                    .order_by(ConsentToken.id.desc())
                    .limit(1)
                ).scalar_one_or_none()
                due.append(
                    ReconsentDue(
                        str(participant.study_id),
                        site,
                        latest.version,
                        latest.consent_date,
                        current.version,
                        None if link is None else link_status(link, unit.now),
                    )
                )
            return due

    def issue_consent_link(self, reference: str) -> NewConsentToken:
        """A one-time link for an enrolled participant to consent again, on their phone, to
        the version in effect; it expires after :data:`CONSENT_LINK_DAYS` days. Issuing
        again revokes the earlier link."""
        with self._unit("consent") as unit:
            participant = unit.enrolled(reference)
            _follow_up_over(unit, participant, reference)
            current = _current(self.protocol, unit.now.date())
            latest = _latest(unit, participant.id)
            if latest is not None and latest.version == current.version:
                raise OperationError(
                    "already consented",
                    [
                        Problem(
                            "participant",
                            f"consented to the version in effect ({current.version}) on "
                            f"{latest.consent_date.isoformat()}",
                            reference,
                            "nothing to do",
                        )
                    ],
                )
            study_id = str(participant.study_id)
            _revoke_live(unit, participant.id, study_id, "reissued")
            expires_at = unit.now + dt.timedelta(days=CONSENT_LINK_DAYS)
            row, token = add_link(
                unit,
                ConsentToken,
                CONSENT_TOKEN_PREFIX,
                "consent_token.issue",
                {"study_id": study_id, "version": current.version},
                participant_id=participant.id,
                version=current.version,
                expires_at=expires_at,
            )
            return NewConsentToken(row.id, study_id, current.version, token, expires_at)

    def revoke_consent_link(self, reference: str) -> int:
        """Revoke the participant's unused consent links; returns how many were revoked."""
        with self._unit("consent") as unit:
            participant = unit.enrolled(reference)
            return _revoke_live(
                unit,
                participant.id,
                str(participant.study_id),
                "revoked",
                refusal=Problem(
                    "participant", "has no unused consent link", reference, "issue one first"
                ),
            )

    def consent_links(self, reference: str) -> list[ConsentLinkView]:
        """A participant's consent links, oldest first, with where each stands."""
        with self._unit("consent", write=False) as unit:
            participant = unit.enrolled(reference)
            return [
                ConsentLinkView(
                    row.id,
                    str(participant.study_id),
                    row.version,
                    row.prefix,
                    link_status(row, unit.now),
                    row.expires_at,
                    row.opened_at,
                    row.used_at,
                    row.revoked_at,
                )
                for row in participant_links(unit, ConsentToken, participant.id)
            ]

    def _view(self, row: Consent, username: str | None) -> ConsentRecord:
        key = self.context.key("audit") if self.context.has_key("audit") else None
        return ConsentRecord(
            row.id,
            row.version,
            row.consent_date,
            row.recorded_at,
            row.method,
            username,
            row.document_sha256,
            dict(row.answers or {}),
            _verified(key, row),
        )


def _revoke_live(
    unit: Unit, participant_id: int, study_id: str, reason: str, *, refusal: Problem | None = None
) -> int:
    """Revoke the participant's unused, unrevoked consent links (audited)."""
    rows = live_links(unit, ConsentToken, participant_id)
    new = {"study_id": study_id, "reason": reason}
    return revoke_links(unit, rows, "consent_token.revoke", new, refusal=refusal)
