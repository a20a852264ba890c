"""What every operation shares: the open trial, the principal, the clock and units of work.

::

    context = Context.open("trial.db")              # once: engine, key, protocol parsed
    trial = Trial(context, Principal.operator("carol"))   # per command or per request: cheap

A :class:`Context` is the open trial (database engine, the keys at hand, parsed
protocol, clock), made once and shared; the web app keeps one for its whole
life. A :class:`Principal` is who acts: a member of staff whose identity the
command line takes on the operator's word (``Principal.operator``), or one
proven by a password or token (:mod:`lumbar.operations.authentication`). Each
operation runs in one :class:`Unit` of work: it loads the principal's
:class:`~lumbar.operations.scope.Scope` (a web request's principal brings it, read
with their session: :attr:`Principal.scope`), checks the permission, does its reads
and writes, and appends its audit records in the same transaction. A refused
operation raises before anything is committed, so nothing already stored is
lost or changed. Work done for someone who is not a member of staff (lumbar
itself recording a failed sign-in, a participant answering through a survey
link) runs in a plain :class:`Transaction` that appends audit records the same way.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import bindparam, event, func, inspect, or_, select
from sqlalchemy.orm import Session

from lumbar.errors import AccessError, OperationError, Problem, StoreError
from lumbar.operations.scope import Scope, load_scope
from lumbar.protocol import Protocol, parse_protocol
from lumbar.store.audit import AuditRows, append_audit, write_anchor
from lumbar.store.database import Database, default_key_file
from lumbar.store.lease import RESTORE_PATIENCE, Lease, being_restored, write_allowed
from lumbar.store.schema import Allocation, AuditHead, Consent, Participant, Site, TrialRecord
from lumbar.store.vault import KEY_ENV, KEY_USES, Keys, Vault, load_keys

if TYPE_CHECKING:
    from argon2 import PasswordHasher

__all__ = [
    "ANCHOR_ENV",
    "EARLIEST_DATE",
    "SYSTEM_ACTOR",
    "Clock",
    "Context",
    "Principal",
    "Service",
    "Transaction",
    "Unit",
    "arm_context",
    "no_trial",
    "not_after",
    "not_before",
    "not_before_consent",
    "open_arm",
    "read_protocol",
    "require_text",
    "utc_now",
]

Clock = Callable[[], dt.datetime]
"""Returns the current time, timezone-aware. Passed in, so tests can fix the time."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


SYSTEM_ACTOR = "lumbar"
"""The name audit records carry for writes made by lumbar itself (creating the trial)."""


@dataclass(frozen=True)
class Principal:
    """Who acts, and how that was established (the ``origin`` every audit record keeps)."""

    username: str
    origin: str
    """``cli <os user>@<host>`` for the operator's command line; ``web``; ``token <id>``."""
    permissions: frozenset[str] | None = None
    """The most this principal may do, when less than their role allows: the permissions
    an API token carries. None: everything the role allows. The scope enforces it."""
    second_factor_due: bool = False
    """Signed in with a password alone where the protocol requires a second factor
    (``access.second_factor``): they may only enrol one (units opened with
    ``second_factor_setup``) until they sign in with it."""
    scope: Scope | None = field(default=None, compare=False, repr=False)
    """Their scope, read in the transaction that checked their web session, so that the
    units of work of that one request use it instead of reading it again; None: each unit
    reads it. Only :func:`~lumbar.operations.authentication.resume_web_session` sets it,
    and the web app makes its principal anew at every request: a deactivation, a revoked
    session or a change of role, sites or grants takes effect at the next request."""

    @classmethod
    def operator(cls, username: str) -> Principal:
        """A user named on the command line of a direct database connection.

        Whoever holds the database and its key is an operator: the name is taken on
        their word, and every audit record says so, with the operating-system user
        and host the command ran as.
        """
        try:
            os_user = getpass.getuser()
        except (KeyError, OSError):
            os_user = "unknown"
        return cls(username, f"cli {os_user}@{socket.gethostname()}"[:255])


