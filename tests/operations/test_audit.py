"""The audit trail: every write recorded, refusals leave no trace, tampering is found.

Tampering needs the append-only triggers out of the way: the tests drop them
(SQLite) or disable them (PostgreSQL) with raw SQL, as someone with direct
access to the database could, and then check that ``verify_audit`` names the
record touched. The attacker holds the database but not the audit key: where they
forge a record, they link it the only way they can, with plain SHA-256 (the chain's
scheme before it was keyed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from lumbar.errors import AnswerError, LumbarError, OperationError
from lumbar.operations import Trial
from lumbar.store.audit import canonical
from lumbar.store.schema import AllocationSlot, AuditHead, AuditRecord, Base
from tests.operations.world import World, answers_for, eligible_answers, rdq_answers

pytestmark = pytest.mark.integration

AUDIT = AuditRecord.__table__
COLUMNS = [column.name for column in AUDIT.columns]
Entry = tuple[str, str, str, str]
"""An audit record as (actor, action, entity, entity id)."""


# ---------------------------------------------------------------------- helpers


def ready(world: World, coord: Trial, site: str = "SEA", rdq_yes: int = 8) -> str:
    """A new participant at ``site``, enrolled with a complete baseline, not yet randomized."""
    screening = coord.screen(site, eligible_answers(world.protocol))
    coord.consent(screening.screening_number, "1.0", world.clock.today)
    study_id = coord.enrol(screening.screening_number)
    for instrument in world.protocol.baseline.instruments:
        answers = rdq_answers(rdq_yes) if instrument == "rdq" else answers_for(instrument, 1)
        coord.record_questionnaire(
            study_id, "baseline", instrument, answers, completed_on=world.clock.today
        )
    return study_id


def head(trial: Trial) -> tuple[int, str]:
    with trial.db.read() as session:
        row = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
        return row.seq, row.hash


def records(trial: Trial, after: int = 0) -> list[AuditRecord]:
    with trial.db.read() as session:
        return list(
            session.execute(
                select(AuditRecord).where(AuditRecord.seq > after).order_by(AuditRecord.seq)
            ).scalars()
        )


def snapshot(trial: Trial) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with trial.db.read() as session:
        return {
            table.name: [
                tuple(row)
                for row in session.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def findings(trial: Trial) -> list[tuple[int, str]]:
    """The chain's findings (a tampered chain also unties the rows its records imaged)."""
    return [(f.seq, f.kind) for f in trial.verify_audit().findings if f.table is None]


def record_hash(record: AuditRecord) -> str:
    """A link as someone without the audit key can compute one: plain SHA-256."""
    fields = [
        record.seq,
        record.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        record.actor,
        record.action,
        record.entity,
        record.entity_id,
        record.old,
        record.new,
        record.reason,
        *(() if record.origin is None else (record.origin,)),
        *(() if record.rows is None else (record.rows,)),
    ]
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((record.prev_hash + body).encode("utf-8")).hexdigest()


def allow_tampering(trial: Trial) -> None:
    """Take the append-only triggers out of the way, as someone with database access could."""
    with trial.db.engine.begin() as connection:
        if trial.db.backend == "sqlite":
            connection.execute(text("DROP TRIGGER audit_append_only_update"))
            connection.execute(text("DROP TRIGGER audit_append_only_delete"))
        else:
            connection.execute(text("ALTER TABLE audit DISABLE TRIGGER USER"))


def execute(trial: Trial, *statements: Any) -> None:
    with trial.db.engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def row(trial: Trial, seq: int) -> dict[str, Any]:
    with trial.db.engine.connect() as connection:
        return dict(
            connection.execute(select(AUDIT).where(AuditRecord.seq == seq)).mappings().one()
        )


def flip(digest: str) -> str:
    """Another hex digest, one character different."""
    return ("1" if digest[0] == "0" else "0") + digest[1:]


