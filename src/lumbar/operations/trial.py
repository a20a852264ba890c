"""The trial: creating one, and the one object every operation hangs on.

::

    from lumbar.operations import create_trial, Trial
    create_trial(protocol, "trial.db", admin="admin")      # once: schema, list, key file
    trial = Trial.open("trial.db", actor="admin")         # then, as any member of staff
    trial.add_site("SEA", "Seattle")
    ...

``Trial`` gathers the operations of each area (people, enrolment, responses,
randomization, schedule, treatment, dataset, CONSORT records) in one service
object, which the CLI and the web app both drive.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import insert, make_url, select

from lumbar import __version__
from lumbar.errors import Problem, StoreError
from lumbar.operations.allocation import (
    Slot,
    allocation_digest,
    generate_allocation_list,
    read_allocation_csv,
)
from lumbar.operations.consort import ConsortOperations
from lumbar.operations.context import SYSTEM_ACTOR, Clock, utc_now
from lumbar.protocol import Protocol, all_strata, stratum_key
from lumbar.store.audit import AuditReport, append_audit, verify_chain
from lumbar.store.database import Database, default_key_file
from lumbar.store.schema import (
    Allocation,
    AllocationSlot,
    Consent,
    Participant,
    Site,
    Staff,
    StratumCounter,
    TrialRecord,
    Withdrawal,
)
from lumbar.store.vault import KEY_ENV, Vault, create_key_file, load_key

__all__ = ["ParticipantView", "Trial", "TrialCreated", "TrialInfo", "create_trial"]


@dataclass(frozen=True)
class ParticipantView:
    """A participant as the list shows them (no identifiers)."""

    screening_number: str
    study_id: str | None
    site: str
    status: str


@dataclass(frozen=True)
class TrialInfo:
    """What a trial database says about itself (no participant data)."""

    id: str
    title: str
    protocol_version: str
    protocol_hash: str
    created_with: str
    """The lumbar version that created the database."""
    created_at: dt.datetime
    synthetic: bool
    sites: tuple[tuple[str, str], ...]
    """(code, name) of the sites the user sees."""
    allocation_source: str
    database: str
    """The database URL, without any password."""


@dataclass(frozen=True)
class TrialCreated:
    url: str
    key_file: Path | None
    slots: int
    allocation_source: str


class Trial(ConsortOperations):
    """An open trial, seen by one member of staff. See :func:`create_trial`."""

    def participants(self) -> list[ParticipantView]:
        """Everyone screened at your sites, with where they stand."""
        with self._unit("view", write=False) as unit:
            session = unit.session
            codes = {site.id: site.code for site in session.execute(select(Site)).scalars()}
            consented = set(session.execute(select(Consent.participant_id)).scalars())
            randomized = set(session.execute(select(Allocation.participant_id)).scalars())
            left = dict(session.execute(select(Withdrawal.participant_id, Withdrawal.kind)).all())
            views = []
            for participant in session.execute(
                select(Participant).order_by(Participant.screening_number)
            ).scalars():
                if not unit.actor.sees_site(participant.site_id):
                    continue
                if participant.id in left:
                    status = left[participant.id]
                elif participant.id in randomized:
                    status = "randomized"
                elif participant.study_id is not None:
                    status = "enrolled"
                elif participant.id in consented:
                    status = "consented"
                else:
                    status = participant.eligibility
                views.append(
                    ParticipantView(
                        participant.screening_number,
                        participant.study_id,
                        codes[participant.site_id],
                        status,
                    )
                )
            return views

    def about(self) -> TrialInfo:
        """The trial's own record: title, protocol, when it was made, whether it is synthetic."""
        with self._unit("view", write=False) as unit:
            record = unit.session.execute(select(TrialRecord)).scalar_one()
            sites = tuple(
                (site.code, site.name)
                for site in unit.session.execute(select(Site).order_by(Site.code)).scalars()
                if unit.actor.sees_site(site.id)
            )
            return TrialInfo(
                record.id,
                record.title,
                record.protocol_version,
                record.protocol_hash,
                record.lumbar_version,
                record.created_at,
                record.synthetic,
                sites,
                record.allocation_source,
                make_url(self.db.url).render_as_string(hide_password=True),
            )

    def verify_audit(self) -> AuditReport:
        """Recompute the audit chain: report any record changed, deleted or inserted."""
        with self._unit("audit", write=False) as unit:
            return verify_chain(unit.session)


