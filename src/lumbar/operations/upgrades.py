"""Upgrading a trial database an older lumbar made: a checked backup, the migrations, a record.

A trial opened by a lumbar whose schema is newer than the database's is refused
(:meth:`~lumbar.store.Database.require_current_schema`), naming both revisions;
:func:`upgrade` (``lumbar upgrade``) brings it up to date:

1. It holds the trial whole, as a restore does (:func:`~lumbar.store.lease.exclusive_lease`):
   refused while the trial is open anywhere, naming who; nothing opens or writes it until
   the upgrade ends.
2. The acting user must be an admin of the trial (the ``upgrade`` permission), and the
   keys at hand its own; the audit key is needed (the upgrade checks the trail and
   appends to it).
3. A backup is written first by the backup operation
   (:func:`~lumbar.operations.backups.write_backup`) and checked at the old revision; it
   restores to the database as it was (a restore brings an older schema up to date on
   the copy).
4. Then, in one transaction: the audit chain and every data row are checked against the
   trail on the old schema (a finding refuses the upgrade, nothing changed); the
   migrations run to the newest revision; rows the migrations rewrote (a column added
   and filled, a table rebuilt) are imaged again in the upgrade's own audit record
   (``trial.upgrade``: from and to revision, the backup's name and SHA-256), so the trail
   still covers the data. An error anywhere undoes all of it; the backup stays.

A database at the newest revision is refused ("nothing to do"), as is one newer than
this lumbar (made by a newer lumbar: upgrade lumbar instead).
"""

from __future__ import annotations

import datetime as dt
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from lumbar.errors import Problem, StoreError
from lumbar.operations.backups import _principal, _sha256, _stamp, write_backup
from lumbar.operations.context import (
    Clock,
    Principal,
    Transaction,
    default_anchor,
    no_trial,
    utc_now,
)
from lumbar.operations.scope import load_scope
from lumbar.store.audit import AuditFinding, verify_chain, verify_data, write_anchor
from lumbar.store.database import Database, default_key_file, schema_head, schema_revisions
from lumbar.store.lease import exclusive_lease
from lumbar.store.schema import TrialRecord
from lumbar.store.vault import Keys, Vault, load_keys

__all__ = ["OLDEST_UPGRADABLE", "Upgraded", "upgrade"]

OLDEST_UPGRADABLE = "0004"
"""The oldest schema revision :func:`upgrade` takes: the keyed audit chain with row images,
which the upgrade checks before migrating and extends after, begins there (an older
trial's trail cannot be checked by this lumbar)."""

SHOWN_FINDINGS = 20
"""Audit findings a refused upgrade lists before it only counts the rest."""


@dataclass(frozen=True)
class Upgraded:
    """What an upgrade did."""

    trial_id: str
    database: str
    """The upgraded database, without any password."""
    from_revision: str
    to_revision: str
    backup: Path
    """The backup of the database as it was, made and checked first."""
    rows_imaged: int
    """Data rows the migrations rewrote, imaged again in the upgrade's audit record."""


def upgrade(
    url: str | None,
    *,
    actor: str | Principal,
    key_file: Path | None = None,
    keys: Keys | None = None,
    backup_file: Path | None = None,
    clock: Clock = utc_now,
) -> Upgraded:
    """Back up the trial database at ``url``, migrate it to this lumbar's newest schema,
    and record the upgrade in its audit trail (admins; see the module's text).

    ``backup_file``: where the backup goes (a new file); by default beside a SQLite file,
    else in the working folder, named for the database, its revision and the time.
    """
    principal = _principal(actor)
    database = Database(url)
    try:
        if not database.is_initialised():
            raise no_trial(database, given=bool(url))
        if keys is None:
            keys = load_keys(key_file or default_key_file(database.url))
        audit_key = keys.vault("audit")
        if audit_key is None:
            raise StoreError(
                "the audit key is not at hand",
                [
                    Problem(
                        "key audit",
                        "is needed to upgrade: the upgrade checks the audit trail and "
                        "records itself in it",
                        hint="use the trial's key file, which holds the 'audit:' line",
                    )
                ],
            )
        _upgradable(database)  # refuse at once, before waiting for anyone
        database.dispose()  # PostgreSQL: no idle connection of ours counts as a user
        with exclusive_lease(database, "lumbar upgrade"):
            before = _upgradable(database)  # again: another upgrade may have just run
            trial_id = _authorize(database, principal, keys)
            target = backup_file or _backup_name(database, before, clock)
            write_backup(database, target, keys, revision=before)
            work = _Work(principal, audit_key, clock(), trial_id, before, target)
            with database.migrating() as migration:
                work.check(migration.session, database.display_url)
                migration.run()
                head = work.record(migration.session)
        anchor = default_anchor(database)
        if anchor is not None:
            # The upgrade is committed; an anchor not written only weakens rollback detection.
            with suppress(OSError):
                write_anchor(anchor, audit_key, head)
        return Upgraded(
            trial_id,
            database.display_url,
            before,
            schema_head(),
            target,
            work.rows_imaged,
        )
    finally:
        database.dispose()


