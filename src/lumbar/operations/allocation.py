"""Allocation lists: generated from a seed, or imported from a statistician's file, and checked.

Pure functions, no database. The list has one run of slots per stratum, laid
out in permuted blocks: each block's size is drawn from the protocol's block
sizes, it holds every arm in proportion to the allocation ratio, and its order
is a uniformly random permutation.

Randomness comes from a stream anyone can recompute from the seed, so a list
can be re-derived and checked independently of lumbar::

    draw k of stream "S" = int.from_bytes(SHA-256(f"{seed}:{S}:{k}")[:8], "big")

and a uniform integer below ``n`` takes the first draw below the largest
multiple of ``n`` under 2**64 (rejection sampling), reduced modulo ``n``. Stream
``S`` is ``"<stratum key>:sizes"`` for block sizes and
``"<stratum key>:block<b>"`` for the Fisher-Yates shuffle of block ``b``
(positions swapped from the last down to the second).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lumbar.errors import OperationError, Problem
from lumbar.protocol import Protocol, all_strata, stratum_key
from lumbar.store.vault import Vault

__all__ = [
    "Slot",
    "allocation_digest",
    "check_allocation_list",
    "generate_allocation_list",
    "read_allocation_csv",
]


@dataclass(frozen=True)
class Slot:
    """One position of one stratum's allocation list."""

    stratum: str
    position: int
    block: int
    block_size: int
    arm: str