def busy(world: World) -> Trial:
    """A trial with some of everything: returns the monitor's view of it."""
    today = world.clock.today
    coord, therapist = world.as_("coord"), world.as_("ther")
    first = ready(world, coord)
    coord.edit_questionnaire(first, "baseline", "rdq", {"rdq_20": 1}, "paper form misread")
    coord.randomize(first)
    second = ready(world, coord)
    coord.randomize(second)
    coord.record_identity(second, name="Ada Example", contact="ada@example.org")
    event = coord.report_adverse_event(
        first, "soreness", today, severity="mild", serious=False, relatedness="possible"
    )
    coord.update_adverse_event(event.id, outcome="recovered", reason="phone call")
    therapist.log_session(first, today, 60, ["effleurage"], ["low_back"])
    coord.unblind(second, "emergency department asks", confirm=second)
    coord.withdraw(second, "withdrew_consent", "moved away", today)
    world.clock.advance(70)
    coord.record_questionnaire(
        first, "week_10", "rdq", rdq_answers(3), completed_on=world.clock.today
    )
    monitor: Trial = world.as_("monitor")
    return monitor


# ---------------------------------------------------------------------- what is recorded


def test_every_write_appends_its_records_and_reads_append_nothing(
    world: World, tmp_path: Path
) -> None:
    today = world.clock.today
    admin, coord, therapist, stat = (world.as_(u) for u in ("admin", "coord", "ther", "stat"))

    def writes(
        operation: Callable[..., object], *args: Any, **kwargs: Any
    ) -> tuple[Any, list[AuditRecord]]:
        """What ``operation(*args, **kwargs)`` returns, and the audit records it appended."""
        before = head(coord)
        result = operation(*args, **kwargs)
        added = records(coord, after=before[0])
        assert head(coord) == ((added[-1].seq, added[-1].hash) if added else before)
        assert all(record.at == world.clock.now for record in added)
        return result, added

    def entries(added: list[AuditRecord]) -> list[Entry]:
        return [(r.actor, r.action, r.entity, r.entity_id) for r in added]

    _, added = writes(lambda: admin.add_site("BOS", "Boston"))
    assert entries(added) == [("admin", "site.add", "site", "BOS")]
    assert added[0].new == canonical({"code": "BOS", "name": "Boston"})

    _, added = writes(lambda: admin.add_staff("newcomer", "monitor", all_sites=True))
    assert entries(added) == [("admin", "staff.add", "staff", "newcomer")]

    screening, added = writes(lambda: coord.screen("SEA", {"age": 50}))
    number = screening.screening_number
    assert entries(added) == [("coord", "screening.record", "participant", number)]

    _, added = writes(
        lambda: coord.update_screening(number, eligible_answers(world.protocol), "second call")
    )
    assert entries(added) == [("coord", "screening.update", "participant", number)]
    assert added[0].reason == "second call"
    assert '"status":"incomplete"' in str(added[0].old)
    assert '"status":"eligible"' in str(added[0].new)

    _, added = writes(lambda: coord.record_identity(number, name="Ada Example"))
    assert entries(added) == [("coord", "identity.set", "participant", number)]
    assert added[0].new == canonical({"fields": ["name"]})

    _, added = writes(lambda: coord.consent(number, "1.0", today))
    assert entries(added) == [("coord", "consent.record", "participant", number)]

    study_id, added = writes(lambda: coord.enrol(number))
    assert entries(added) == [("coord", "participant.enrol", "participant", number)]
    assert added[0].new == canonical({"study_id": study_id})

    for instrument in world.protocol.baseline.instruments:
        answers = rdq_answers(8) if instrument == "rdq" else answers_for(instrument, 1)
        _, added = writes(
            coord.record_questionnaire,
            study_id,
            "baseline",
            instrument,
            answers,
            completed_on=today,
        )
        entity_id = f"{study_id}/baseline/{instrument}"
        assert entries(added) == [("coord", "questionnaire.record", "questionnaire", entity_id)]

    _, added = writes(
        lambda: coord.edit_questionnaire(study_id, "baseline", "rdq", {"rdq_20": 1}, "misread")
    )
    assert entries(added) == [
        ("coord", "questionnaire.edit", "questionnaire", f"{study_id}/baseline/rdq")
    ]
    assert added[0].reason == "misread"

    _, added = writes(lambda: coord.randomize(study_id))
    assert entries(added) == [("coord", "participant.randomize", "participant", study_id)]

    arm, added = writes(
        lambda: coord.unblind(study_id, "emergency department asks", confirm=study_id)
    )
    assert entries(added) == [("coord", "participant.unblind", "participant", study_id)]
    assert added[0].reason == "emergency department asks"
    assert arm != "usual_care", "the seed's first slot is a massage arm"

    technique = world.protocol.arm(arm).techniques[0]
    number_of_session, added = writes(
        lambda: therapist.log_session(study_id, today, 90, [technique], ["low_back"])
    )
    assert number_of_session == 1
    assert [e[:3] for e in entries(added)] == [("ther", "session.log", "treatment_session")]

    event, added = writes(
        lambda: coord.report_adverse_event(
            study_id, "soreness", today, severity="mild", serious=False, relatedness="possible"
        )
    )
    assert entries(added) == [("coord", "adverse_event.record", "adverse_event", str(event.id))]
    serious, added = writes(
        lambda: therapist.report_adverse_event(
            study_id, "fainted", today, severity="severe", serious=True, relatedness="unlikely"
        )
    )
    # ... and its notice for the monitors, queued in the same unit of work.
    assert entries(added) == [
        ("ther", "adverse_event.serious", "adverse_event", str(serious.id)),
        ("ther", "notification.queue", "outbox", "1"),
    ]

    _, added = writes(
        lambda: coord.update_adverse_event(event.id, outcome="recovered", reason="phone call")
    )
    assert entries(added) == [("coord", "adverse_event.update", "adverse_event", str(event.id))]
    assert (added[0].old, added[0].new, added[0].reason) == (
        canonical({"outcome": "unknown"}),
        canonical({"outcome": "recovered"}),
        "phone call",
    )

    _, added = writes(lambda: coord.withdraw(study_id, "discontinued_treatment", "pain", today))
    assert entries(added) == [
        ("coord", "participant.discontinued_treatment", "participant", study_id)
    ]
    assert added[0].reason == "pain"

    for file_format in ("csv", "parquet"):
        rows, added = writes(stat.export, tmp_path / f"data.{file_format}", file_format)
        assert rows == 4
        assert entries(added) == [("stat", "dataset.export", "dataset", file_format)]

    # Reads append nothing ...
    monitor, coord_open = world.as_("monitor"), world.as_("coord_open")
    reads: list[Callable[[], object]] = [
        coord.participants,
        coord.sites,
        admin.staff,
        coord.due,
        lambda: coord.schedule(study_id),
        lambda: coord.assignment(study_id),
        coord_open.adherence,
        coord_open.adverse_events,
        stat.dataset,
        monitor.verify_audit,
        monitor.verify_randomization,
    ]
    for read in reads:
        _, added = writes(read)
        assert added == [], read
    # ... except opening identifiers, which says who looked.
    for user in ("coord", "admin"):
        view, added = writes(world.as_(user).identity, study_id)
        assert view.name == "Ada Example"
        assert entries(added) == [(user, "identity.read", "participant", study_id)]

    report = monitor.verify_audit()
    assert report.intact
    assert report.records == report.head_seq == len(records(coord))
    assert report.head_hash == records(coord)[-1].hash


