"""Allocation lists: generation from a seed, checks, a statistician's CSV, and verification."""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select, update

from lumbar.errors import OperationError
from lumbar.operations import Trial, create_trial, generate_allocation_list, read_allocation_csv
from lumbar.operations.allocation import Slot, allocation_digest, check_allocation_list
from lumbar.protocol import Protocol, shipped_protocol
from lumbar.store.schema import AllocationSlot, StratumCounter
from lumbar.store.vault import Vault
from tests.operations.world import Clock, World

PROTOCOL = shipped_protocol("massage-clbp")


@pytest.mark.unit
def test_blocks_hold_every_arm_in_the_ratio() -> None:
    slots = generate_allocation_list(PROTOCOL, seed=1, slots_per_stratum=399)
    assert check_allocation_list(PROTOCOL, slots) == []
    blocks: dict[tuple[str, int], list[Slot]] = {}
    for slot in slots:
        blocks.setdefault((slot.stratum, slot.block), []).append(slot)
    for members in blocks.values():
        size = len(members)
        assert size in (3, 6)
        assert Counter(slot.arm for slot in members) == dict.fromkeys(
            ("usual_care", "structural", "relaxation"), size // 3
        )
    for stratum in ("baseline_rdq=rdq_under_12", "baseline_rdq=rdq_12_or_more"):
        length = max(slot.position for slot in slots if slot.stratum == stratum)
        assert 399 <= length < 399 + 6  # whole blocks, at least the asked length


@pytest.mark.unit
def test_the_same_seed_gives_the_same_list_and_another_seed_another() -> None:
    first = generate_allocation_list(PROTOCOL, seed=5, slots_per_stratum=60)
    assert generate_allocation_list(PROTOCOL, seed=5, slots_per_stratum=60) == first
    assert generate_allocation_list(PROTOCOL, seed=6, slots_per_stratum=60) != first