class _Stream:
    """A reproducible stream of uniform integers derived from a seed and a label."""

    def __init__(self, seed: int, label: str):
        self._prefix = f"{seed}:{label}:"
        self._counter = 0

    def _draw(self) -> int:
        digest = hashlib.sha256(f"{self._prefix}{self._counter}".encode()).digest()
        self._counter += 1
        return int.from_bytes(digest[:8], "big")

    def below(self, bound: int) -> int:
        limit = (2**64 // bound) * bound
        while True:
            value = self._draw()
            if value < limit:
                return value % bound


def _strata_keys(protocol: Protocol) -> list[str]:
    return [stratum_key(levels) for levels in all_strata(protocol.randomization)]


def generate_allocation_list(
    protocol: Protocol, seed: int, slots_per_stratum: int
) -> tuple[Slot, ...]:
    """Every stratum's list: whole permuted blocks, at least ``slots_per_stratum`` slots each."""
    scheme = protocol.randomization
    arms = [arm.id for arm in protocol.arms]
    slots: list[Slot] = []
    for key in _strata_keys(protocol):
        sizes = _Stream(seed, f"{key}:sizes")
        position, block = 1, 1
        while position <= slots_per_stratum:
            size = scheme.block_sizes[sizes.below(len(scheme.block_sizes))]
            repeats = size // scheme.ratio_total
            contents = [arm for arm in arms for _ in range(scheme.ratio[arm] * repeats)]
            shuffle = _Stream(seed, f"{key}:block{block}")
            for last in range(len(contents) - 1, 0, -1):
                other = shuffle.below(last + 1)
                contents[last], contents[other] = contents[other], contents[last]
            for arm in contents:
                slots.append(Slot(key, position, block, size, arm))
                position += 1
            block += 1
    return tuple(slots)


def allocation_digest(slots: Iterable[Slot], key: Vault) -> str:
    """HMAC of the list in a canonical text form, under the randomization key: the
    fingerprint kept with the trial (keyed, so it cannot be used to test guessed lists)."""
    text = "".join(
        f"{slot.stratum}\t{slot.position}\t{slot.block}\t{slot.block_size}\t{slot.arm}\n"
        for slot in sorted(slots, key=lambda slot: (slot.stratum, slot.position))
    )
    return key.mac(text.encode("utf-8"))


def check_allocation_list(protocol: Protocol, slots: Sequence[Slot]) -> list[Problem]:
    """Every way ``slots`` fails to be a valid list for ``protocol`` (empty when valid).

    Each stratum of the protocol has a list; positions run 1, 2, 3, ... without
    gaps; blocks are whole, of an allowed size, and hold the arms in the ratio.
    """
    scheme = protocol.randomization
    arms = {arm.id for arm in protocol.arms}
    expected = _strata_keys(protocol)
    problems: list[Problem] = []
    by_stratum: dict[str, list[Slot]] = {}
    for slot in slots:
        by_stratum.setdefault(slot.stratum, []).append(slot)
    for key in by_stratum:
        if key not in expected:
            problems.append(
                Problem("stratum", "is not a stratum of the protocol", key, f"strata: {expected}")
            )
    for key in expected:
        run = sorted(by_stratum.get(key, []), key=lambda slot: slot.position)
        if not run:
            problems.append(Problem(f"stratum {key}", "has no slots", hint="add its list"))
            continue
        positions = [slot.position for slot in run]
        if positions != list(range(1, len(run) + 1)):
            problems.append(
                Problem(
                    f"stratum {key}",
                    "positions must run 1, 2, 3, ... without gaps or repeats",
                    hint="renumber the stratum's slots",
                )
            )
        blocks: dict[int, list[Slot]] = {}
        for slot in run:
            if slot.arm not in arms:
                problems.append(
                    Problem(
                        f"stratum {key} position {slot.position}",
                        "is not an arm of the protocol",
                        slot.arm,
                        f"arms: {sorted(arms)}",
                    )
                )
            blocks.setdefault(slot.block, []).append(slot)
        for number, members in blocks.items():
            problems.extend(_check_block(scheme.block_sizes, scheme.ratio, key, number, members))
    return problems


def _check_block(
    sizes: Sequence[int], ratio: dict[str, int], key: str, number: int, members: list[Slot]
) -> list[Problem]:
    where = f"stratum {key} block {number}"
    size = len(members)
    if size not in sizes:
        return [
            Problem(where, f"has {size} slots; block sizes are {list(sizes)}", hint="fix the block")
        ]
    total = sum(ratio.values())
    wanted = {arm: share * size // total for arm, share in ratio.items()}
    counts = Counter(slot.arm for slot in members)
    if any(counts.get(arm, 0) != count for arm, count in wanted.items()):
        return [
            Problem(
                where,
                f"holds {dict(counts)}, not the allocation ratio {wanted}",
                hint="each block must hold every arm in the allocation ratio",
            )
        ]
    positions = sorted(slot.position for slot in members)
    if positions != list(range(positions[0], positions[0] + size)):
        return [Problem(where, "is not contiguous", hint="a block's slots must follow each other")]
    return []


def read_allocation_csv(path: Path, protocol: Protocol) -> tuple[Slot, ...]:
    """Read a statistician's list: columns ``stratum, position, block, arm``.

    ``stratum`` is the key lumbar prints for each stratum (``lumbar protocol
    show`` lists the factors; keys look like ``baseline_rdq=rdq_under_12``).
    The list is checked with :func:`check_allocation_list`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise OperationError(
            "cannot read the allocation list",
            [Problem("file", str(error), str(path), "give a UTF-8 CSV file")],
        ) from None
    reader = csv.DictReader(io.StringIO(text))
    required = ["stratum", "position", "block", "arm"]
    missing = [column for column in required if column not in (reader.fieldnames or [])]
    if missing:
        raise OperationError(
            "the allocation list is not valid",
            [
                Problem(
                    str(path),
                    "must have the columns " + ", ".join(required),
                    reader.fieldnames,
                    "missing: " + ", ".join(missing),
                )
            ],
        )
    rows: list[tuple[str, int, int, str]] = []
    problems: list[Problem] = []
    for line, row in enumerate(reader, start=2):
        try:
            rows.append((row["stratum"], int(row["position"]), int(row["block"]), row["arm"]))
        except (TypeError, ValueError):
            problems.append(
                Problem(
                    f"{path}:{line}",
                    "position and block must be whole numbers",
                    {"position": row.get("position"), "block": row.get("block")},
                    "fix the row",
                )
            )
    block_sizes = Counter((stratum, block) for stratum, _, block, _ in rows)
    slots = tuple(
        Slot(stratum, position, block, block_sizes[(stratum, block)], arm)
        for stratum, position, block, arm in rows
    )
    problems.extend(check_allocation_list(protocol, slots))
    if problems:
        raise OperationError("the allocation list is not valid", problems)
    return slots