def test_a_refused_operation_changes_nothing(world: World) -> None:
    today = world.clock.today
    coord, therapist = world.as_("coord"), world.as_("ther")
    randomized = ready(world, coord)
    coord.randomize(randomized)
    screening = coord.screen("SEA", eligible_answers(world.protocol))
    coord.consent(screening.screening_number, "1.0", today)
    partial = coord.enrol(screening.screening_number)
    coord.record_questionnaire(partial, "baseline", "rdq", rdq_answers(3), completed_on=today)
    waiting = ready(world, coord)

    refusals: list[tuple[type[LumbarError], str, Callable[[], object]]] = [
        (OperationError, "randomized once only", lambda: coord.randomize(randomized)),
        (
            AnswerError,
            "item bothersomeness",
            lambda: coord.record_questionnaire(
                partial,
                "baseline",
                "bothersomeness",
                {"bothersomeness": 11},
                completed_on=today,
            ),
        ),
        (
            AnswerError,
            "rdq: item rdq_01",
            lambda: coord.edit_questionnaire(partial, "baseline", "rdq", {"rdq_01": 2}, "typo"),
        ),
        (
            OperationError,
            "reason",
            lambda: coord.edit_questionnaire(partial, "baseline", "rdq", {"rdq_01": 1}, " "),
        ),
        (OperationError, "already enrolled", lambda: coord.enrol(screening.screening_number)),
        (OperationError, "missing: bothersomeness", lambda: coord.randomize(partial)),
        (
            OperationError,
            "unknown kind of withdrawal",
            lambda: coord.withdraw(randomized, "vanished", "gone", today),
        ),
        (
            OperationError,
            "must be from 1 to",
            lambda: therapist.log_session(randomized, today, 0, ["effleurage"], ["low_back"]),
        ),
        (
            OperationError,
            "screening answers are fixed",
            lambda: coord.update_screening(randomized, {"age": 30}, "typo"),
        ),
    ]
    for kind, words, operation in refusals:
        before = snapshot(coord)
        with pytest.raises(kind, match=words):
            operation()
        assert snapshot(coord) == before, words

    # A refusal after the transaction has written (the stratum's counter moved on,
    # then the slot is missing) rolls back whole.
    stratum = coord.assignment(randomized).stratum
    execute(
        coord,
        delete(AllocationSlot).where(
            AllocationSlot.stratum == stratum, AllocationSlot.position == 2
        ),
    )
    before = snapshot(coord)
    with pytest.raises(OperationError, match="the allocation list is used up"):
        coord.randomize(waiting)
    assert snapshot(coord) == before
    assert world.as_("monitor").verify_audit().intact


