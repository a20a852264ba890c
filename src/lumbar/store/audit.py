"""The audit trail: append-only, hash-chained records of every write.

Each record holds who, when, what (action, entity, id), the old and new values
and the reason, plus the hash of the record before it and its own hash::

    hash = SHA-256(prev_hash + canonical JSON of [seq, at, actor, action, entity,
                                                  entity_id, old, new, reason(, origin)])

``origin`` (how the actor's identity was established: the operator's command line
with its OS user and host, a web sign-in, a token) is hashed when a record has one.

``audit_head`` holds the last sequence number and hash; every write locks it,
which also serializes writers. Database triggers refuse UPDATE and DELETE on
``audit``. :func:`verify_chain` recomputes the chain and says which record was
changed, deleted or inserted. Anyone able to rewrite the whole tail and the
head could hide it: keep the head hash that ``lumbar audit verify`` prints
somewhere outside the database (a monitoring report) to anchor it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from lumbar.store.schema import AuditHead, AuditRecord

__all__ = [
    "GENESIS",
    "AuditFinding",
    "AuditReport",
    "append_audit",
    "canonical",
    "move_audit_head",
    "verify_chain",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""


def canonical(payload: Mapping[str, Any] | None) -> str | None:
    """Canonical JSON of an audit payload (sorted keys, no spaces), or None."""
    if payload is None:
        return None
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def record_hash(record: AuditRecord) -> str:
    """The hash a record must carry, from its fields and its ``prev_hash``."""
    return _hash(
        record.prev_hash,
        [
            record.seq,
            _time(record.at),
            record.actor,
            record.action,
            record.entity,
            record.entity_id,
            record.old,
            record.new,
            record.reason,
            *(() if record.origin is None else (record.origin,)),
        ],
    )


def _hash(prev_hash: str, fields: list[object]) -> str:
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


# Built once: these run on every write.
_LOCK_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_INSERT_RECORD = insert(AuditRecord)
_MOVE_HEAD = update(AuditHead).where(AuditHead.id == 1)


def append_audit(
    session: Session,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    reason: str | None = None,
    origin: str | None = None,
    head: tuple[int, str] | None = None,
    move_head: bool = True,
) -> tuple[int, str]:
    """Append one record to the chain, inside the caller's transaction; return the new head.

    ``head`` is the (seq, hash) this transaction's previous append returned: the head
    row is locked already, so it need not be read again. With ``move_head=False`` the
    head row is left for the caller to move once, with :func:`move_audit_head`, before
    the transaction commits (a unit of work appending several records does). Plain SQL
    statements rather than ORM objects: every write appends at least one record.
    """
    connection = session.connection()
    if head is None:
        row = connection.execute(_LOCK_HEAD).one()
        head = (int(row.seq), str(row.hash))
    seq, prev_hash = head
    at = at.astimezone(dt.UTC)
    values: dict[str, Any] = {
        "seq": seq + 1,
        "at": at,
        "actor": actor,
        "origin": origin,
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "old": canonical(old),
        "new": canonical(new),
        "reason": reason,
        "prev_hash": prev_hash,
    }
    values["hash"] = _hash(
        prev_hash,
        [
            values["seq"],
            _time(at),
            actor,
            action,
            entity,
            values["entity_id"],
            values["old"],
            values["new"],
            reason,
            *(() if origin is None else (origin,)),
        ],
    )
    connection.execute(_INSERT_RECORD, values)
    if move_head:
        move_audit_head(session, (values["seq"], values["hash"]))
    return int(values["seq"]), str(values["hash"])


def move_audit_head(session: Session, head: tuple[int, str]) -> None:
    """Point the head row at ``head`` (the last record appended in this transaction)."""
    session.connection().execute(_MOVE_HEAD, {"seq": head[0], "hash": head[1]})


Kind = Literal["changed", "deleted", "inserted", "head"]


@dataclass(frozen=True)
class AuditFinding:
    """One break in the chain."""

    seq: int
    kind: Kind
    detail: str


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the whole chain."""

    records: int
    head_seq: int
    head_hash: str
    findings: tuple[AuditFinding, ...]

    @property
    def intact(self) -> bool:
        return not self.findings


def verify_chain(session: Session) -> AuditReport:
    """Recompute every hash and link; report each record changed, deleted or inserted."""
    findings: list[AuditFinding] = []
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for record in session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars():
        count += 1
        if record.seq > expected_seq:
            missing = (
                f"record {expected_seq}"
                if record.seq == expected_seq + 1
                else f"records {expected_seq} to {record.seq - 1}"
            )
            findings.append(AuditFinding(expected_seq, "deleted", f"{missing} missing"))
        content_ok = record_hash(record) == record.hash
        link_ok = record.prev_hash == expected_prev
        if not content_ok:
            findings.append(
                AuditFinding(record.seq, "changed", f"record {record.seq} does not match its hash")
            )
        elif not link_ok and record.seq == expected_seq:
            findings.append(
                AuditFinding(
                    record.seq,
                    "inserted",
                    f"record {record.seq} does not follow the record before it "
                    "(inserted, or the one before it was replaced)",
                )
            )
        expected_prev, expected_seq = record.hash, record.seq + 1
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    if head.seq != expected_seq - 1 or head.hash != expected_prev:
        if head.seq > expected_seq - 1:
            detail = f"records {expected_seq} to {head.seq} were deleted from the end"
            findings.append(AuditFinding(expected_seq, "deleted", detail))
        elif head.seq < expected_seq - 1:
            detail = f"records {head.seq + 1} to {expected_seq - 1} were added after the head"
            findings.append(AuditFinding(head.seq + 1, "inserted", detail))
        else:
            findings.append(
                AuditFinding(head.seq, "head", "the last record is not the one the head names")
            )
    return AuditReport(count, head.seq, head.hash, tuple(findings))