def create_trial(
    protocol: Protocol,
    url: str | None,
    *,
    admin: str,
    key_file: Path | None = None,
    seed: int | None = None,
    allocation_csv: Path | None = None,
    synthetic: bool = False,
    clock: Clock = utc_now,
) -> TrialCreated:
    """Create a trial database from ``protocol``: schema, concealed allocation list, first admin.

    The vault key comes from ``LUMBAR_KEY`` when set; otherwise a new key file is
    written (beside a SQLite database by default) with owner-only permissions.
    The allocation list is generated from ``seed`` (a random 128-bit seed when not
    given) or read from ``allocation_csv``; either way it is sealed, and its
    fingerprint is kept to verify it later.
    """
    database = Database(url)
    if database.is_initialised():
        raise StoreError(
            "a trial exists here",
            [Problem("--db", "already holds a trial", database.url, "choose a new database")],
        )
    length = protocol.slots_per_stratum
    if length is None and allocation_csv is None:
        raise StoreError(
            "the allocation list has no length",
            [
                Problem(
                    "protocol",
                    "needs randomization.slots_per_stratum or trial.planned_participants",
                    hint="add one of them to the protocol",
                )
            ],
        )
    if allocation_csv is not None:
        slots = read_allocation_csv(allocation_csv, protocol)
        source, sealed_seed_text = "imported", None
        length = max(slot.position for slot in slots)
    else:
        assert length is not None
        seed = secrets.randbits(128) if seed is None else seed
        slots = generate_allocation_list(protocol, seed, length)
        source, sealed_seed_text = "generated", str(seed)
    created_key_file: Path | None = None
    if os.environ.get(KEY_ENV):
        key = load_key(None)
    else:
        created_key_file = key_file or default_key_file(database.url)
        key = create_key_file(created_key_file)
    vault = Vault(key)
    try:
        database.migrate()
        _write_trial(
            database,
            vault=vault,
            protocol=protocol,
            slots=slots,
            source=source,
            seed_text=sealed_seed_text,
            length=length,
            admin=admin,
            synthetic=synthetic,
            now=clock(),
        )
    except BaseException:
        if created_key_file is not None:
            with contextlib.suppress(OSError):
                created_key_file.unlink()
        raise
    finally:
        database.dispose()
    return TrialCreated(database.url, created_key_file, len(slots), source)


def _write_trial(
    database: Database,
    *,
    vault: Vault,
    protocol: Protocol,
    slots: tuple[Slot, ...],
    source: str,
    seed_text: str | None,
    length: int,
    admin: str,
    synthetic: bool,
    now: dt.datetime,
) -> None:
    yaml_text = _protocol_yaml(protocol)
    digest = allocation_digest(slots)
    with database.write() as session:
        session.add(
            TrialRecord(
                id=protocol.id,
                title=protocol.trial.title,
                protocol_yaml=yaml_text,
                protocol_hash=protocol.content_hash,
                protocol_version=protocol.version,
                lumbar_version=__version__,
                created_at=now,
                allocation_source=source,
                allocation_seed_sealed=None
                if seed_text is None
                else vault.seal(seed_text, "allocation-seed"),
                allocation_digest=digest,
                allocation_length=length,
                synthetic=synthetic,
                key_check=vault.key_check(),
            )
        )
        session.execute(
            insert(AllocationSlot),
            [
                {
                    "stratum": slot.stratum,
                    "position": slot.position,
                    "block": slot.block,
                    "block_size": slot.block_size,
                    "arm_sealed": vault.seal(slot.arm, f"slot:{slot.stratum}:{slot.position}"),
                }
                for slot in slots
            ],
        )
        for levels in all_strata(protocol.randomization):
            session.add(StratumCounter(stratum=stratum_key(levels), next_position=1))
        session.add(
            Staff(
                username=admin,
                role="admin",
                unblinded=False,
                all_sites=True,
                active=True,
                created_at=now,
            )
        )
        session.flush()
        append_audit(
            session,
            at=now,
            actor=SYSTEM_ACTOR,
            action="trial.create",
            entity="trial",
            entity_id=protocol.id,
            new={
                "protocol_hash": protocol.content_hash,
                "protocol_version": protocol.version,
                "allocation_source": source,
                "allocation_digest": digest,
                "slots": len(slots),
                "synthetic": synthetic,
            },
        )
        append_audit(
            session,
            at=now,
            actor=SYSTEM_ACTOR,
            action="staff.add",
            entity="staff",
            entity_id=admin,
            new={"role": "admin", "unblinded": False, "sites": ["*"]},
        )


def _protocol_yaml(protocol: Protocol) -> str:
    """The protocol as YAML the trial keeps (parsed back, it is the same protocol)."""
    return yaml.safe_dump(
        protocol.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        sort_keys=False,
        allow_unicode=True,
    )