# ---------------------------------------------------------------------- tampering


def test_tampering_with_any_column_of_a_record_is_found(world: World) -> None:
    monitor = busy(world)
    report = monitor.verify_audit()
    assert report.intact
    assert report.records == report.head_seq > 30
    target = next(r for r in records(monitor) if r.action == "questionnaire.edit")
    seq = target.seq
    assert None not in (target.old, target.new, target.reason, target.rows)
    assert 1 < seq < report.head_seq - 5  # a record in the middle

    allow_tampering(monitor)
    original = row(monitor, seq)
    forged: dict[str, Any] = {
        "at": original["at"] + dt.timedelta(seconds=1),
        "actor": "admin",
        "origin": "web",
        "action": "questionnaire.record",
        "entity": "participant",
        "entity_id": original["entity_id"].replace("rdq", "lifestyle"),
        "old": canonical({"answers": {"rdq_20": 1}}),
        "new": canonical({"answers": {"rdq_20": 0}}),
        "reason": "an innocent reason",
        "rows": '{"questionnaire_answer":{}}',
        "prev_hash": flip(original["prev_hash"]),
        "hash": flip(original["hash"]),
    }
    assert set(forged) == set(COLUMNS) - {"seq"}
    found: dict[str, list[tuple[int, str]]] = {}
    clear = [("reason", None), ("old", None), ("origin", None), ("rows", None)]
    for column, value in [*forged.items(), *clear]:
        key = column if value is not None else f"{column} cleared"
        execute(monitor, update(AuditRecord).where(AuditRecord.seq == seq).values({column: value}))
        found[key] = findings(monitor)
        execute(monitor, update(AuditRecord).where(AuditRecord.seq == seq).values(original))
        assert findings(monitor) == [], f"{key} not restored"
    changed = [(seq, "changed")]
    assert found == {
        "at": changed,
        "actor": changed,
        "origin": changed,
        "action": changed,
        "entity": changed,
        "entity_id": changed,
        "old": changed,
        "new": changed,
        "reason": changed,
        "rows": changed,
        "prev_hash": changed,
        # the next record no longer follows it either
        "hash": [*changed, (seq + 1, "inserted")],
        "reason cleared": changed,
        "old cleared": changed,
        "origin cleared": changed,
        "rows cleared": changed,
    }


