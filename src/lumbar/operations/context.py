"""What every operation shares: the open trial, the principal, the clock and units of work.

::

    context = Context.open("trial.db")              # once: engine, key, protocol parsed
    trial = Trial(context, Principal.operator("carol"))   # per command or per request: cheap

A :class:`Context` is the open trial (database engine, vault key, parsed
protocol, clock), made once and shared; the web app keeps one for its whole
life. A :class:`Principal` is who acts: a member of staff whose identity the
command line takes on the operator's word (``Principal.operator``), or one
proven by a password or token (:mod:`lumbar.operations.authentication`). Each
operation runs in one :class:`Unit` of work: it loads the principal's
:class:`~lumbar.operations.scope.Scope`, checks the permission, does its reads
and writes, and appends its audit records in the same transaction. A refused
operation raises before anything is committed, so nothing already stored is
lost or changed. Work done for someone who is not a member of staff (lumbar
itself recording a failed sign-in, a participant answering through a survey
link) runs in a plain :class:`Transaction` that appends audit records the same way.
"""

from __future__ import annotations

import datetime as dt
import getpass
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from lumbar.errors import OperationError, Problem, StoreError
from lumbar.operations.scope import Scope, load_scope
from lumbar.protocol import Protocol, parse_protocol
from lumbar.store.audit import append_audit, move_audit_head
from lumbar.store.database import Database, default_key_file
from lumbar.store.schema import Allocation, AuditHead, Consent, Participant, Site, TrialRecord
from lumbar.store.vault import Vault, load_key

if TYPE_CHECKING:
    from argon2 import PasswordHasher

__all__ = [
    "EARLIEST_DATE",
    "SYSTEM_ACTOR",
    "Clock",
    "Context",
    "Principal",
    "Service",
    "Transaction",
    "Unit",
    "no_trial",
    "not_after",
    "not_before",
    "not_before_consent",
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


class Context:
    """An open trial database, shared by every :class:`~lumbar.operations.Trial` made on it."""

    def __init__(
        self,
        database: Database,
        vault: Vault,
        protocol: Protocol,
        clock: Clock,
        *,
        password_hasher: PasswordHasher | None = None,
    ):
        self.db = database
        self.vault = vault
        self.protocol = protocol
        self.clock = clock
        self.password_hasher = password_hasher
        """How passwords are hashed; None: argon2id with lumbar's parameters
        (:data:`lumbar.operations.authentication.PASSWORD_PARAMETERS`)."""

    @classmethod
    def open(
        cls,
        url: str | None,
        *,
        key_file: Path | None = None,
        key: bytes | None = None,
        clock: Clock = utc_now,
        password_hasher: PasswordHasher | None = None,
    ) -> Self:
        """Open an existing trial; the vault key must be the trial's own."""
        database = Database(url)
        try:
            if not database.is_initialised():
                raise no_trial(database, given=bool(url))
            vault = Vault(
                key if key is not None else load_key(key_file or default_key_file(database.url))
            )
            with database.read() as session:
                record = session.execute(select(TrialRecord)).scalar_one()
                vault.confirm(record.key_check)
                protocol = parse_protocol(record.protocol_yaml, f"trial {record.id} protocol")
        except BaseException:
            database.dispose()
            raise
        return cls(database, vault, protocol, clock, password_hasher=password_hasher)

    def close(self) -> None:
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
    ) -> Iterator[Unit]:
        """A unit of work for ``principal``, who must hold ``permission``.

        ``per_participant``: the unit writes about one participant only, whom it looks up
        with :meth:`Unit.participant` (which then locks that participant's row), so on
        PostgreSQL it may run beside other such units (see :meth:`_session`).
        """
        with self._session(write, per_participant=per_participant) as session:
            scope = load_scope(session, principal.username, principal.permissions)
            scope.require(permission)
            unit = Unit(session, scope, principal.origin, self.now())
            unit.lock_participant = per_participant and write and self.db.backend != "sqlite"
            yield unit
            unit.append_audit()

    @contextmanager
    def transaction(self, actor: str, origin: str, *, write: bool = True) -> Iterator[Transaction]:
        """Work for someone who is not (yet) a member of staff: no scope, no permission.

        For lumbar recording a sign-in attempt, or a participant answering through a
        survey link; the caller alone decides what the work may touch.
        """
        with self._session(write) as session:
            work = Transaction(session, actor, origin, self.now())
            yield work
            work.append_audit()

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
        deadlock; the audit records' order is the order of the commits.
        """
        context = self.db.write(shared=per_participant) if write else self.db.read()
        with context as session:
            if write and self.db.backend != "sqlite" and not per_participant:
                session.execute(select(AuditHead.seq).where(AuditHead.id == 1).with_for_update())
            yield session


class Transaction:
    """One database transaction whose audit records name one actor and origin.

    :meth:`audit` collects the records; :meth:`append_audit` appends them to the chain
    when the work ends, locking the audit head then, last.
    """

    def __init__(self, session: Session, actor: str, origin: str, now: dt.datetime):
        self.session = session
        self.actor = actor
        """Who the audit records name; work that proves who someone is (a sign-in) sets it
        to them once proven."""
        self.origin = origin
        self.now = now
        self._records: list[dict[str, Any]] = []

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
        """Record what this work did; appended to the chain when the work ends."""
        self._records.append(
            {
                "actor": self.actor,
                "action": action,
                "entity": entity,
                "entity_id": entity_id,
                "old": None if old is None else dict(old),
                "new": None if new is None else dict(new),
                "reason": reason,
            }
        )

    def append_audit(self) -> None:
        """Append the collected records in one go and move the head once (the head row is
        locked by the first append, if no earlier statement of this work locked it)."""
        if not self._records:
            return
        self.session.flush()
        head = None
        for record in self._records:
            head = append_audit(
                self.session,
                head=head,
                at=self.now,
                origin=self.origin,
                move_head=False,
                **record,
            )
        self._records.clear()
        assert head is not None
        move_audit_head(self.session, head)


class Unit(Transaction):
    """One unit of work: a session, the acting user's scope, and the moment it runs.

    The lookups every area needs live here, each restricted to the user's sites in SQL.
    """

    def __init__(self, session: Session, scope: Scope, origin: str, now: dt.datetime):
        super().__init__(session, scope.username, origin, now)
        self.scope = scope
        self.lock_participant = False
        """Lock the participant :meth:`participant` finds (a per-participant unit of work
        on PostgreSQL: see :meth:`Context._session`)."""

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
        """Site id → code, for the user's sites."""
        return dict(
            self.session.execute(self.scope.visible_sites(select(Site.id, Site.code))).all()
        )


class Service:
    """The base of each area's operations: the shared context and the acting principal."""

    def __init__(self, context: Context, principal: Principal):
        self.context = context
        self.principal = principal

    @property
    def protocol(self) -> Protocol:
        return self.context.protocol

    def _unit(
        self, permission: str, *, write: bool = True, per_participant: bool = False
    ) -> AbstractContextManager[Unit]:
        return self.context.unit(
            self.principal, permission, write=write, per_participant=per_participant
        )


_TEXT = re.compile(r"\S")

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
    """The protocol of the trial at ``url``, read without a user or the vault key.

    A protocol is not secret (it holds no participant and no allocation), so help
    texts and answer templates may show it to anyone who can reach the database.
    Asking never creates a SQLite file.
    """
    database = Database(url)
    try:
        if not database.is_initialised():
            raise no_trial(database, given=bool(url))
        with database.read() as session:
            record = session.execute(select(TrialRecord)).scalar_one()
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
