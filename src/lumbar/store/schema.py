"""The tables of a trial database (SQLAlchemy 2, typed ORM).

One database holds one trial. Only :mod:`lumbar.operations` writes to these
tables, and every write also appends to ``audit`` in the same transaction.

Conventions:

- record timestamps (``*_at``) are timezone-aware UTC; clinical dates
  (consent, session, onset, completion) are calendar dates;
- direct identifiers live only in ``identity``, encrypted (see :mod:`lumbar.store.vault`);
- upcoming allocations are encrypted too (``allocation_slot.arm_sealed``), so the
  list is concealed even from someone who reads the database;
- credentials are kept only in a form that does not sign anyone in: passwords as
  argon2id hashes, API and survey tokens as SHA-256 digests, TOTP secrets sealed;
- participant status is not stored: it follows from the facts recorded
  (screening, consent, enrolment, randomization, withdrawal).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AccessGrant",
    "AdverseEvent",
    "Allocation",
    "AllocationSlot",
    "ApiToken",
    "AuditHead",
    "AuditRecord",
    "Base",
    "Consent",
    "ConsentToken",
    "GivenRating",
    "Identity",
    "LoginFailure",
    "Participant",
    "Questionnaire",
    "QuestionnaireAnswer",
    "QuestionnaireScore",
    "ScreeningReason",
    "SessionRating",
    "Site",
    "Staff",
    "StaffSite",
    "StratumCounter",
    "SurveyToken",
    "TreatmentSession",
    "TrialRecord",
    "UTCDateTime",
    "Unblinding",
    "Withdrawal",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(64)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps, the same on SQLite (which keeps no zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy's declared mapping
        dt.datetime: UTCDateTime(),
        dt.date: Date(),
        str: String(255),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class TrialRecord(Base):
    """The one trial this database holds, with its protocol frozen at creation."""

    __tablename__ = "trial"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    protocol_yaml: Mapped[str] = mapped_column(Text)
    protocol_hash: Mapped[str] = mapped_column(String(64))
    protocol_version: Mapped[str] = mapped_column(String(64))
    lumbar_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime]
    allocation_source: Mapped[str] = mapped_column(String(16))
    allocation_seed_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    allocation_digest: Mapped[str] = mapped_column(String(64))
    allocation_length: Mapped[int] = mapped_column(Integer)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    key_check: Mapped[bytes] = mapped_column(LargeBinary)
    """A constant sealed with the identity key: tells the right key from a wrong one."""
    randomization_key_check: Mapped[bytes] = mapped_column(LargeBinary)
    audit_key_check: Mapped[bytes] = mapped_column(LargeBinary)


class Site(Base):
    __tablename__ = "site"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str]
    created_at: Mapped[dt.datetime]


class Staff(Base):
    """A member of staff: a role, the sites they work at, whether they may see arms."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint(
            "role in ('admin', 'coordinator', 'therapist', 'outcome_assessor', "
            "'statistician', 'monitor')",
            name="role",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    unblinded: Mapped[bool] = mapped_column(Boolean)
    may_unblind: Mapped[bool] = mapped_column(Boolean, default=False)
    """Holds the emergency-unblinding grant (see ``access_grant`` for who gave it and why)."""
    all_sites: Mapped[bool] = mapped_column(Boolean)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """An argon2id hash (``$argon2id$...``), never the password; None: no password sign-in."""
    password_changed_at: Mapped[dt.datetime | None]
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The TOTP secret, sealed in the vault for ``totp:<staff id>``."""
    totp_active: Mapped[bool] = mapped_column(Boolean, default=False)
    """Confirmed with a code: sign-in with a password then needs a code too."""
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    """The 30-second time step of the last code accepted: no code is accepted twice."""
    created_at: Mapped[dt.datetime]


class AccessGrant(Base):
    """A grant that lets one person see arms or break the blind: who gave it, to whom, why.

    Never given by someone to themselves; ``countersigned_by`` is a second admin who
    confirmed it (the dashboard lists grants still waiting for one).
    """

    __tablename__ = "access_grant"
    __table_args__ = (
        CheckConstraint("kind in ('unblinded', 'emergency_unblind')", name="kind"),
        CheckConstraint("granted_by <> staff_id", name="not_self"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    granted_at: Mapped[dt.datetime]
    countersigned_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    countersigned_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    revoked_at: Mapped[dt.datetime | None]


class ApiToken(Base):
    """A member of staff's API token: scoped to some permissions, expiring, revocable.

    Only the SHA-256 digest of the token is kept, with a short non-secret prefix
    to find it by; the token itself is shown once, when it is created.
    """

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    permissions: Mapped[list[str]]
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


class WebSession(Base):
    """A member of staff signed in to the web pages: revocable, with idle and absolute limits.

    The browser holds the session token in a cookie; only its SHA-256 digest is kept,
    with a short non-secret prefix to find it by. ``ended_at`` is set when the session
    is signed out, revoked, timed out or its owner loses access; an ended session never
    signs anyone in again.
    """

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    """The absolute limit: the session ends then, however active."""
    last_seen_at: Mapped[dt.datetime]
    """The last request (kept to the minute): the idle limit counts from here."""
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))


class LoginFailure(Base):
    """One failed password sign-in for a user name (known or not): the rate limit counts these.

    ``locked_until`` is set on the failure that locked the name. Rows older than the
    counting window are deleted once they no longer matter.
    """

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]


class StaffSite(Base):
    __tablename__ = "staff_site"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), primary_key=True)


class Participant(Base):
    """Someone screened for the trial; enrolled participants also have a study id."""

    __tablename__ = "participant"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    screening_number: Mapped[str] = mapped_column(String(32), unique=True)
    study_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    screened_at: Mapped[dt.datetime]
    screening_answers: Mapped[dict[str, Any]]
    eligibility: Mapped[str] = mapped_column(String(16))
    enrolled_at: Mapped[dt.datetime | None]
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)


class ScreeningReason(Base):
    """One reason a screened person is ineligible (feeds the CONSORT diagram)."""

    __tablename__ = "screening_reason"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(Text)


class Identity(Base):
    """Direct identifiers, each sealed with authenticated encryption."""

    __tablename__ = "identity"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), primary_key=True)
    name_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    contact_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    birth_date_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime]


class Consent(Base):
    """A consent: on paper (staff record the version and the date), or electronic.

    An electronic consent (``method`` ``site`` or ``participant_link``) also keeps the
    SHA-256 of the document shown, the answers to its questions, the typed name sealed
    with the identity key (an identifier: only in sealed form), and ``digest``, an
    HMAC under the audit key over all of these, so a changed row no longer verifies.
    """

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    consent_date: Mapped[dt.date]
    taken_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    """The member of staff who took (or was present at) the consent; None through a link."""
    recorded_at: Mapped[dt.datetime]
    method: Mapped[str] = mapped_column(String(32), default="paper")
    """``paper``, ``site`` (electronic, on a staff device) or ``participant_link``."""
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    answers: Mapped[dict[str, Any] | None]
    name_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("consent_token.id"))
    digest: Mapped[str | None] = mapped_column(String(64))


class ConsentToken(Base):
    """A participant's link to consent again to one version of the consent document, once.

    Kept like :class:`SurveyToken`: a SHA-256 digest with a non-secret prefix.
    """

    __tablename__ = "consent_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    opened_at: Mapped[dt.datetime | None]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


class AllocationSlot(Base):
    """One position of the concealed allocation list of a stratum."""

    __tablename__ = "allocation_slot"
    __table_args__ = (UniqueConstraint("stratum", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stratum: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer)
    block: Mapped[int] = mapped_column(Integer)
    block_size: Mapped[int] = mapped_column(Integer)
    arm_sealed: Mapped[bytes] = mapped_column(LargeBinary)


class StratumCounter(Base):
    """The next free position of each stratum's list: the row every assignment locks."""

    __tablename__ = "stratum_counter"

    stratum: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_position: Mapped[int] = mapped_column(Integer)