@pytest.mark.unit
def test_the_stream_is_the_documented_one() -> None:
    # Recompute the first block of the first stratum by hand from the module docstring.
    from lumbar.operations.allocation import _Stream

    def draw(label: str, k: int) -> int:
        digest = hashlib.sha256(f"9:{label}:{k}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    key = "baseline_rdq=rdq_under_12"
    stream = _Stream(9, f"{key}:sizes")
    first = draw(f"{key}:sizes", 0)
    limit = (2**64 // 2) * 2
    assert first < limit  # no rejection for a bound of 2 (limit is 2**64)
    assert stream.below(2) == first % 2


@pytest.mark.unit
def test_arms_are_balanced_over_many_blocks() -> None:
    slots = generate_allocation_list(PROTOCOL, seed=3, slots_per_stratum=3000)
    counts = Counter(slot.arm for slot in slots)
    assert max(counts.values()) - min(counts.values()) == 0  # whole blocks: exactly balanced
    # Blocks are shuffled uniformly: each arm opens a block about a third of the time.
    first: dict[tuple[str, int], Slot] = {}
    for slot in slots:
        key = (slot.stratum, slot.block)
        if key not in first or slot.position < first[key].position:
            first[key] = slot
    leads = Counter(slot.arm for slot in first.values())
    assert all(abs(count / len(first) - 1 / 3) < 0.05 for count in leads.values())


@pytest.mark.unit
def test_checks_find_a_broken_list() -> None:
    slots = list(generate_allocation_list(PROTOCOL, seed=2, slots_per_stratum=12))
    broken = [
        *slots[:-1],
        Slot(
            slots[-1].stratum, slots[-1].position, slots[-1].block, slots[-1].block_size, "placebo"
        ),
    ]
    rules = {problem.rule for problem in check_allocation_list(PROTOCOL, broken)}
    assert "is not an arm of the protocol" in rules
    gap = [slot for slot in slots if slot.position != 2]
    assert any("without gaps" in p.rule for p in check_allocation_list(PROTOCOL, gap))
    one_stratum = [slot for slot in slots if slot.stratum.endswith("rdq_under_12")]
    assert any(p.rule == "has no slots" for p in check_allocation_list(PROTOCOL, one_stratum))


def _write_csv(path: Path, slots: list[Slot]) -> Path:
    lines = ["stratum,position,block,arm"] + [
        f"{slot.stratum},{slot.position},{slot.block},{slot.arm}" for slot in slots
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.unit
def test_a_statistician_list_is_read_and_checked(tmp_path: Path) -> None:
    slots = list(generate_allocation_list(PROTOCOL, seed=4, slots_per_stratum=30))
    read = read_allocation_csv(_write_csv(tmp_path / "list.csv", slots), PROTOCOL)
    key = Vault(secrets.token_bytes(32), "randomization")
    assert allocation_digest(read, key) == allocation_digest(slots, key)
    unbalanced = [*slots]
    first = unbalanced[0]
    unbalanced[0] = Slot(first.stratum, first.position, first.block, first.block_size, "usual_care")
    unbalanced[1] = Slot(first.stratum, 2, first.block, first.block_size, "usual_care")
    with pytest.raises(OperationError, match="not the allocation ratio"):
        read_allocation_csv(_write_csv(tmp_path / "bad.csv", unbalanced), PROTOCOL)
    (tmp_path / "cols.csv").write_text("stratum,position,arm\nx,1,usual_care\n")
    with pytest.raises(OperationError, match="missing: block"):
        read_allocation_csv(tmp_path / "cols.csv", PROTOCOL)


@pytest.mark.integration
def test_a_trial_can_use_an_imported_list(database_url: str, tmp_path: Path) -> None:
    slots = list(generate_allocation_list(PROTOCOL, seed=8, slots_per_stratum=30))
    created = create_trial(
        PROTOCOL,
        database_url,
        admin="admin",
        key_file=tmp_path / "k",
        allocation_csv=_write_csv(tmp_path / "list.csv", slots),
    )
    assert created.allocation_source == "imported"
    trial = Trial.open(database_url, "admin", key_file=tmp_path / "k")
    report = trial.verify_randomization()
    assert report.valid
    assert (report.source, report.slots) == ("imported", len(slots))


@pytest.mark.integration
def test_assignments_follow_the_list_in_order(world: World) -> None:
    study_ids = [world.randomized(rdq_yes=5) for _ in range(7)]
    unblinded = world.as_("coord_open")
    expected = [
        slot.arm
        for slot in generate_allocation_list(world.protocol, 20260105, 399)
        if slot.stratum == "baseline_rdq=rdq_under_12"
    ][:7]
    assert [unblinded.assignment(study_id).arm for study_id in study_ids] == expected


@pytest.mark.integration
def test_verification_finds_a_changed_slot_and_an_out_of_order_counter(world: World) -> None:
    world.randomized()
    statistician = world.as_("stat")
    assert statistician.verify_randomization().valid
    with statistician.db.write() as session:
        slots = (
            session.execute(
                select(AllocationSlot)
                .where(AllocationSlot.position.in_([40, 41]))
                .order_by(AllocationSlot.id)
            )
            .scalars()
            .all()
        )
        first, second = slots[0], slots[1]
        first.arm_sealed, second.arm_sealed = second.arm_sealed, first.arm_sealed
    with pytest.raises(Exception, match="cannot be opened"):
        statistician.verify_randomization()  # a sealed arm moved to another slot does not open


@pytest.mark.integration
def test_verification_finds_a_skipped_slot(world: World) -> None:
    world.randomized(rdq_yes=5)
    statistician = world.as_("stat")
    with statistician.db.write() as session:
        session.execute(
            update(StratumCounter)
            .where(StratumCounter.stratum == "baseline_rdq=rdq_under_12")
            .values(next_position=StratumCounter.next_position + 1)
        )
    report = statistician.verify_randomization()
    assert not report.valid
    assert any("not taken in order" in problem.rule for problem in report.problems)


@pytest.mark.integration
def test_a_used_up_list_refuses_clearly(database_url: str, tmp_path: Path) -> None:
    data = PROTOCOL.model_dump(mode="json", by_alias=True)
    data["randomization"]["slots_per_stratum"] = 3
    small = Protocol.model_validate(data)
    key = tmp_path / "k"
    create_trial(small, database_url, admin="admin", key_file=key, seed=1)
    world = World(database_url, key, Clock(), small)
    admin = world.as_("admin")
    admin.add_site("SEA", "Seattle")
    admin.add_staff("coord", "coordinator", ["SEA"])
    length = sum(
        1
        for slot in generate_allocation_list(small, 1, 3)
        if slot.stratum == "baseline_rdq=rdq_under_12"
    )
    for _ in range(length):
        world.randomized(rdq_yes=5)
    extra = world.enrolled()
    world.with_baseline(extra, rdq_yes=5)
    with pytest.raises(OperationError, match="the allocation list is used up"):
        world.as_("coord").randomize(extra)
    assert world.as_("admin").verify_randomization().valid
