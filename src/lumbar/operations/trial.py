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
its area (people, credentials, enrolment, responses and survey links,
randomization, schedule, treatment, safety, the outbox, dataset, CONSORT records),
which share one :class:`Context`. Making a ``Trial`` over an open context costs a few
attribute assignments: no engine, key or protocol is read again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

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
from lumbar.operations.audit import AuditService
from lumbar.operations.consent import ConsentService
from lumbar.operations.consort import ConsortService
from lumbar.operations.context import (
    SYSTEM_ACTOR,
    Clock,
    Context,
    Principal,
    Transaction,
    default_anchor,
    utc_now,
)
from lumbar.operations.credentials import CredentialService
from lumbar.operations.dataset import DatasetService
from lumbar.operations.enrolment import (
    EnrolmentService,
)
from lumbar.operations.followup import FollowUpService
from lumbar.operations.outbox import OutboxService
from lumbar.operations.people import PeopleService
from lumbar.operations.randomization import RandomizationService, slot_context
from lumbar.operations.ratings import SessionRatingLinkService
from lumbar.operations.responses import ResponseService
from lumbar.operations.safety import SafetyService
from lumbar.operations.schedule import ScheduleService
from lumbar.operations.survey import SurveyLinkService
from lumbar.operations.treatment import TreatmentService
from lumbar.protocol import Protocol, all_strata, stratum_key
from lumbar.store.audit import AuditReport, verify_trail, write_anchor
from lumbar.store.database import Database, default_key_file
from lumbar.store.schema import (
    AllocationSlot,
    Site,
    Staff,
    StratumCounter,
    TrialRecord,
)
from lumbar.store.vault import KEY_ENV, KEY_NAMES, Keys, Vault, create_key_file, load_keys

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Operation", "Trial", "TrialCreated", "TrialInfo", "create_trial"]


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


class Operation(Generic[S, P, R]):
    """One operation of :class:`Trial`: an area service's method, bound to the trial's service.

    ``trial.screen(...)`` calls ``EnrolmentService.screen`` on the trial's enrolment
    service, with that method's own signature (type checkers see it) and docstring.
    """

    def __init__(self, service: str, method: Callable[Concatenate[S, P], R]) -> None:
        self.service = service
        self.method = method
        self.__doc__ = method.__doc__
        self.__name__ = method.__name__

    @overload
    def __get__(self, trial: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, trial: Trial, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, trial: Trial | None, owner: type[Any]) -> Self | Callable[P, R]:
        if trial is None:
            return self
        service: S = getattr(trial, self.service)
        method = self.method

        @functools.wraps(method)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            return method(service, *args, **kwargs)

        return bound