class Allocation(Base):
    """A participant's randomization: the slot taken and the arm it held (sealed with the
    randomization key, bound to the participant and the slot)."""

    __tablename__ = "allocation"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("allocation_slot.id"), unique=True)
    stratum: Mapped[str] = mapped_column(String(255))
    arm_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    randomized_on: Mapped[dt.date]
    randomized_at: Mapped[dt.datetime]
    randomized_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))


class Unblinding(Base):
    __tablename__ = "unblinding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime]


class SurveyToken(Base):
    """A participant's own link: ``kind`` ``survey`` answers one visit's questionnaires
    themselves, once; ``session_rating`` gives their rating before each treatment session,
    through their treatment period (``visit`` is then ``session_rating``).

    Kept as a SHA-256 digest with a non-secret prefix, like :class:`ApiToken`. It opens
    from ``opens_at`` (the visit window's first day) until ``expires_at`` (the day after
    its last); ``draft`` holds answers saved screen by screen and not yet submitted.
    """

    __tablename__ = "survey_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="survey", server_default="survey")
    visit: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[dt.datetime]
    opens_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    draft: Mapped[dict[str, Any] | None]


class Questionnaire(Base):
    """One instrument completed by one participant at one visit."""

    __tablename__ = "questionnaire"
    __table_args__ = (UniqueConstraint("participant_id", "visit", "instrument"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    visit: Mapped[str] = mapped_column(String(64))
    instrument: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    completed_on: Mapped[dt.date]
    window_status: Mapped[str | None] = mapped_column(String(16))
    """``in_window``, ``early`` or ``late`` against the visit's window, set when stored;
    None for the baseline (completed before randomization, which its window counts from)."""
    days_from_target: Mapped[int | None]
    """Days from the visit's target day to ``completed_on`` (negative: before it)."""
    entered_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[dt.datetime]
    edited_at: Mapped[dt.datetime | None]


class QuestionnaireAnswer(Base):
    """The current answer to one item; earlier values are kept in the audit trail."""

    __tablename__ = "questionnaire_answer"

    questionnaire_id: Mapped[int] = mapped_column(ForeignKey("questionnaire.id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)


class QuestionnaireScore(Base):
    """A score computed from the current answers, with how it was obtained."""

    __tablename__ = "questionnaire_score"

    questionnaire_id: Mapped[int] = mapped_column(ForeignKey("questionnaire.id"), primary_key=True)
    score: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    prorated: Mapped[bool] = mapped_column(Boolean)
    missing_items: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)


class TreatmentSession(Base):
    __tablename__ = "treatment_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    session_date: Mapped[dt.date]
    minutes: Mapped[int] = mapped_column(Integer)
    techniques: Mapped[list[str]]
    body_regions: Mapped[list[str]]
    home_care: Mapped[list[str]]
    notes: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[dt.datetime]


class SessionRating(Base):
    """One rating given before a treatment session: an instrument's 0-10 value.

    A row per rating the protocol's ``session_rating`` declares and the participant gave;
    a rating left out has no row.
    """

    __tablename__ = "session_rating"
    __table_args__ = (
        UniqueConstraint("session_id", "instrument"),
        CheckConstraint("value >= 0 AND value <= 10", name="value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("treatment_session.id"), index=True)
    instrument: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(Integer)


class GivenRating(Base):
    """The ratings a participant gave on their own phone before a session, one day's.

    ``pending`` until the therapist logs that day's session for them; then ``attached``
    (the values are copied into :class:`SessionRating` rows of ``session_id``) or
    ``superseded`` (the therapist entered ratings on the tablet, which are the session's;
    the phone's stay here, linked to the session, for the record). One a participant a
    day: giving it again the same day replaces the values while it is pending.
    """

    __tablename__ = "given_rating"
    __table_args__ = (UniqueConstraint("participant_id", "rated_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    rated_on: Mapped[dt.date]
    ratings: Mapped[dict[str, Any]]
    """Instrument → 0-10 value."""
    given_at: Mapped[dt.datetime]
    token_id: Mapped[int] = mapped_column(ForeignKey("survey_token.id"))
    status: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("treatment_session.id"))


class AdverseEvent(Base):
    __tablename__ = "adverse_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    onset_date: Mapped[dt.date]
    severity: Mapped[str] = mapped_column(String(16))
    serious: Mapped[bool] = mapped_column(Boolean)
    relatedness: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    reported_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[dt.datetime]


class Withdrawal(Base):
    """A participant's withdrawal, loss to follow-up or stop of treatment."""

    __tablename__ = "withdrawal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participant.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    effective_date: Mapped[dt.date]
    recorded_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[dt.datetime]


class OutboxMessage(Base):
    """A message queued for someone, written in the same unit of work as what it reports.

    Two kinds of recipient. Staff: a serious adverse event, addressed to the monitors of the
    participant's site (``recipient_role`` and ``site_id``, so a monitor who joins later sees
    it too) on the ``inbox`` channel (shown in lumbar, acknowledged by one of them); the
    payload holds no free text and no identifier, because a message may be read by someone
    blinded. A participant (``recipient_role`` ``participant``): an invitation or reminder
    to answer a follow-up visit on the ``email`` or ``sms`` channel, due at ``due_at``, sent
    by ``lumbar worker`` to the contact sealed in the vault (never copied here).

    A participant's message goes ``queued`` → ``sending`` (claimed by a worker, with
    ``claimed_at`` and ``claimed_by``) → ``sent``, ``skipped`` (``reason``: nothing to ask
    any more) or ``failed`` (``last_error``: the attempts ran out); a failed attempt puts it
    back to ``queued`` until ``next_attempt_at``.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(
            "status in ('queued', 'sending', 'sent', 'skipped', 'failed', 'acknowledged', "
            "'cancelled')",
            name="status",
        ),
        CheckConstraint("channel in ('inbox', 'email', 'sms')", name="channel"),
        CheckConstraint("channel = 'inbox' or participant_id is not null", name="recipient"),
        UniqueConstraint("participant_id", "recipient_role", "subject"),
        Index("ix_outbox_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    recipient_role: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participant.id"))
    subject: Mapped[str] = mapped_column(String(64))
    """What the message is about, as ``<table>:<id>`` (``adverse_event:12``), or for a
    participant's message ``visit:<visit>:<message>`` (``visit:week_10:reminder_1``)."""
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[dt.datetime]
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    due_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(String(64))
    """Why a participant's message was skipped."""
    last_error: Mapped[str | None] = mapped_column(String(255))
    """The last attempt's failure, as the transport put it (never the address)."""


class AuditRecord(Base):
    """One append-only, hash-chained record of a write."""

    __tablename__ = "audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str | None] = mapped_column(String(255))
    """How the actor's identity was established: ``cli <os user>@<host>`` for the operator's
    command line, ``web`` or ``token <id>`` for a verified sign-in (None before lumbar 0.2)."""
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[str | None] = mapped_column(Text)
    """Keyed images of every data row the unit of work wrote (see lumbar.store.audit)."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last sequence number and hash: one row, locked by every write."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(64))
    """HMAC of the head under the audit key: a head reset to an earlier record does not match."""
