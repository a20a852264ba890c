"""What every operation shares: the open trial, the acting user, the clock and units of work.

:class:`TrialContext` is the base of :class:`lumbar.operations.Trial`. Each
operation runs in one unit of work (:meth:`TrialContext._unit`): it loads the
acting user, checks the permission, does its reads and writes, and appends its
audit records in the same transaction. A refused operation raises before
anything is committed, so nothing already stored is lost or changed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from lumbar.errors import AccessError, OperationError, Problem, StoreError
from lumbar.operations.access import Actor, require
from lumbar.protocol import Protocol, parse_protocol
from lumbar.store.audit import append_audit, move_audit_head
from lumbar.store.database import Database, default_key_file
from lumbar.store.schema import AuditHead, Participant, Staff, StaffSite, TrialRecord
from lumbar.store.vault import Vault, load_key

__all__ = [
    "SYSTEM_ACTOR",
    "Clock",
    "TrialContext",
    "Unit",
    "not_after",
    "require_text",
    "utc_now",
]

Clock = Callable[[], dt.datetime]
"""Returns the current time, timezone-aware. Passed in, so tests can fix the time."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


SYSTEM_ACTOR = "lumbar"
"""The name audit records carry for writes made by lumbar itself (creating the trial)."""


@dataclass
class Unit:
    """One unit of work: a session, the acting user and the moment it runs."""

    session: Session
    actor: Actor
    now: dt.datetime
    head: tuple[int, str] | None = None
    """The audit chain's head after this unit's last append (the head row is locked; it is
    moved to this head once, when the unit ends)."""

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
        self.head = append_audit(
            self.session,
            head=self.head,
            at=self.now,
            actor=self.actor.username,
            action=action,
            entity=entity,
            entity_id=entity_id,
            old=old,
            new=new,
            reason=reason,
            move_head=False,
        )


class TrialContext:
    """An open trial database, seen by one member of staff."""

    def __init__(
        self,
        database: Database,
        vault: Vault,
        protocol: Protocol,
        actor: str,
        clock: Clock = utc_now,
    ):
        self.db = database
        self.vault = vault
        self.protocol = protocol
        self.username = actor
        self.clock = clock

    @classmethod
    def open(
        cls,
        url: str | None,
        actor: str,
        *,
        key_file: Path | None = None,
        key: bytes | None = None,
        clock: Clock = utc_now,
    ) -> Self:
        """Open an existing trial as ``actor``; the vault key must be the trial's own."""
        database = Database(url)
        if not database.is_initialised():
            raise StoreError(
                "not a lumbar trial database",
                [
                    Problem(
                        "--db",
                        "holds no trial",
                        database.url,
                        "create one with 'lumbar init PROTOCOL --db ...'",
                    )
                ],
            )
        vault = Vault(
            key if key is not None else load_key(key_file or default_key_file(database.url))
        )
        with database.read() as session:
            record = session.execute(select(TrialRecord)).scalar_one()
            vault.confirm(record.key_check)
            protocol = parse_protocol(record.protocol_yaml, f"trial {record.id} protocol")
        return cls(database, vault, protocol, actor, clock)

    @classmethod
    def check_key(cls, url: str | None, *, key_file: Path | None = None) -> str:
        """Confirm the vault key opens the trial at ``url`` (no user needed); return its id."""
        database = Database(url)
        try:
            if not database.is_initialised():
                raise StoreError(
                    "not a lumbar trial database", [Problem("--db", "holds no trial", database.url)]
                )
            vault = Vault(load_key(key_file or default_key_file(database.url)))
            with database.read() as session:
                record = session.execute(select(TrialRecord)).scalar_one()
                vault.confirm(record.key_check)
                return record.id
        finally:
            database.dispose()

    def close(self) -> None:
        self.db.dispose()

    def authorize(self, permission: str) -> None:
        """Refuse unless the acting user holds ``permission`` (for work done outside a unit)."""
        with self._unit(permission, write=False):
            pass

    # ------------------------------------------------------------------ units of work

    def _now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware times")
        return now

    @contextmanager
    def _unit(self, permission: str, *, write: bool = True) -> Iterator[Unit]:
        """A unit of work for the acting user, who must hold ``permission``."""
        context = self.db.write() if write else self.db.read()
        with context as session:
            if write and self.db.backend != "sqlite":
                # Every write locks the audit head first, so writers queue in one order
                # (SQLite's BEGIN IMMEDIATE already does that).
                session.execute(select(AuditHead.seq).where(AuditHead.id == 1).with_for_update())
            actor = self._load_actor(session)
            require(actor, permission)
            unit = Unit(session, actor, self._now())
            yield unit
            if unit.head is not None:
                move_audit_head(session, unit.head)

    def _load_actor(self, session: Session) -> Actor:
        rows = session.connection().execute(_ACTOR, {"username": self.username}).all()
        staff = rows[0] if rows else None
        if staff is None or not staff.active:
            raise AccessError(
                "unknown user",
                [
                    Problem(
                        "--as",
                        "is not an active member of staff of this trial",
                        self.username,
                        "give your user name with --as or LUMBAR_USER; an admin adds users "
                        "with 'lumbar user add'",
                    )
                ],
            )
        site_ids = [row.site_id for row in rows if row.site_id is not None]
        return Actor(
            staff.id,
            staff.username,
            staff.role,
            staff.unblinded,
            staff.all_sites,
            frozenset(site_ids),
        )

    # ------------------------------------------------------------------ shared lookups

    def _participant(self, unit: Unit, reference: str) -> Participant:
        """A participant by study id or screening number, at one of the actor's sites.

        Another site's participant gets the same answer as one who does not exist.
        """
        participant = unit.session.execute(
            _PARTICIPANT, {"reference": reference}
        ).scalar_one_or_none()
        if participant is None or not unit.actor.sees_site(participant.site_id):
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


_TEXT = re.compile(r"\S")

# Built once: these run in nearly every unit of work (a statement built anew each time
# costs more than running it).
_ACTOR = (
    select(
        Staff.id,
        Staff.username,
        Staff.role,
        Staff.unblinded,
        Staff.all_sites,
        Staff.active,
        StaffSite.site_id,
    )
    .outerjoin(StaffSite, StaffSite.staff_id == Staff.id)
    .where(Staff.username == bindparam("username"))
)
_PARTICIPANT = select(Participant).where(
    or_(
        Participant.study_id == bindparam("reference"),
        Participant.screening_number == bindparam("reference"),
    )
)


def not_after(day: dt.date, today: dt.date, field: str) -> None:
    """Refuse a clinical date later than today (a typo, or a record made in advance)."""
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


def require_text(value: str, where: str, what: str) -> str:
    """A required piece of text (a reason, a description): refuse it empty."""
    if not _TEXT.search(value or ""):
        raise OperationError(
            f"{what} is required", [Problem(where, "must not be empty", value, f"give the {what}")]
        )
    return value.strip()