def test_deleted_inserted_and_replaced_records_are_found(world: World) -> None:
    monitor = busy(world)
    allow_tampering(monitor)
    last = head(monitor)[0]
    middle = last // 2
    saved = {seq: row(monitor, seq) for seq in (middle, last - 1, last)}

    def restore(*seqs: int) -> None:
        execute(
            monitor,
            delete(AuditRecord).where(AuditRecord.seq.in_(seqs)),
            *(insert(AuditRecord).values(saved[seq]) for seq in seqs),
        )
        assert findings(monitor) == []

    def chain(report: Any) -> list[Any]:
        return [f for f in report.findings if f.table is None]

    # A record deleted from the middle.
    execute(monitor, delete(AuditRecord).where(AuditRecord.seq == middle))
    report = monitor.verify_audit()
    assert [(f.seq, f.kind) for f in chain(report)] == [(middle, "deleted")]
    assert chain(report)[0].detail == f"record {middle} missing"
    restore(middle)

    # The last records deleted.
    execute(monitor, delete(AuditRecord).where(AuditRecord.seq >= last - 1))
    report = monitor.verify_audit()
    anchored = [(last, "anchor")] if monitor.context.anchor is not None else []
    assert [(f.seq, f.kind) for f in chain(report)] == [(last - 1, "deleted"), *anchored]
    assert chain(report)[0].detail == f"records {last - 1} to {last} were deleted from the end"
    # ... and the rows their images held are no longer accounted for by the trail.
    assert any(f.table == "questionnaire" for f in report.findings)
    restore(last - 1, last)

    # A forged record after the end, linked onto the chain without the key.
    after = AuditRecord(
        seq=last + 1,
        at=world.clock.now,
        actor="coord",
        action="participant.randomize",
        entity="participant",
        entity_id="SEA-0099",
        old=None,
        new=canonical({"stratum": "baseline_rdq=rdq_under_12", "position": 9}),
        reason=None,
        rows=None,
        prev_hash=saved[last]["hash"],
        hash="",
    )
    after.hash = record_hash(after)
    execute(monitor, insert(AuditRecord).values(forged_values(after)))
    report = monitor.verify_audit()
    assert [(f.seq, f.kind) for f in report.findings] == [
        (last + 1, "changed"),
        (last + 1, "inserted"),
    ]
    assert "keyed link" in report.findings[0].detail
    assert "added after the head" in report.findings[1].detail
    execute(monitor, delete(AuditRecord).where(AuditRecord.seq == last + 1))
    assert findings(monitor) == []

    # A record replaced by a forged one that matches its own hash: the next one breaks.
    original = saved[middle]
    replacement = AuditRecord(**{**original, "actor": "admin", "reason": "forged", "hash": ""})
    replacement.hash = record_hash(replacement)
    execute(
        monitor,
        delete(AuditRecord).where(AuditRecord.seq == middle),
        insert(AuditRecord).values(forged_values(replacement)),
    )
    report = monitor.verify_audit()
    assert [(f.seq, f.kind) for f in chain(report)] == [
        (middle, "changed"),
        (middle + 1, "inserted"),
    ]
    assert "replaced" in chain(report)[1].detail
    restore(middle)


def forged_values(record: AuditRecord) -> dict[str, Any]:
    return {column: getattr(record, column) for column in COLUMNS}


# ---------------------------------------------------------------------- the triggers


def test_the_database_refuses_to_change_or_delete_audit_records(world: World) -> None:
    monitor = world.as_("monitor")
    before = records(monitor)
    assert len(before) >= 5
    statements = [
        "UPDATE audit SET reason = 'rewritten' WHERE seq = 2",
        "UPDATE audit SET actor = 'nobody'",
        "DELETE FROM audit WHERE seq = 2",
        "DELETE FROM audit",
    ]
    if monitor.db.backend == "postgresql":
        statements.append("TRUNCATE audit")
    for statement in statements:
        with pytest.raises(DBAPIError, match="audit records are append-only"):
            execute(monitor, text(statement))
    after = records(monitor)
    assert [(r.seq, r.actor, r.reason, r.hash) for r in after] == [
        (r.seq, r.actor, r.reason, r.hash) for r in before
    ]
    assert monitor.verify_audit().intact
