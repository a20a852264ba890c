"""The trial: creating one, and the one object every caller drives.

::

    from lumbar.operations import create_trial, Trial
    create_trial(protocol, "trial.db", admin="admin")      # once: schema, list, key file
    trial = Trial.open("trial.db", actor="admin")         # the operator's command line
    trial.add_site("SEA", "Seattle")
    ...

    context = Context.open("trial.db")                    # a server: open once ...
    trial = Trial(context, principal)                     # ... and one Trial per request

:class:`Trial` is the public API of operations: the CLI, the simulator and the web
app call its methods, and nothing else. Each method hands over to the service of
its area (people, enrolment, responses, randomization, schedule, treatment,
safety, dataset, CONSORT records), which share one :class:`Context`. Making a
``Trial`` over an open context costs a few attribute assignments: no engine,
key or protocol is read again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import insert, select

from lumbar import __version__
from lumbar.errors import Problem, StoreError
from lumbar.operations.allocation import (
    Slot,
    allocation_digest,
    generate_allocation_list,
    read_allocation_csv,
)
from lumbar.operations.consort import ConsortService
from lumbar.operations.context import SYSTEM_ACTOR, Clock, Context, Principal, utc_now
from lumbar.operations.dataset import DatasetService
from lumbar.operations.enrolment import (
    EnrolmentService,
    IdentityView,
    ParticipantView,
    ScreeningView,
)
from lumbar.operations.people import GrantView, PeopleService, SiteView, StaffView
from lumbar.operations.randomization import Assignment, RandomizationReport, RandomizationService
from lumbar.operations.responses import QuestionnaireView, ResponseService
from lumbar.operations.safety import AdverseEventView, SafetyService
from lumbar.operations.schedule import ScheduleService, VisitStatus
from lumbar.operations.treatment import Adherence, TreatmentPlan, TreatmentService
from lumbar.protocol import Protocol, all_strata, stratum_key
from lumbar.store.audit import AuditReport, append_audit, verify_chain
from lumbar.store.database import Database, default_key_file
from lumbar.store.schema import (
    AllocationSlot,
    Site,
    Staff,
    StratumCounter,
    TrialRecord,
)
from lumbar.store.vault import KEY_ENV, Vault, create_key_file, load_key

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Trial", "TrialCreated", "TrialInfo", "create_trial"]


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


class Trial:
    """An open trial, seen by one principal. See :func:`create_trial`."""

    def __init__(self, context: Context, principal: Principal, *, owns_context: bool = False):
        self.context = context
        self.principal = principal
        self._owns_context = owns_context
        self._people = PeopleService(context, principal)
        self._enrolment = EnrolmentService(context, principal)
        self._responses = ResponseService(context, principal)
        self._randomization = RandomizationService(context, principal)
        self._schedule = ScheduleService(context, principal)
        self._treatment = TreatmentService(context, principal)
        self._safety = SafetyService(context, principal)
        self._dataset = DatasetService(context, principal)
        self._consort = ConsortService(context, principal)

    @classmethod
    def open(
        cls,
        url: str | None,
        actor: str | Principal,
        *,
        key_file: Path | None = None,
        key: bytes | None = None,
        clock: Clock = utc_now,
    ) -> Trial:
        """Open the trial at ``url`` for one principal (a user name: the operator's word)."""
        context = Context.open(url, key_file=key_file, key=key, clock=clock)
        principal = actor if isinstance(actor, Principal) else Principal.operator(actor)
        return cls(context, principal, owns_context=True)

    def close(self) -> None:
        """Release the database when this trial opened it (a shared context stays open)."""
        if self._owns_context:
            self.context.close()

    @property
    def protocol(self) -> Protocol:
        return self.context.protocol

    @property
    def db(self) -> Database:
        return self.context.db

    def clock(self) -> dt.datetime:
        """Now, by the trial's clock."""
        return self.context.now()

    def authorize(self, permission: str) -> None:
        """Refuse unless the principal holds ``permission`` (for work done outside a unit)."""
        with self.context.unit(self.principal, permission, write=False):
            pass

    # ------------------------------------------------------------------ the trial itself

    def about(self) -> TrialInfo:
        """The trial's own record: title, protocol, when it was made, whether it is synthetic."""
        with self.context.unit(self.principal, "view", write=False) as unit:
            record = unit.session.execute(select(TrialRecord)).scalar_one()
            sites = tuple(
                (str(code), str(name))
                for code, name in unit.session.execute(
                    unit.scope.visible_sites(select(Site.code, Site.name)).order_by(Site.code)
                )
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
                self.context.db.display_url,
            )

    def verify_audit(self) -> AuditReport:
        """Recompute the audit chain: report any record changed, deleted or inserted."""
        with self.context.unit(self.principal, "audit", write=False) as unit:
            return verify_chain(unit.session)

    # ------------------------------------------------------------------ people

    def add_site(self, code: str, name: str) -> SiteView:
        return self._people.add_site(code, name)

    def sites(self) -> tuple[SiteView, ...]:
        return self._people.sites()

    def add_staff(
        self,
        username: str,
        role: str,
        sites: Sequence[str] = (),
        *,
        all_sites: bool = False,
        unblinded: bool | None = None,
        reason: str | None = None,
    ) -> StaffView:
        return self._people.add_staff(
            username, role, sites, all_sites=all_sites, unblinded=unblinded, reason=reason
        )

    def staff(self) -> tuple[StaffView, ...]:
        return self._people.staff()

    def grant(self, username: str, kind: str, reason: str) -> GrantView:
        return self._people.grant(username, kind, reason)

    def revoke(self, username: str, kind: str, reason: str) -> None:
        self._people.revoke(username, kind, reason)

    def countersign(self, grant_id: int) -> GrantView:
        return self._people.countersign(grant_id)

    def grants(self) -> list[GrantView]:
        return self._people.grants()

    def set_active(self, username: str, active: bool, reason: str) -> None:
        self._people.set_active(username, active, reason)

    # ------------------------------------------------------------------ enrolment

    def screen(
        self, site: str, answers: Mapping[str, Any], *, synthetic: bool = False
    ) -> ScreeningView:
        return self._enrolment.screen(site, answers, synthetic=synthetic)

    def update_screening(
        self, reference: str, answers: Mapping[str, Any], reason: str
    ) -> ScreeningView:
        return self._enrolment.update_screening(reference, answers, reason)

    def record_identity(
        self,
        reference: str,
        *,
        name: str | None = None,
        contact: str | None = None,
        birth_date: dt.date | None = None,
    ) -> None:
        self._enrolment.record_identity(
            reference, name=name, contact=contact, birth_date=birth_date
        )

    def identity(self, reference: str) -> IdentityView:
        return self._enrolment.identity(reference)

    def consent(self, reference: str, version: str, consent_date: dt.date) -> None:
        self._enrolment.consent(reference, version, consent_date)

    def enrol(self, reference: str) -> str:
        return self._enrolment.enrol(reference)

    def withdraw(self, reference: str, kind: str, reason: str, effective_date: dt.date) -> None:
        self._enrolment.withdraw(reference, kind, reason, effective_date)

    def participants(self) -> list[ParticipantView]:
        return self._enrolment.participants()

    # ------------------------------------------------------------------ questionnaires

    def record_questionnaire(
        self,
        reference: str,
        visit: str,
        instrument: str,
        answers: Mapping[str, Any],
        *,
        completed_on: dt.date,
        source: str = "staff_entry",
    ) -> QuestionnaireView:
        return self._responses.record_questionnaire(
            reference, visit, instrument, answers, completed_on=completed_on, source=source
        )

    def record_visit(
        self,
        reference: str,
        visit: str,
        questionnaires: Mapping[str, Mapping[str, Any]],
        *,
        completed_on: dt.date,
        source: str = "staff_entry",
    ) -> tuple[QuestionnaireView, ...]:
        return self._responses.record_visit(
            reference, visit, questionnaires, completed_on=completed_on, source=source
        )

    def edit_questionnaire(
        self,
        reference: str,
        visit: str,
        instrument: str,
        answers: Mapping[str, Any],
        reason: str,
    ) -> QuestionnaireView:
        return self._responses.edit_questionnaire(reference, visit, instrument, answers, reason)

    # ------------------------------------------------------------------ randomization

    def randomize(self, reference: str) -> Assignment:
        return self._randomization.randomize(reference)

    def unblind(self, reference: str, reason: str, *, confirm: str) -> str:
        return self._randomization.unblind(reference, reason, confirm=confirm)

    def assignment(self, reference: str) -> Assignment:
        return self._randomization.assignment(reference)

    def verify_randomization(self) -> RandomizationReport:
        return self._randomization.verify_randomization()

    # ------------------------------------------------------------------ schedule

    def schedule(self, reference: str, on: dt.date | None = None) -> list[VisitStatus]:
        return self._schedule.schedule(reference, on)

    def due(
        self, site: str | None = None, on: dt.date | None = None, *, missed: bool = False
    ) -> list[VisitStatus]:
        return self._schedule.due(site, on, missed=missed)

    # ------------------------------------------------------------------ treatment and safety

    def log_session(
        self,
        reference: str,
        session_date: dt.date,
        minutes: int,
        techniques: Sequence[str],
        body_regions: Sequence[str],
        *,
        home_care: Sequence[str] = (),
        notes: str = "",
    ) -> int:
        return self._treatment.log_session(
            reference,
            session_date,
            minutes,
            techniques,
            body_regions,
            home_care=home_care,
            notes=notes,
        )

    def treatment_plan(self, reference: str) -> TreatmentPlan:
        return self._treatment.plan(reference)

    def adherence(self) -> list[Adherence]:
        return self._treatment.adherence()

    def sessions_table(self) -> pd.DataFrame:
        return self._treatment.sessions_table()

    def report_adverse_event(
        self,
        reference: str,
        description: str,
        onset_date: dt.date,
        *,
        severity: str,
        serious: bool,
        relatedness: str,
        outcome: str = "unknown",
    ) -> AdverseEventView:
        return self._safety.report_adverse_event(
            reference,
            description,
            onset_date,
            severity=severity,
            serious=serious,
            relatedness=relatedness,
            outcome=outcome,
        )

    def update_adverse_event(self, event_id: int, *, outcome: str, reason: str) -> AdverseEventView:
        return self._safety.update_adverse_event(event_id, outcome=outcome, reason=reason)

    def adverse_events(self) -> list[AdverseEventView]:
        return self._safety.adverse_events()

    def adverse_event_table(self) -> pd.DataFrame:
        return self._safety.adverse_event_table()

    # ------------------------------------------------------------------ data out

    def dataset(self, on: dt.date | None = None) -> pd.DataFrame:
        return self._dataset.dataset(on)

    def export(self, path: Path, file_format: str = "csv") -> int:
        return self._dataset.export(path, file_format)

    def consort_records(self, on: dt.date | None = None) -> pd.DataFrame:
        return self._consort.consort_records(on)


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
            [Problem("db", "already holds a trial", database.display_url, "choose a new database")],
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
                may_unblind=False,
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