def _upgradable(database: Database) -> str:
    """The database's revision, when it is older than this lumbar's and can be upgraded."""
    revision = database.revision()
    head = schema_head()
    known = schema_revisions()
    shown = database.display_url
    if revision == head:
        raise StoreError(
            f"already at revision {head}; nothing to do",
            [
                Problem(
                    "db",
                    f"is at schema revision {head}, the newest this lumbar knows",
                    shown,
                    "nothing was changed",
                )
            ],
        )
    if revision not in known:
        database.require_current_schema()  # says what a newer or unmarked database needs
    assert revision is not None
    if known.index(revision) < known.index(OLDEST_UPGRADABLE):
        raise StoreError(
            "the trial database is too old to upgrade",
            [
                Problem(
                    "db",
                    f"is at schema revision {revision}, before the keyed audit trail "
                    f"({OLDEST_UPGRADABLE}), which this lumbar cannot check",
                    shown,
                    f"upgrade it with a lumbar that ships revision {OLDEST_UPGRADABLE} first; "
                    "nothing was changed",
                )
            ],
        )
    return revision


def _authorize(database: Database, principal: Principal, keys: Keys) -> str:
    """Refuse unless ``principal`` may upgrade and the keys at hand are the trial's; the
    trial's id. Reads only columns every upgradable schema has."""
    with database.read() as session:
        load_scope(session, principal.username, principal.permissions).require("upgrade")
        record = session.execute(
            select(
                TrialRecord.id,
                TrialRecord.key_check,
                TrialRecord.randomization_key_check,
                TrialRecord.audit_key_check,
            )
        ).one()
    keys.confirm(record)
    return str(record.id)


def _backup_name(database: Database, revision: str, clock: Clock) -> Path:
    """Beside a SQLite file, else in the working folder: ``<name>.<revision>-<UTC time>.backup``."""
    stamp = _stamp(clock)
    path = database.sqlite_path
    if path is not None:
        return path.with_name(f"{path.name}.{revision}-{stamp}.backup")
    return Path(f"{make_url(database.url).database or 'lumbar'}.{revision}-{stamp}.backup")


@dataclass
class _Work:
    """The checks and the record of one upgrade, in its migrating transaction."""

    principal: Principal
    audit_key: Vault
    now: dt.datetime
    trial_id: str
    before: str
    backup: Path
    rows_imaged: int = 0

    def check(self, session: Session, shown: str) -> None:
        """The audit chain, and every data row on the old schema's columns, against the trail."""
        connection = session.connection()
        tables = inspect(connection)
        present = {
            name: {column["name"] for column in tables.get_columns(name)}
            for name in tables.get_table_names()
        }
        findings = [*verify_chain(session, self.audit_key).findings]
        if not findings:  # images in a broken chain prove nothing
            findings += verify_data(session, self.audit_key, present)[1]
        if findings:
            raise _not_intact(findings, shown)

    def record(self, session: Session) -> tuple[int, str]:
        """Image again the rows the migrations rewrote, and append the upgrade's record."""
        _, rewritten = verify_data(session, self.audit_key)
        deleted = [finding for finding in rewritten if finding.kind == "deleted"]
        if deleted:
            raise StoreError(
                "the upgrade would delete data rows",
                [
                    *(Problem("audit", finding.detail) for finding in deleted[:SHOWN_FINDINGS]),
                    Problem(
                        "migrations",
                        "must not delete rows the audit trail holds",
                        hint="report this to lumbar's developers; nothing was changed",
                    ),
                ],
            )
        work = Transaction(
            session, self.principal.username, self.principal.origin, self.now, self.audit_key
        )
        for table in sorted({finding.table for finding in rewritten if finding.table}):
            work.rows.add_table(table)
        self.rows_imaged = len(rewritten)
        work.audit(
            "trial.upgrade",
            "trial",
            self.trial_id,
            old={"revision": self.before},
            new={
                "revision": schema_head(),
                "backup": self.backup.name,
                "sha256": _sha256(self.backup),
            },
        )
        head = work.finish()
        assert head is not None  # the record above was appended
        return head


def _not_intact(findings: list[AuditFinding], shown: str) -> StoreError:
    listed = findings[:SHOWN_FINDINGS]
    return StoreError(
        "the audit trail does not verify: the trial is not upgraded",
        [
            *(
                Problem("audit", finding.detail, f"record {finding.seq}" if finding.seq else "data")
                for finding in listed
            ),
            *(
                [Problem("audit", f"and {len(findings) - len(listed)} more findings")]
                if len(findings) > len(listed)
                else []
            ),
            Problem(
                "db",
                "must have an intact audit trail to be upgraded; nothing was changed "
                "(the backup made first is kept)",
                shown,
                "find what changed with an older lumbar's 'lumbar audit verify', and restore "
                "an earlier backup if the data were altered",
            ),
        ],
    )