class Trial:
    """An open trial, seen by one principal. See :func:`create_trial`."""

    def __init__(self, context: Context, principal: Principal, *, owns_context: bool = False):
        self.context = context
        self.principal = principal
        self._owns_context = owns_context
        self._people = PeopleService(context, principal)
        self._credentials = CredentialService(context, principal)
        self._enrolment = EnrolmentService(context, principal)
        self._consent = ConsentService(context, principal)
        self._responses = ResponseService(context, principal)
        self._survey_links = SurveyLinkService(context, principal)
        self._rating_links = SessionRatingLinkService(context, principal)
        self._randomization = RandomizationService(context, principal)
        self._schedule = ScheduleService(context, principal)
        self._follow_up = FollowUpService(context, principal)
        self._treatment = TreatmentService(context, principal)
        self._safety = SafetyService(context, principal)
        self._outbox = OutboxService(context, principal)
        self._dataset = DatasetService(context, principal)
        self._consort = ConsortService(context, principal)
        self._audit = AuditService(context, principal)

    @classmethod
    def open(
        cls,
        url: str | None,
        actor: str | Principal,
        *,
        key_file: Path | None = None,
        keys: Keys | None = None,
        clock: Clock = utc_now,
        consent_documents: Path | None = None,
    ) -> Trial:
        """Open the trial at ``url`` for one principal (a user name: the operator's word);
        ``consent_documents``: the folder of the consent document files."""
        context = Context.open(url, key_file=key_file, keys=keys, clock=clock)
        context.consent_documents = consent_documents
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
        """Check the audit trail and the data against it.

        Recomputes every keyed link and the head (a record changed, deleted, inserted or
        forged; the tail cut off), compares the chain with the anchor file (an older copy
        of the database put back), and replays the row images against every data table
        (a row added, deleted or changed outside lumbar). Needs the audit key only.
        """
        with self.context.unit(self.principal, "audit", write=False) as unit:
            return verify_trail(unit.session, self.context.key("audit"), self.context.anchor)

    # ------------------------------------------------------------------ the areas' operations
    # Each is the area service's own method, bound to this trial's service: one signature,
    # one docstring, written once (see Operation).

    add_site = Operation("_people", PeopleService.add_site)
    sites = Operation("_people", PeopleService.sites)
    add_staff = Operation("_people", PeopleService.add_staff)
    me = Operation("_people", PeopleService.me)
    staff = Operation("_people", PeopleService.staff)
    grant = Operation("_people", PeopleService.grant)
    revoke = Operation("_people", PeopleService.revoke)
    countersign = Operation("_people", PeopleService.countersign)
    grants = Operation("_people", PeopleService.grants)
    set_active = Operation("_people", PeopleService.set_active)

    screen = Operation("_enrolment", EnrolmentService.screen)
    screening = Operation("_enrolment", EnrolmentService.screening)
    update_screening = Operation("_enrolment", EnrolmentService.update_screening)
    record_identity = Operation("_enrolment", EnrolmentService.record_identity)
    identity = Operation("_enrolment", EnrolmentService.identity)
    consent = Operation("_enrolment", EnrolmentService.consent)
    enrol = Operation("_enrolment", EnrolmentService.enrol)
    consent_document = Operation("_consent", ConsentService.consent_document)
    record_electronic_consent = Operation("_consent", ConsentService.record_electronic_consent)
    consents = Operation("_consent", ConsentService.consents)
    verify_consents = Operation("_consent", ConsentService.verify_consents)
    reconsent_due = Operation("_consent", ConsentService.reconsent_due)
    issue_consent_link = Operation("_consent", ConsentService.issue_consent_link)
    revoke_consent_link = Operation("_consent", ConsentService.revoke_consent_link)
    consent_links = Operation("_consent", ConsentService.consent_links)
    withdraw = Operation("_enrolment", EnrolmentService.withdraw)
    participants = Operation("_enrolment", EnrolmentService.participants)
    participant = Operation("_enrolment", EnrolmentService.participant)
    participant_counts = Operation("_enrolment", EnrolmentService.participant_counts)

    record_questionnaire = Operation("_responses", ResponseService.record_questionnaire)
    record_visit = Operation("_responses", ResponseService.record_visit)
    edit_questionnaire = Operation("_responses", ResponseService.edit_questionnaire)
    questionnaires = Operation("_responses", ResponseService.questionnaires)
    questionnaire = Operation("_responses", ResponseService.questionnaire)

    randomize = Operation("_randomization", RandomizationService.randomize)
    unblind = Operation("_randomization", RandomizationService.unblind)
    assignment = Operation("_randomization", RandomizationService.assignment)
    verify_randomization = Operation("_randomization", RandomizationService.verify_randomization)

    schedule = Operation("_schedule", ScheduleService.schedule)
    due = Operation("_schedule", ScheduleService.due)
    progress = Operation("_schedule", ScheduleService.progress)
    follow_up = Operation("_follow_up", FollowUpService.follow_up)

    log_session = Operation("_treatment", TreatmentService.log_session)
    treatment_plan = Operation("_treatment", TreatmentService.plan)
    adherence = Operation("_treatment", TreatmentService.adherence)
    sessions_table = Operation("_treatment", TreatmentService.sessions_table)
    sessions = Operation("_treatment", TreatmentService.sessions)

    report_adverse_event = Operation("_safety", SafetyService.report_adverse_event)
    update_adverse_event = Operation("_safety", SafetyService.update_adverse_event)
    adverse_events = Operation("_safety", SafetyService.adverse_events)
    adverse_event_table = Operation("_safety", SafetyService.adverse_event_table)
    notifications = Operation("_outbox", OutboxService.notifications)
    acknowledge_notification = Operation("_outbox", OutboxService.acknowledge_notification)
    participant_messages = Operation("_outbox", OutboxService.participant_messages)
    plan_messages = Operation("_outbox", OutboxService.plan_messages)
    send_messages = Operation("_outbox", OutboxService.send_messages)

    dataset = Operation("_dataset", DatasetService.dataset)
    export = Operation("_dataset", DatasetService.export)
    consort_records = Operation("_consort", ConsortService.consort_records)
    audit_records = Operation("_audit", AuditService.audit_records)

    set_password = Operation("_credentials", CredentialService.set_password)
    enrol_totp = Operation("_credentials", CredentialService.enrol_totp)
    confirm_totp = Operation("_credentials", CredentialService.confirm_totp)
    reset_totp = Operation("_credentials", CredentialService.reset_totp)
    end_sessions = Operation("_credentials", CredentialService.end_sessions)
    create_token = Operation("_credentials", CredentialService.create_token)
    revoke_token = Operation("_credentials", CredentialService.revoke_token)
    tokens = Operation("_credentials", CredentialService.tokens)
    issue_survey_token = Operation("_survey_links", SurveyLinkService.issue_survey_token)
    revoke_survey_token = Operation("_survey_links", SurveyLinkService.revoke_survey_token)
    survey_links = Operation("_survey_links", SurveyLinkService.survey_links)
    issue_rating_link = Operation("_rating_links", SessionRatingLinkService.issue_rating_link)
    revoke_rating_link = Operation("_rating_links", SessionRatingLinkService.revoke_rating_link)
    rating_links = Operation("_rating_links", SessionRatingLinkService.rating_links)
    given_ratings = Operation("_rating_links", SessionRatingLinkService.given_ratings)


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

    The keys (identity, randomization, audit) come from ``LUMBAR_KEY`` when set;
    otherwise a new key file is written (beside a SQLite database by default) with
    owner-only permissions. A new SQLite file is owner-only too.
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
        keys = load_keys(None)
        missing = [name for name in KEY_NAMES if getattr(keys, name) is None]
        if missing:
            raise StoreError(
                "a key is missing",
                [
                    Problem(
                        KEY_ENV,
                        "must hold every key to create a trial; missing: " + ", ".join(missing),
                        hint=f"unset {KEY_ENV} and let 'lumbar init' write a new key file",
                    )
                ],
            )
    else:
        created_key_file = key_file or default_key_file(database.url)
        keys = create_key_file(created_key_file)
    try:
        database.create_owner_only()
        database.migrate()
        head = _write_trial(
            database,
            keys=keys,
            protocol=protocol,
            slots=slots,
            source=source,
            seed_text=sealed_seed_text,
            length=length,
            admin=admin,
            synthetic=synthetic,
            now=clock(),
        )
        anchor = default_anchor(database)
        if anchor is not None:
            write_anchor(anchor, Vault(keys.audit or b"", "audit"), head, replace=True)
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
    keys: Keys,
    protocol: Protocol,
    slots: tuple[Slot, ...],
    source: str,
    seed_text: str | None,
    length: int,
    admin: str,
    synthetic: bool,
    now: dt.datetime,
) -> tuple[int, str]:
    identity, randomization, audit = (
        Vault(getattr(keys, name) or b"", name) for name in ("identity", "randomization", "audit")
    )
    yaml_text = _protocol_yaml(protocol)
    digest = allocation_digest(slots, randomization)
    with database.write() as session:
        work = Transaction(session, SYSTEM_ACTOR, SYSTEM_ACTOR, now, audit)
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
                else randomization.seal(seed_text, "allocation-seed"),
                allocation_digest=digest,
                allocation_length=length,
                synthetic=synthetic,
                key_check=identity.key_check(),
                randomization_key_check=randomization.key_check(),
                audit_key_check=audit.key_check(),
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
                    "arm_sealed": randomization.seal(
                        slot.arm, slot_context(slot.stratum, slot.position)
                    ),
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
        work.audit(
            "trial.create",
            "trial",
            protocol.id,
            new={
                "protocol_hash": protocol.content_hash,
                "protocol_version": protocol.version,
                "allocation_source": source,
                "allocation_digest": digest,
                "slots": len(slots),
                "synthetic": synthetic,
            },
        )
        work.audit(
            "staff.add",
            "staff",
            admin,
            new={"role": "admin", "unblinded": False, "sites": ["*"]},
        )
        head = work.finish()
    assert head is not None
    return head


def _protocol_yaml(protocol: Protocol) -> str:
    """The protocol as YAML the trial keeps (parsed back, it is the same protocol)."""
    return yaml.safe_dump(
        protocol.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        sort_keys=False,
        allow_unicode=True,
    )
