"""Attacks by someone holding the database but not the keys, and what each key's loss costs.

Each test does what the integrity review did to a trial (issue 10) and checks that
lumbar now finds it: data changed behind the audit trail's back, a chain rewritten,
extended, truncated or rolled back without the audit key, allocations swapped, the
arms read from the file. The attacker works with raw SQL, after taking the audit
table's append-only triggers out of the way where they need to.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from lumbar.application import read_trial, run_analysis
from lumbar.errors import StoreError
from lumbar.operations import Trial
from lumbar.operations.allocation import generate_allocation_list
from lumbar.store.schema import (
    AdverseEvent,
    Allocation,
    AllocationSlot,
    AuditHead,
    AuditRecord,
    QuestionnaireAnswer,
    QuestionnaireScore,
    Withdrawal,
)
from lumbar.store.vault import Keys, load_keys
from tests.operations.test_audit import (
    allow_tampering,
    busy,
    execute,
    head,
    record_hash,
    records,
)
from tests.operations.world import World

pytestmark = pytest.mark.integration


def kinds(trial: Trial) -> list[tuple[str | None, str]]:
    return [(f.table, f.kind) for f in trial.verify_audit().findings]


# ---------------------------------------------------------------------- data behind the trail


def test_an_answer_and_its_score_changed_in_the_database_are_named(world: World) -> None:
    monitor = busy(world)
    assert monitor.verify_audit().intact
    with monitor.db.read() as session:
        answer = (
            session.execute(select(QuestionnaireAnswer).where(QuestionnaireAnswer.item == "rdq_01"))
            .scalars()
            .first()
        )
        assert answer is not None
        questionnaire_id = answer.questionnaire_id
    execute(
        monitor,
        update(QuestionnaireAnswer)
        .where(
            QuestionnaireAnswer.questionnaire_id == questionnaire_id,
            QuestionnaireAnswer.item == "rdq_01",
        )
        .values(value=1 - (answer.value or 0)),
        update(QuestionnaireScore)
        .where(QuestionnaireScore.questionnaire_id == questionnaire_id)
        .values(value=QuestionnaireScore.value + 1),
    )
    report = monitor.verify_audit()
    details = [f.detail for f in report.findings]
    assert (
        f"questionnaire_answer questionnaire_id {questionnaire_id}, item rdq_01: value changed "
        "outside lumbar"
    ) in " ".join(details)
    assert any(
        f.table == "questionnaire_score" and "value changed" in f.detail for f in report.findings
    )
    assert all(f.table in ("questionnaire_answer", "questionnaire_score") for f in report.findings)


def test_deleted_adverse_events_and_withdrawals_are_named(world: World) -> None:
    monitor = busy(world)
    execute(monitor, delete(AdverseEvent), delete(Withdrawal))
    found = kinds(monitor)
    assert ("adverse_event", "deleted") in found
    assert ("withdrawal", "deleted") in found
    assert {table for table, _ in found} == {"adverse_event", "withdrawal"}


def test_rows_added_or_users_promoted_outside_lumbar_are_named(world: World) -> None:
    monitor = busy(world)
    with monitor.db.engine.begin() as connection:
        connection.execute(text("UPDATE staff SET role = 'admin', all_sites = :yes"), {"yes": True})
        connection.execute(
            text(
                "INSERT INTO consent (participant_id, version, consent_date, taken_by, recorded_at)"
                " VALUES (1, '9.9', '2026-01-05', 1, '2026-01-05 09:00:00')"
            )
        )
    report = monitor.verify_audit()
    assert any(
        f.table == "staff" and "role" in f.detail and "changed" in f.detail for f in report.findings
    )
    assert any(f.table == "consent" and f.kind == "added" for f in report.findings)


def test_swapped_allocations_are_found_by_both_checks(world: World) -> None:
    monitor = busy(world)
    with monitor.db.read() as session:
        first, second = session.execute(
            select(Allocation).order_by(Allocation.participant_id)
        ).scalars()
        assert first.stratum == second.stratum
        one, one_slot, one_arm = first.participant_id, first.slot_id, first.arm_sealed
        two, two_slot, two_arm = second.participant_id, second.slot_id, second.arm_sealed
        spare = session.execute(select(func.max(AllocationSlot.id))).scalar_one()
    # Move each participant onto the other's slot, sealed arm and all (through a spare
    # slot: slot ids are unique).
    execute(
        monitor,
        update(Allocation).where(Allocation.participant_id == one).values(slot_id=spare),
        update(Allocation)
        .where(Allocation.participant_id == two)
        .values(slot_id=one_slot, arm_sealed=one_arm),
        update(Allocation)
        .where(Allocation.participant_id == one)
        .values(slot_id=two_slot, arm_sealed=two_arm),
    )
    randomization = monitor.verify_randomization()
    assert not randomization.valid
    text_of = " ".join(f"{p.where} {p.rule}" for p in randomization.problems)
    assert "the audit trail recorded slot" in text_of
    assert any(f.table == "allocation" for f in monitor.verify_audit().findings)


# ---------------------------------------------------------------------- the chain without the key


def test_a_chain_rewritten_without_the_key_is_found(world: World) -> None:
    """Re-linking every record with plain SHA-256 (a second's work) no longer passes."""
    monitor = busy(world)
    allow_tampering(monitor)
    previous = "0" * 64
    rewritten = []
    for record in records(monitor):
        record.reason = "rewritten" if record.reason else None
        record.prev_hash = previous
        record.hash = record_hash(record)
        previous = record.hash
        rewritten.append(record)
    with monitor.db.engine.begin() as connection:
        for record in rewritten:
            connection.execute(
                update(AuditRecord)
                .where(AuditRecord.seq == record.seq)
                .values(reason=record.reason, prev_hash=record.prev_hash, hash=record.hash)
            )
        connection.execute(update(AuditHead).values(hash=previous))
    report = monitor.verify_audit()
    changed = [f.seq for f in report.findings if f.kind == "changed" and f.table is None]
    assert changed == [record.seq for record in rewritten]


def test_a_tail_deleted_and_the_head_reset_is_found(world: World) -> None:
    monitor = busy(world)
    allow_tampering(monitor)
    last, _ = head(monitor)
    keep = records(monitor)[last - 3]
    execute(
        monitor,
        delete(AuditRecord).where(AuditRecord.seq > keep.seq),
        update(AuditHead).values(seq=keep.seq, hash=keep.hash),
    )
    # The anchor beside a SQLite file sees it, and without an anchor (a server database
    # without LUMBAR_ANCHOR) the head's own keyed mark does.
    if monitor.context.anchor is not None:
        assert (None, "anchor") in kinds(monitor)
        monitor.context.anchor.unlink()
    assert (None, "head") in kinds(monitor)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_older_copy_put_back_is_found_by_the_anchor(world: World) -> None:
    coord = world.as_("coord")
    path = coord.db.sqlite_path
    assert path is not None
    older = path.with_suffix(".older")
    with coord.db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    coord.close()
    shutil.copyfile(path, older)
    world.enrolled()  # more writes after the copy
    assert world.as_("monitor").verify_audit().intact
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(older, path)
    report = world.as_("monitor").verify_audit()
    assert [f.kind for f in report.findings] == ["anchor"]
    assert "rolled back" in report.findings[0].detail


# ---------------------------------------------------------------------- the sealed list


def test_the_database_holds_no_readable_arm(world: World) -> None:
    monitor = busy(world)
    arms = [arm.id for arm in world.protocol.arms]
    with monitor.db.engine.connect() as connection:
        # (The trial table holds the protocol, which names the arms: it is not secret.)
        for table in ("allocation", "allocation_slot", "audit"):
            dump = json.dumps(
                [
                    [str(value) for value in row]
                    for row in connection.execute(text(f"SELECT * FROM {table}"))
                ]
            )
            for arm in arms:
                assert arm not in dump, (table, arm)
    # Nor by testing a guessed list (here: the true one) against the list's fingerprint.
    with monitor.db.read() as session:
        digest, length = session.execute(
            text("SELECT allocation_digest, allocation_length FROM trial")
        ).one()
    slots = generate_allocation_list(world.protocol, 20260105, length)
    plain = "".join(
        f"{slot.stratum}\t{slot.position}\t{slot.block}\t{slot.block_size}\t{slot.arm}\n"
        for slot in sorted(slots, key=lambda slot: (slot.stratum, slot.position))
    )
    assert digest != hashlib.sha256(plain.encode()).hexdigest()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_database_key_anchor_and_backup_files_are_owner_only(world: World, tmp_path: Path) -> None:
    coord = world.as_("coord")
    path = coord.db.sqlite_path
    assert path is not None
    world.enrolled()
    files = [path, Path(f"{path}-wal"), world.key_file, Path(f"{path}.head")]
    for file in files:
        assert file.exists(), file
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


# ---------------------------------------------------------------------- the keys' reach


def without(world: World, name: str) -> Keys:
    keys = load_keys(world.key_file)
    return Keys(
        **{
            field: None if field == name else getattr(keys, field)
            for field in ("identity", "randomization", "audit")
        }
    )


def test_losing_the_identity_key_loses_the_identifiers_only(world: World, tmp_path: Path) -> None:
    busy(world)
    keys = without(world, "identity")
    stat_user = Trial.open(world.url, "stat_open", keys=keys, clock=world.clock)
    monitor = Trial.open(world.url, "monitor", keys=keys, clock=world.clock)
    assert monitor.verify_audit().intact
    assert stat_user.export(tmp_path / "data.csv") > 0
    assert stat_user.dataset()["arm"].notna().any()
    run = run_analysis(stat_user, tmp_path / "results")
    assert run.analysis is not None
    assert read_trial(stat_user).tidy is not None
    coord = Trial.open(world.url, "coord", keys=keys, clock=world.clock)
    study_id = str(coord.participants()[0].study_id)
    with pytest.raises(StoreError, match="the identity key is not at hand"):
        coord.record_identity(study_id, name="Ada Example")
    # Writes that touch no identifier go on.
    world.clock.advance(1)
    coord.screen("SEA", {"age": 40})


def test_losing_the_randomization_key_stops_randomizing_not_blinded_work(
    world: World, tmp_path: Path
) -> None:
    ready = world.enrolled()
    world.with_baseline(ready)
    keys = without(world, "randomization")
    coord = Trial.open(world.url, "coord", keys=keys, clock=world.clock)
    with pytest.raises(StoreError, match="the randomization key is not at hand") as error:
        coord.randomize(ready)
    assert "allocation list" in str(error.value)
    monitor = Trial.open(world.url, "monitor", keys=keys, clock=world.clock)
    assert monitor.verify_audit().intact
    blinded = Trial.open(world.url, "stat", keys=keys, clock=world.clock).dataset()
    assert blinded["arm"].isna().all()


def test_a_wrong_key_of_any_kind_is_refused_at_open(world: World) -> None:
    keys = load_keys(world.key_file)
    other = Keys.new()
    for name in ("identity", "randomization", "audit"):
        mixed = Keys(
            **{
                field: getattr(other if field == name else keys, field)
                for field in ("identity", "randomization", "audit")
            }
        )
        with pytest.raises(StoreError, match=f"the {name} key does not belong to this trial"):
            Trial.open(world.url, "coord", keys=mixed)
