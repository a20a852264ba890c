"""The audit trail: append-only records of every write, chained under a key, tied to the data.

Each record holds who, when, what (action, entity, id), the old and new values and
the reason, the keyed images of the data rows its unit of work wrote, the link of the
record before it, and its own link::

    link = HMAC-SHA256(audit key, prev_link + canonical JSON of
                       [seq, at, actor, action, entity, entity_id, old, new, reason
                        (, origin) (, rows)])

The audit key is kept outside the database (:mod:`lumbar.store.vault`), so whoever
holds only the database cannot rewrite a record, forge one, or re-link the chain: each
breaks a link they cannot recompute. ``audit_head`` holds the last sequence number and
link and their own HMAC: a head reset to an earlier record (the tail deleted) does not
carry a head HMAC the holder can make. Every write locks the head row, which also
serializes writers; database triggers refuse UPDATE and DELETE on ``audit``.

**Row images** tie the data to the trail. When a unit of work ends, the images of the
rows it inserted, changed or deleted go into its last record: for each row, its table,
its primary key and a 64-bit keyed digest (BLAKE2b under the audit key) of each column's
value (a deleted row has no image).
Replaying the trail gives the image every row of every covered table must have now;
:func:`verify_data` compares it with the tables and names each row added, deleted or
changed outside lumbar, and which columns. Tables not covered: the allocation list and
its counters (the randomization check covers them, under the randomization key), the
failed sign-in counter (housekeeping of the rate limit, whose events the trail holds),
and the audit tables themselves.

What the key does not stop: someone holding the database *and* the audit key (an
operator with every key) can write a consistent history; an older copy of the whole
database put back (a rollback) is consistent too, unless the head was kept elsewhere.
``lumbar audit verify`` prints the head; an anchor file (:func:`check_anchor`) kept
beside the keys holds the newest head this machine wrote, so a rollback to an older
copy is caught there.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import ColumnElement, FromClause, Table, insert, select, true, tuple_, update
from sqlalchemy.orm import Session

from lumbar.store.schema import AuditHead, AuditRecord, Base
from lumbar.store.vault import Vault

__all__ = [
    "GENESIS",
    "NOT_COVERED",
    "AuditFinding",
    "AuditReport",
    "AuditRows",
    "append_audit",
    "canonical",
    "check_anchor",
    "verify_chain",
    "verify_data",
    "verify_trail",
    "write_anchor",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""

NOT_COVERED = frozenset(
    {"audit", "audit_head", "allocation_slot", "stratum_counter", "login_failure"}
)
"""Tables whose rows carry no image in the trail (see the module's text for why)."""

VOLATILE = {
    "api_token": frozenset({"last_used_at"}),
    "web_session": frozenset({"last_seen_at"}),
}
"""Columns written without an audit record, left out of row images: a token's last use,
a web session's last request."""


def canonical(payload: Mapping[str, Any] | None) -> str | None:
    """Canonical JSON of an audit payload (sorted keys, no spaces), or None."""
    if payload is None:
        return None
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _fields(record: Mapping[Any, Any]) -> list[object]:
    return [
        record["seq"],
        _time(record["at"]),
        record["actor"],
        record["action"],
        record["entity"],
        record["entity_id"],
        record["old"],
        record["new"],
        record["reason"],
        *(() if record["origin"] is None else (record["origin"],)),
        *(() if record["rows"] is None else (record["rows"],)),
    ]


def _link(key: Vault, prev_hash: str, fields: list[object]) -> str:
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return key.mac((prev_hash + body).encode("utf-8"))


def _head_mac(key: Vault, seq: int, link: str) -> str:
    return key.mac(f"head:{seq}:{link}".encode())


# Built once: these run on every write.
_LOCK_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_INSERT_RECORD = insert(AuditRecord)
_MOVE_HEAD = update(AuditHead).where(AuditHead.id == 1)


def append_audit(
    session: Session,
    key: Vault,
    records: Sequence[Mapping[str, Any]],
    *,
    at: dt.datetime,
    origin: str | None = None,
    rows: str | None = None,
) -> tuple[int, str]:
    """Append ``records`` to the chain, inside the caller's transaction, and move the head
    to the last; return the new head.

    ``key`` is the audit key's vault. Each record gives ``actor``, ``action``, ``entity``
    and ``entity_id``, and may give ``old``, ``new`` and ``reason``; ``rows`` (the row
    images) goes into the last. The head row is read locked, the records are inserted in
    one statement and the head is moved once: plain SQL rather than ORM objects, as
    every write appends records.
    """
    connection = session.connection()
    row = connection.execute(_LOCK_HEAD).one()
    seq, prev_hash = int(row.seq), str(row.hash)
    stamped = at.astimezone(dt.UTC)
    values: list[dict[str, Any]] = []
    for number, record in enumerate(records, start=1):
        seq += 1
        value: dict[str, Any] = {
            "seq": seq,
            "at": stamped,
            "actor": record["actor"],
            "origin": origin,
            "action": record["action"],
            "entity": record["entity"],
            "entity_id": str(record["entity_id"]),
            "old": canonical(record.get("old")),
            "new": canonical(record.get("new")),
            "reason": record.get("reason"),
            "rows": rows if number == len(records) else None,
            "prev_hash": prev_hash,
        }
        value["hash"] = prev_hash = _link(key, prev_hash, _fields(value))
        values.append(value)
    connection.execute(_INSERT_RECORD, values)
    head = (seq, prev_hash)
    _move_head(session, key, head)
    return head


def _move_head(session: Session, key: Vault, head: tuple[int, str]) -> None:
    """Point the head row at ``head`` (the last record appended in this transaction)."""
    session.connection().execute(
        _MOVE_HEAD, {"seq": head[0], "hash": head[1], "mac": _head_mac(key, *head)}
    )


# ---------------------------------------------------------------------- row images


def covered_tables() -> list[Table]:
    """Every table whose rows the trail's images cover."""
    return [table for table in Base.metadata.sorted_tables if table.name not in NOT_COVERED]


_TABLES = {table.name: table for table in Base.metadata.sorted_tables}


def _value(value: object) -> str:
    """A column value as text, the same whether just written or read back from either database."""
    if value is None:
        return "\u2205"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return _time(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _key_text(table: Table, row: Mapping[Any, Any]) -> str:
    return "/".join(_value(row[column.name]) for column in table.primary_key.columns)


def _image(
    key: Vault,
    table: Table,
    row: Mapping[Any, Any],
    key_text: str,
    names: Sequence[str] | None = None,
) -> dict[str, str]:
    digest = key.short_mac_of(f"{table.name}\x1f{key_text}\x1f".encode())
    imaged = _IMAGED[table.name] if names is None else names
    return {name: digest(f"{name}\x1f{_value(row[name])}".encode()) for name in imaged}


_IMAGED = {
    table.name: tuple(
        column.name
        for column in table.columns
        if not column.primary_key and column.name not in VOLATILE.get(table.name, ())
    )
    for table in Base.metadata.sorted_tables
}
"""Each table's columns a row image holds: all but the key and the volatile ones."""


class AuditRows:
    """The rows one unit of work wrote, gathered until it ends, then imaged into its record."""

    def __init__(self) -> None:
        self._keys: dict[str, set[tuple[Any, ...]]] = {}
        self._where: list[tuple[Table, ColumnElement[bool]]] = []

    def __bool__(self) -> bool:
        return bool(self._keys or self._where)

    def add(self, table: FromClause, primary_key: Sequence[Any]) -> None:
        """A row inserted, changed or deleted (by primary key, in the table's key order)."""
        name = str(getattr(table, "name", ""))
        if name not in NOT_COVERED:
            self._keys.setdefault(name, set()).add(tuple(primary_key))

    def add_where(self, model: type[Base], where: ColumnElement[bool]) -> None:
        """Rows of ``model``'s table written by a plain SQL statement: those matching
        ``where`` once the work ends."""
        table = _TABLES[model.__tablename__]
        if table.name not in NOT_COVERED:
            self._where.append((table, where))

    def add_table(self, name: str) -> None:
        """Every row of table ``name``: a schema migration rewrote them all (an upgrade)."""
        table = _TABLES[name]
        if table.name not in NOT_COVERED:
            self._where.append((table, true()))

    def images(self, session: Session, key: Vault) -> str | None:
        """The images of every row gathered, read back as stored (None: no rows)."""
        if not self:
            return None
        out: dict[str, dict[str, dict[str, str] | None]] = {}
        for name, keys in self._keys.items():
            table = _TABLES[name]
            columns = list(table.primary_key.columns)
            found: dict[str, dict[str, str] | None] = {}
            wanted = sorted(keys, key=repr)
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                where: ColumnElement[bool] = (
                    columns[0].in_([k[0] for k in chunk])
                    if len(columns) == 1
                    else tuple_(*columns).in_(chunk)
                )
                for row in session.execute(select(table).where(where)).mappings():
                    text = _key_text(table, row)
                    found[text] = _image(key, table, row, text)
            for primary_key in wanted:
                text = "/".join(_value(part) for part in primary_key)
                found.setdefault(text, None)  # gone by the end of the work: deleted
            out.setdefault(name, {}).update(found)
        for table, where in self._where:
            for row in session.execute(select(table).where(where)).mappings():
                text = _key_text(table, row)
                out.setdefault(table.name, {})[text] = _image(key, table, row, text)
        return json.dumps(out, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------- verification

Kind = Literal["changed", "deleted", "inserted", "head", "added", "anchor"]


@dataclass(frozen=True)
class AuditFinding:
    """One break in the chain, or one row that differs from what the trail implies."""

    seq: int
    kind: Kind
    detail: str
    table: str | None = None
    """The data table of a row that differs (None: a finding about the chain itself)."""


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the whole chain and the data against it."""

    records: int
    head_seq: int
    head_hash: str
    findings: tuple[AuditFinding, ...]
    rows_checked: int = 0

    @property
    def intact(self) -> bool:
        return not self.findings


def verify_chain(session: Session, key: Vault) -> AuditReport:
    """Recompute every link and the head's HMAC; report each record changed, deleted or
    inserted, and a head that was reset or moved."""
    findings: list[AuditFinding] = []
    expected_prev, expected_seq, count = GENESIS, 1, 0
    table = AuditRecord.__table__
    for record in session.execute(select(table).order_by(table.c.seq)).mappings():
        count += 1
        seq = int(record["seq"])
        if seq > expected_seq:
            missing = (
                f"record {expected_seq}"
                if seq == expected_seq + 1
                else f"records {expected_seq} to {seq - 1}"
            )
            findings.append(AuditFinding(expected_seq, "deleted", f"{missing} missing"))
        content_ok = _link(key, record["prev_hash"], _fields(record)) == record["hash"]
        link_ok = record["prev_hash"] == expected_prev
        if not content_ok:
            findings.append(
                AuditFinding(
                    seq,
                    "changed",
                    f"record {seq} does not match its keyed link "
                    "(changed, forged, or written with another audit key)",
                )
            )
        elif not link_ok and seq == expected_seq:
            findings.append(
                AuditFinding(
                    seq,
                    "inserted",
                    f"record {seq} does not follow the record before it "
                    "(inserted, or the one before it was replaced)",
                )
            )
        expected_prev, expected_seq = str(record["hash"]), seq + 1
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
    elif head.seq > 0 and head.mac != _head_mac(key, head.seq, head.hash):
        findings.append(
            AuditFinding(
                head.seq,
                "head",
                f"the head (record {head.seq}) does not carry its keyed mark: the head was "
                "reset, and the records after it deleted, by someone without the audit key",
            )
        )
    return AuditReport(count, head.seq, head.hash, tuple(findings))


def verify_data(
    session: Session, key: Vault, present: Mapping[str, Collection[str]] | None = None
) -> tuple[int, list[AuditFinding]]:
    """Replay the trail's row images and compare them with every covered table.

    Returns the number of rows checked and one finding per row added, deleted or changed
    outside lumbar (naming the table, the row's key and the columns that differ). Run it
    on a chain :func:`verify_chain` found intact: images in a broken chain prove nothing.

    ``present``: each table's columns the database has, when its schema is older than
    this lumbar's (an upgrade checks the data before migrating it): tables it lacks are
    skipped, and rows are read and imaged on these columns only.
    """
    expected: dict[str, dict[str, tuple[int, dict[str, str] | None]]] = {}
    for seq, rows in session.execute(
        select(AuditRecord.seq, AuditRecord.rows)
        .where(AuditRecord.rows.is_not(None))
        .order_by(AuditRecord.seq)
    ):
        for table, images in json.loads(rows or "{}").items():
            bucket = expected.setdefault(table, {})
            for primary_key, image in images.items():
                bucket[primary_key] = (seq, image)
    findings: list[AuditFinding] = []
    checked = 0
    for table in covered_tables():
        names: tuple[str, ...] | None = None
        query = select(table)
        if present is not None:
            if table.name not in present:
                continue
            names = tuple(name for name in _IMAGED[table.name] if name in present[table.name])
            keys = [column.name for column in table.primary_key.columns]
            query = select(*(table.c[name] for name in (*keys, *names)))
        wanted = expected.get(table.name, {})
        seen: set[str] = set()
        for row in session.execute(query).mappings():
            checked += 1
            primary_key = _key_text(table, row)
            seen.add(primary_key)
            where = f"{table.name} {_describe(table, primary_key)}"
            seq, image = wanted.get(primary_key, (0, None))
            if image is None:
                detail = (
                    f"{where} is in the table but not in the audit trail "
                    f"(added outside lumbar{'' if seq == 0 else f'; deleted at record {seq}'})"
                )
                findings.append(AuditFinding(seq, "added", detail, table.name))
                continue
            actual = _image(key, table, row, primary_key, names)
            # An older schema: its columns only (a column the trail images but the table
            # lacks was dropped by a migration undone since, and cannot be compared).
            compared = set(actual) if names is not None else set(image) | set(actual)
            differ = sorted(name for name in compared if image.get(name) != actual.get(name))
            if differ:
                findings.append(
                    AuditFinding(
                        seq,
                        "changed",
                        f"{where}: {', '.join(differ)} changed outside lumbar "
                        f"(last written at record {seq})",
                        table.name,
                    )
                )
        for primary_key, (seq, image) in wanted.items():
            if image is not None and primary_key not in seen:
                findings.append(
                    AuditFinding(
                        seq,
                        "deleted",
                        f"{table.name} {_describe(table, primary_key)} was deleted outside "
                        f"lumbar (written at record {seq})",
                        table.name,
                    )
                )
    return checked, findings


def _describe(table: Table, primary_key: str) -> str:
    names = [column.name for column in table.primary_key.columns]
    parts = primary_key.split("/", len(names) - 1)
    return ", ".join(f"{name} {part}" for name, part in zip(names, parts, strict=False))


# ---------------------------------------------------------------------- anchor


def write_anchor(path: Path, key: Vault, head: tuple[int, str], *, replace: bool = False) -> None:
    """Record ``head`` in the anchor file unless it holds a later one (owner-only).

    Writers on one machine keep the newest head they committed there: an older copy of
    the database put back later is then caught by :func:`check_anchor`. ``replace``: a
    new trial or a restore, whose head is the right one even if earlier.

    The file is rewritten in place under an exclusive ``flock`` on itself (readers take
    it shared): one small write, no temporary file or rename, as this runs after every
    commit. A write torn by a crash fails its MAC and is reported as a damaged anchor.
    """
    seq, link = head
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        current = None if replace else _parse_anchor(os.pread(descriptor, 512, 0))
        if current is not None and current[0] >= seq:
            return
        line = f"{seq} {link} {key.mac(f'anchor:{seq}:{link}'.encode())}\n".encode("ascii")
        os.pwrite(descriptor, line, 0)
        os.ftruncate(descriptor, len(line))
    finally:
        os.close(descriptor)  # releases the lock


def _read_anchor(path: Path) -> tuple[int, str, str] | None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        return _parse_anchor(os.pread(descriptor, 512, 0))
    finally:
        os.close(descriptor)


def _parse_anchor(data: bytes) -> tuple[int, str, str] | None:
    try:
        parts = data.decode("ascii").split()
    except UnicodeDecodeError:
        return None
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1], parts[2]


def check_anchor(session: Session, key: Vault, path: Path) -> list[AuditFinding]:
    """Compare the chain with the newest head the anchor file at ``path`` recorded.

    A chain shorter than the anchor, or whose record at the anchor's sequence number is
    not the one anchored, was rolled back or replaced. No anchor file: nothing to say.
    """
    if not path.exists():
        return []
    anchored = _read_anchor(path)
    if anchored is None or key.mac(f"anchor:{anchored[0]}:{anchored[1]}".encode()) != anchored[2]:
        return [
            AuditFinding(
                0, "anchor", f"the anchor file {path} is damaged or was not written with this key"
            )
        ]
    seq, link, _ = anchored
    found = session.execute(select(AuditRecord.hash).where(AuditRecord.seq == seq)).scalar()
    if found is None:
        return [
            AuditFinding(
                seq,
                "anchor",
                f"the chain ends before record {seq}, which the anchor file {path} saw written: "
                "the database was rolled back to an older copy, or its tail was deleted",
            )
        ]
    if found != link:
        return [
            AuditFinding(
                seq,
                "anchor",
                f"record {seq} is not the one the anchor file {path} saw written: the chain "
                "was replaced",
            )
        ]
    return []


def verify_trail(session: Session, key: Vault, anchor: Path | None = None) -> AuditReport:
    """The whole check: the chain's links and head, the anchor, and every data table
    against the rows the trail implies."""
    chain = verify_chain(session, key)
    findings = list(chain.findings)
    if anchor is not None:
        findings.extend(check_anchor(session, key, anchor))
    checked, differences = verify_data(session, key)
    findings.extend(differences)
    return AuditReport(chain.records, chain.head_seq, chain.head_hash, tuple(findings), checked)