ANCHOR_ENV = "LUMBAR_ANCHOR"
"""Where the anchor file is (the newest audit head written from this machine); by default
``<database file>.head`` beside a SQLite file, and none for a server database."""


def default_anchor(database: Database) -> Path | None:
    """The anchor file of ``database``: ``LUMBAR_ANCHOR``, else beside a SQLite file."""
    if os.environ.get(ANCHOR_ENV):
        return Path(os.environ[ANCHOR_ENV])
    path = database.sqlite_path
    if path is None or str(path) == ":memory:":
        return None
    return Path(f"{path}.head")


class Context:
    """An open trial database, shared by every :class:`~lumbar.operations.Trial` made on it."""

    def __init__(
        self,
        database: Database,
        keys: Keys,
        protocol: Protocol,
        clock: Clock,
        *,
        password_hasher: PasswordHasher | None = None,
        anchor: Path | None = None,
    ):
        self.db = database
        self.keys = keys
        self._vaults = {name: keys.vault(name) for name in KEY_USES}
        self.protocol = protocol
        self.clock = clock
        self.anchor = anchor
        """The anchor file the newest audit head is recorded in after each write (or None)."""
        self.password_hasher = password_hasher
        """How passwords are hashed; None: argon2id with lumbar's parameters
        (:data:`lumbar.operations.authentication.PASSWORD_PARAMETERS`)."""

    @classmethod
    def open(
        cls,
        url: str | None,
        *,
        key_file: Path | None = None,
        keys: Keys | None = None,
        clock: Clock = utc_now,
        password_hasher: PasswordHasher | None = None,
        lease: bool = True,
    ) -> Self:
        """Open an existing trial; each key at hand must be the trial's own.

        Keys missing from the key file are allowed: what they guard is refused when asked
        for (no identity key: identifiers; no randomization key: arms; no audit key: writes).
        A database whose schema is older or newer than this lumbar's is refused, saying
        which (:meth:`~lumbar.store.Database.require_current_schema`): an older one is
        brought up to date with ``lumbar upgrade`` (:mod:`lumbar.operations.upgrades`).
        The open trial holds the trial's shared lease (:mod:`lumbar.store.lease`; on
        PostgreSQL checked at opening and by every write) until :meth:`close`, so a
        restore cannot replace the database under it; ``lease=False`` only for a
        restore's own look at a copy.
        """
        database = Database(url)
        held: Lease | None = None
        try:
            if not database.is_initialised():
                raise no_trial(database, given=bool(url))
            if lease:
                held = Lease.hold(database)
                if database.backend == "sqlite":
                    # A connection made before the lease may be to a file a restore has
                    # since replaced: every connection from now on is made under it.
                    database.dispose()
            database.require_current_schema()
            if keys is None:
                keys = load_keys(key_file or default_key_file(database.url))
            with database.read() as session:
                record = session.execute(select(TrialRecord)).scalar_one()
                keys.confirm(record)
                protocol = parse_protocol(record.protocol_yaml, f"trial {record.id} protocol")
                synthetic = bool(record.synthetic)
        except BaseException:
            if held is not None:
                held.release()
            database.dispose()
            raise
        context = cls(
            database,
            keys,
            protocol,
            clock,
            password_hasher=password_hasher,
            anchor=default_anchor(database),
        )
        context.lease = held
        context._leased = lease
        context.synthetic = synthetic
        return context

    synthetic = False
    """Whether the trial's data are synthetic (a demo or a test): every page says so."""
    consent_documents: Path | None = None
    """The folder holding the consent document files the protocol declares (``lumbar
    serve --consent-documents DIR``); None: electronic consent cannot show a document."""
    lease: Lease | None = None
    """The shared lease this open trial holds (None: a restore's own look at a copy)."""
    _leased = False
    """Whether this trial works under the lease: one used again after :meth:`close`
    takes it again at its next unit of work."""

    def key(self, name: str) -> Vault:
        """The vault of key ``name`` (identity, randomization, audit); StoreError when missing."""
        vault = self._vaults[name]
        if vault is None:
            raise StoreError(
                f"the {name} key is not at hand",
                [
                    Problem(
                        f"key {name}",
                        f"is needed here: it guards {KEY_USES[name]}",
                        hint=f"use a key file that holds the '{name}:' line, or set {KEY_ENV}",
                    )
                ],
            )
        return vault

    @property
    def vault(self) -> Vault:
        """The identity key's vault (identifiers and second-factor secrets)."""
        return self.key("identity")

    def has_key(self, name: str) -> bool:
        return self._vaults[name] is not None

    def close(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()
        self.db.dispose()

    def _lease_again(self) -> None:
        with _LEASE_AGAIN:
            if self.lease is None:
                self.lease = Lease.hold(self.db)
                if self.db.backend == "sqlite":
                    self.db.dispose()

    def now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware times")
        return now

    @contextmanager
    def unit(
        self,
        principal: Principal,
        permission: str,
        *,
        write: bool = True,
        per_participant: bool = False,
        second_factor_setup: bool = False,
    ) -> Iterator[Unit]:
        """A unit of work for ``principal``, who must hold ``permission``.

        ``per_participant``: the unit writes about one participant only, whom it looks up
        with :meth:`Unit.participant` (which then locks that participant's row), so on
        PostgreSQL it may run beside other such units (see :meth:`_session`).
        ``second_factor_setup``: the unit enrols the principal's own second factor, the one
        thing a principal whose second factor is due may do.
        """
        if principal.second_factor_due and not second_factor_setup:
            raise AccessError(
                "second factor needed",
                [
                    Problem(
                        f"user {principal.username}",
                        "the protocol requires your role to sign in with a second factor",
                        hint="enrol one (your account page, or 'lumbar user totp enrol'), "
                        "then sign in with its code",
                    )
                ],
            )
        if principal.scope is not None:
            principal.scope.require(permission)  # refused before any session is opened
        audit = self.key("audit") if write else None
        with self._session(write, per_participant=per_participant) as session:
            scope = principal.scope
            if scope is None:
                scope = load_scope(session, principal.username, principal.permissions)
                scope.require(permission)
            unit = Unit(session, scope, principal.origin, self.now(), audit)
            unit.lock_participant = per_participant and write and self.db.backend != "sqlite"
            yield unit
            head = unit.finish()
        self._anchor(head)

    @contextmanager
    def transaction(self, actor: str, origin: str, *, write: bool = True) -> Iterator[Transaction]:
        """Work for someone who is not (yet) a member of staff: no scope, no permission.

        For lumbar recording a sign-in attempt, or a participant answering through a
        survey link; the caller alone decides what the work may touch.
        """
        audit = self.key("audit") if write else None
        with self._session(write) as session:
            work = Transaction(session, actor, origin, self.now(), audit)
            yield work
            head = work.finish()
        self._anchor(head)

    def _anchor(self, head: tuple[int, str] | None) -> None:
        if head is not None and self.anchor is not None:
            # The write is committed; an anchor not written only weakens rollback detection.
            with suppress(OSError):
                write_anchor(self.anchor, self.key("audit"), head)

    @contextmanager
    def _session(self, write: bool, *, per_participant: bool = False) -> Iterator[Session]:
        """A session; for a write, the locks that order it among other writers.

        SQLite: every write begins with ``BEGIN IMMEDIATE``, so writers take turns.
        PostgreSQL: a write holds the trial's write lock (:meth:`Database.write`): shared by
        ``per_participant`` units, exclusive for every other write, which also locks the
        audit head at once. A per-participant unit locks its participant's row when it looks
        them up, and the audit head last, when it appends its records: two such units about
        different participants run side by side, and the head is held only while the records
        are appended and committed. Each lock is taken in that order (trial, participant,
        stratum counter, head) and nothing is locked after the head, so writers never
        deadlock; the audit records' order is the order of the commits. The first statement
        of every PostgreSQL write also asks whether a restore holds the trial.
        """
        if self.lease is None and self._leased:
            self._lease_again()
        if not write or self.db.backend == "sqlite":
            with self.db.write() if write else self.db.read() as session:
                yield session
            return
        statement = select(write_allowed())
        if not per_participant:
            statement = statement.where(AuditHead.id == 1).with_for_update()
        # A restore that finds the trial in use lets go at once: a write that met one
        # waits a moment before it is refused, so it is refused only by a restore that
        # goes ahead.
        deadline = time.monotonic() + RESTORE_PATIENCE
        while True:
            with suppress(_TryAgainError), self.db.write(shared=per_participant) as session:
                if session.execute(statement).scalar_one():
                    yield session
                    return
                if time.monotonic() >= deadline:
                    raise being_restored(session.connection(), self.db.display_url)
                raise _TryAgainError  # rolls back, letting go of the write lock
            time.sleep(0.05)


class _TryAgainError(Exception):
    """Ends a unit of work that must start again (rolled back, never seen outside)."""


class Transaction:
    """One database transaction whose audit records name one actor and origin.

    Records are appended when the work ends (:meth:`finish`), the last one carrying the
    images of every data row the work wrote, so the trail covers the data.
    """

    def __init__(
        self,
        session: Session,
        actor: str,
        origin: str,
        now: dt.datetime,
        audit_key: Vault | None = None,
    ):
        self.session = session
        self.actor = actor
        """Who the audit records name; work that proves who someone is (a sign-in) sets it
        to them once proven."""
        self.origin = origin
        self.now = now
        self.rows = AuditRows()
        """The data rows this work wrote (gathered from each flush; plain SQL writes add
        theirs with :meth:`AuditRows.add_where`)."""
        self._audit_key = audit_key
        self._records: list[dict[str, Any]] = []
        session.info["lumbar_work"] = self

    def audit(
        self,
        action: str,
        entity: str,
        entity_id: str | int,
        *,
        old: Mapping[str, Any] | None = None,
        new: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        """Add an audit record; it is appended to the chain when the work ends."""
        if self._audit_key is None:
            raise RuntimeError("a read-only unit of work cannot write audit records")
        self._records.append(
            {
                "action": action,
                "entity": entity,
                "entity_id": entity_id,
                "old": old,
                "new": new,
                "reason": reason,
                "actor": self.actor,
            }
        )

    def finish(self) -> tuple[int, str] | None:
        """Append the records (the last with the row images) and move the head; the new head."""
        if self._audit_key is None:
            self.session.info.pop("lumbar_work", None)
            return None
        self.session.flush()  # the last rows reach the database (and self.rows)
        self.session.info.pop("lumbar_work", None)
        images = self.rows.images(self.session, self._audit_key)
        if images is not None and not self._records:
            self.audit("data.write", "data", "rows")
        if not self._records:
            return None
        return append_audit(
            self.session,
            self._audit_key,
            self._records,
            at=self.now,
            origin=self.origin,
            rows=images,
        )


@event.listens_for(Session, "after_flush")
def _gather_rows(session: Session, _context: object) -> None:
    """Note every row a unit of work's flush inserted, changed or deleted."""
    work = session.info.get("lumbar_work")
    if not isinstance(work, Transaction):
        return
    for instance in (*session.new, *session.dirty, *session.deleted):
        state = inspect(instance)
        mapper = state.mapper
        if instance in session.dirty and not session.is_modified(instance):
            continue
        work.rows.add(mapper.local_table, mapper.primary_key_from_instance(instance))


class Unit(Transaction):
    """One unit of work: a session, the acting user's scope, and the moment it runs.

    The lookups every area needs live here, each restricted to the user's sites in SQL.
    """

    def __init__(
        self,
        session: Session,
        scope: Scope,
        origin: str,
        now: dt.datetime,
        audit_key: Vault | None = None,
    ):
        super().__init__(session, scope.username, origin, now, audit_key)
        self.scope = scope
        self.lock_participant = False
        """Lock the participant :meth:`participant` finds (a per-participant unit of work
        on PostgreSQL: see :meth:`Context._session`)."""
        self._site_codes: dict[int, str] | None = None

    # ------------------------------------------------------------------ lookups

    def participant(self, reference: str) -> Participant:
        """A participant by study id or screening number, at one of the user's sites.

        Another site's participant gets the same answer as one who does not exist.
        """
        query = self.scope.visible(_PARTICIPANT)
        if self.lock_participant:
            query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE
        participant = self.session.execute(query, {"reference": reference}).scalar_one_or_none()
        if participant is None:
            raise OperationError(
                "unknown participant",
                [
                    Problem(
                        "participant",
                        "is not a study id or screening number of a participant at your sites",
                        reference,
                        "check the id ('lumbar participants' lists them)",
                    )
                ],
            )
        return participant

    def enrolled(self, reference: str) -> Participant:
        """A participant who has a study id."""
        participant = self.participant(reference)
        if participant.study_id is None:
            raise OperationError(
                "not enrolled",
                [
                    Problem(
                        "participant",
                        "is not enrolled yet",
                        reference,
                        "enrol first",
                    )
                ],
            )
        return participant

    def allocation(self, participant: Participant) -> Allocation:
        """The participant's randomization; OperationError when there is none yet."""
        allocation = self.session.get(Allocation, participant.id)
        if allocation is None:
            raise OperationError(
                "not randomized",
                [
                    Problem(
                        "participant",
                        "is not randomized yet",
                        participant.study_id,
                        "randomize first",
                    )
                ],
            )
        return allocation

    def sites(self, codes: Sequence[str]) -> list[Site]:
        """Sites by code (any site of the trial: for staff administration)."""
        rows = []
        for code in codes:
            site = self.session.execute(select(Site).where(Site.code == code)).scalar_one_or_none()
            if site is None:
                raise OperationError(
                    "unknown site",
                    [
                        Problem(
                            "site",
                            "is not a site of this trial",
                            code,
                            "add it with 'lumbar site add'",
                        )
                    ],
                )
            rows.append(site)
        return rows

    def site(self, code: str) -> Site:
        """One of the user's own sites."""
        (site,) = self.sites([code])
        if not self.scope.sees_site(site.id):
            raise OperationError(
                "not your site",
                [Problem("site", "is not one of your sites", code, "work at a site you belong to")],
            )
        return site

    def site_codes(self) -> dict[int, str]:
        """Site id → code, for the user's sites (read once a unit)."""
        if self._site_codes is None:
            self._site_codes = dict(
                self.session.execute(self.scope.visible_sites(select(Site.id, Site.code))).all()
            )
        return self._site_codes


class Service:
    """The base of each area's operations: the shared context and the acting principal."""

    def __init__(self, context: Context, principal: Principal):
        self.context = context
        self.principal = principal

    @property
    def protocol(self) -> Protocol:
        return self.context.protocol

    def _unit(
        self,
        permission: str,
        *,
        write: bool = True,
        per_participant: bool = False,
        second_factor_setup: bool = False,
    ) -> AbstractContextManager[Unit]:
        return self.context.unit(
            self.principal,
            permission,
            write=write,
            per_participant=per_participant,
            second_factor_setup=second_factor_setup,
        )

    def _arm(self, allocation: Allocation) -> str:
        """The arm a participant was assigned, opened with the randomization key."""
        return open_arm(self.context.key("randomization"), allocation)

    def _shown_arm(self, unit: Unit, allocation: Allocation) -> str | None:
        """The arm for an unblinded user; None for a blinded one (who needs no randomization
        key: nothing is opened for them)."""
        return self._arm(allocation) if unit.scope.unblinded else None


def arm_context(participant_id: int, slot_id: int) -> str:
    """Where an assigned arm is sealed: bound to the participant and the slot taken, so an
    arm copied to another participant's row, or a slot swapped, does not open."""
    return f"allocation:{participant_id}:{slot_id}"


def open_arm(vault: Vault, allocation: Allocation) -> str:
    """The assigned arm of ``allocation`` (StoreError when altered or moved)."""
    return vault.open(
        allocation.arm_sealed, arm_context(allocation.participant_id, allocation.slot_id)
    )


_TEXT = re.compile(r"\S")

_LEASE_AGAIN = threading.Lock()
"""Serializes taking the lease again for a trial used after it was closed."""

_PARTICIPANT = select(Participant).where(
    or_(
        Participant.study_id == bindparam("reference"),
        Participant.screening_number == bindparam("reference"),
    )
)


def no_trial(database: Database, *, given: bool = True) -> StoreError:
    """The error for a database that holds no trial (``given``: the caller named one)."""
    if not given:
        return StoreError(
            "there is no trial here",
            [
                Problem(
                    "db",
                    "was not given, and the default database holds no trial",
                    database.display_url,
                    "give the trial's database (or set LUMBAR_DB), "
                    "or create a trial with 'lumbar init PROTOCOL'",
                )
            ],
        )
    return StoreError(
        "there is no trial in this database",
        [
            Problem(
                "db",
                "holds no trial",
                database.display_url,
                "give the trial's database, or create one with 'lumbar init PROTOCOL'",
            )
        ],
    )


def read_protocol(url: str | None) -> Protocol:
    """The protocol of the trial at ``url``, read without a user or the keys.

    A protocol is not secret (it holds no participant and no allocation), so help
    texts and answer templates may show it to anyone who can reach the database.
    Asking never creates a SQLite file.
    """
    database = Database(url)
    try:
        if not database.is_initialised():
            raise no_trial(database, given=bool(url))
        with database.read() as session:
            # Two columns every schema has: a help text reads an older trial's protocol too.
            record = session.execute(select(TrialRecord.id, TrialRecord.protocol_yaml)).one()
            return parse_protocol(record.protocol_yaml, f"trial {record.id} protocol")
    finally:
        database.dispose()


EARLIEST_DATE = dt.date(1900, 1, 1)
"""No clinical date or date of birth of a living participant comes before this: an earlier
one is a typing error (1800 for 1980, a two-digit year read as 19xx)."""


def not_after(day: dt.date, today: dt.date, field: str) -> None:
    """Refuse a clinical date later than today (a typo, or a record made in advance), or one
    before :data:`EARLIEST_DATE`."""
    not_before(day, EARLIEST_DATE, field, "1900")
    if day > today:
        raise OperationError(
            "date in the future",
            [
                Problem(
                    field,
                    f"must not be after today ({today.isoformat()})",
                    day.isoformat(),
                    "check the date",
                )
            ],
        )


def not_before(day: dt.date, earliest: dt.date, field: str, what: str) -> None:
    """Refuse a date before ``earliest`` (``what`` names it: "consent", "randomization")."""
    if day < earliest:
        raise OperationError(
            f"date before {what}",
            [
                Problem(
                    field,
                    f"must not be before {what} ({earliest.isoformat()})",
                    day.isoformat(),
                    "check the date",
                )
            ],
        )


def not_before_consent(session: Session, participant_id: int, day: dt.date, field: str) -> None:
    """Refuse a record of the trial dated before the participant's first consent."""
    first: dt.date | None = (
        session.connection().execute(_FIRST_CONSENT, {"participant": participant_id}).scalar_one()
    )
    if first is not None:
        not_before(day, first, field, "consent")


_FIRST_CONSENT = select(func.min(Consent.consent_date)).where(
    Consent.participant_id == bindparam("participant")
)


def require_text(value: str, where: str, what: str) -> str:
    """A required piece of text (a reason, a description): refuse it empty."""
    if not _TEXT.search(value or ""):
        raise OperationError(
            f"{what} is required", [Problem(where, "must not be empty", value, f"give the {what}")]
        )
    return value.strip()
