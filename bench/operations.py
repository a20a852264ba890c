"""Benchmark: randomizations and questionnaire submissions a second, against a bare insert loop.

Run by hand from the repository root (it is not a test; about two minutes)::

    .venv/bin/python bench/operations.py
    .venv/bin/python bench/operations.py --writers 1 8 --participants 160 --backends sqlite

What is measured: the real operations API (:class:`lumbar.operations.Trial` over a
:class:`~lumbar.operations.Context`), called as a coordinator would, by 1, 8 and 32
concurrent writers. Each writer is a separate process that opens its own Context (as
separate ``lumbar`` commands or web workers do), waits at a barrier with the others,
then works through its share of the participants:

- **submissions**: ``record_questionnaire`` of each baseline instrument (six a
  participant), one questionnaire a transaction;
- **randomizations**: ``randomize`` of each participant, whose baseline the
  submissions just completed (the two strata fill about evenly).

The peer, in the same run, on the same database and with the same number of writer
processes: a bare SQLAlchemy insert loop, one row a transaction (``engine.begin()``
and one ``INSERT``), as many rows as the lumbar case made operations. On SQLite both
run with WAL and ``synchronous=FULL``; on PostgreSQL with the server's settings.

Each case starts from a copy of one prepared trial (a SQLite file copied, or a
PostgreSQL ``CREATE DATABASE ... TEMPLATE``): enrolled participants without
baselines, made once a backend through the operations API. PostgreSQL is the server on
127.0.0.1:5432 (user ``postgres``; ``--postgres-url`` names another); its throwaway
databases are named ``lumbar_bench_<hex>`` and dropped at the end. When it does not
answer, its cases are skipped with a line saying so.

Afterwards each case is checked: every acknowledged operation is stored exactly once
and nothing unacknowledged is (none lost, none duplicated); each stratum's taken slots
are positions 1..k and every writer's operations appear in the audit trail in the
order the writer was told they were done (none reordered);
``verify_randomization`` and ``verify_audit`` pass. Latencies are each operation's
wall time in its writer, from the call to its return.

The targets (issue 10): with 8 writers, SQLite at least 200 randomizations and 500
submissions a second, PostgreSQL at least twice that; p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from common import machine
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, select, text
from sqlalchemy.engine import make_url

from lumbar.instruments import INSTRUMENTS
from lumbar.operations import Trial, create_trial
from lumbar.protocol import Protocol, shipped_protocol
from lumbar.store.schema import Allocation, AllocationSlot, AuditRecord, Questionnaire

PROTOCOL = "massage-clbp"
SITE = "SEA"
COORDINATOR = "coord"
CHECKER = "stat"
"""A statistician: may verify the allocation list and the audit trail."""
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGETS = {
    ("sqlite", "randomize"): 200.0,
    ("sqlite", "submit"): 500.0,
    ("postgresql", "randomize"): 400.0,
    ("postgresql", "submit"): 1000.0,
}
"""Issue 10: operations a second with 8 writers."""
TARGET_WRITERS = 8
P99_TARGET_MS = 100.0
PEER = "bare SQLAlchemy INSERT, one row a transaction"
WAIT = 600
"""Seconds a case's writers may take before the benchmark gives up."""

_PEER_TABLE = Table(
    "bench_peer",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("writer", Integer, nullable=False),
    Column("n", Integer, nullable=False),
    Column("note", String(64), nullable=False),
)


# ---------------------------------------------------------------------------- the data


def eligible(protocol: Protocol) -> dict[str, Any]:
    answers: dict[str, Any] = {
        q.id: False for q in protocol.eligibility.questions if q.type == "yes_no"
    }
    answers.update(
        health_plan_member=True,
        recent_primary_care_visit=True,
        nonspecific_diagnosis=True,
        physician_willing=True,
        near_therapist=True,
        age=45,
        sex="female",
        pain_duration="years_1_to_5",
        pain_frequency="every_day",
    )
    return answers


def baseline_answers(instrument: str, index: int) -> dict[str, Any]:
    """Complete answers; the RDQ total runs through 0..23 (7 * index mod 24): both strata."""
    if instrument == "rdq":
        yes = (7 * index) % 24
        return {f"rdq_{n:02d}": 1 if n <= yes else 0 for n in range(1, 25)}
    if instrument == "bothersomeness":
        return {"bothersomeness": 1}
    answers: dict[str, Any] = {}
    for item in INSTRUMENTS.get(instrument).items:
        if item.only_if is not None:
            continue
        response = item.response
        if response.kind == "choice":
            answers[item.id] = response.options[min(1, len(response.options) - 1)].code
        else:
            value = min(1.0, response.highest)
            answers[item.id] = int(value) if response.kind == "integer" else value
    return answers


# ---------------------------------------------------------------------------- databases


@dataclass
class Backend:
    """Where one backend's prepared trial lives and how to copy it for a case."""

    name: str
    template_url: str
    key_file: Path
    study_ids: list[str]
    folder: Path
    made: list[str] = field(default_factory=list)
    """PostgreSQL databases made for cases, dropped at the end."""

    def copy(self, label: str) -> str:
        if self.name == "sqlite":
            source = Path(str(make_url(self.template_url).database))
            target = self.folder / f"{label}.db"
            shutil.copyfile(source, target)
            return f"sqlite:///{target}"
        template = make_url(self.template_url).database
        name = f"{template}_{label}"
        with _Server(self.template_url) as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self.made.append(name)
        return make_url(self.template_url).set(database=name).render_as_string(False)

    def drop_all(self) -> None:
        if self.name != "postgresql":
            return
        with _Server(self.template_url) as connection:
            for name in [*self.made, make_url(self.template_url).database]:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class _Server:
    """An autocommit connection to the server's ``postgres`` database (CREATE/DROP DATABASE)."""

    def __init__(self, url: str):
        self.engine = create_engine(
            make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
        )

    def __enter__(self) -> Any:
        self.connection = self.engine.connect()
        return self.connection

    def __exit__(self, *exc: object) -> None:
        self.connection.close()
        self.engine.dispose()


def postgres_available(url: str) -> str | None:
    """None when the server answers; else why not."""
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception as error:
        return str(error).strip().splitlines()[0]
    return None


def prepare(name: str, url: str, folder: Path, participants: int) -> Backend:
    """A trial with ``participants`` enrolled at SEA (no baseline yet), through the API."""
    protocol = shipped_protocol(PROTOCOL)
    key_file = folder / f"{name}.key"
    create_trial(protocol, url, admin="admin", key_file=key_file, seed=20260105)
    engine = create_engine(url)
    _PEER_TABLE.create(engine)  # the peer's table, beside the trial's
    engine.dispose()
    admin = Trial.open(url, "admin", key_file=key_file)
    admin.add_site(SITE, "Seattle")
    admin.add_staff(COORDINATOR, "coordinator", [SITE])
    admin.add_staff(CHECKER, "statistician", [], all_sites=True)
    admin.close()
    coordinator = Trial.open(url, COORDINATOR, key_file=key_file)
    today = coordinator.clock().date()
    answers = eligible(protocol)
    study_ids = []
    for _ in range(participants):
        screening = coordinator.screen(SITE, answers)
        coordinator.consent(screening.screening_number, "1.0", today)
        study_ids.append(coordinator.enrol(screening.screening_number))
    coordinator.close()
    return Backend(name, url, key_file, study_ids, folder)


# ---------------------------------------------------------------------------- writers

Work = list[tuple[str, Any]]
"""A writer's operations in order: (kind, argument)."""


@dataclass
class Outcome:
    """What one case's writers reported."""

    seconds: float
    latencies: list[float]
    acknowledged: dict[int, list[Any]]
    """Writer -> the arguments of its operations that returned, in order."""
    failures: list[str]


def _lumbar_writer(
    url: str, key_file: Path, work: Work, barrier: Barrier, report: Any, writer: int
) -> None:
    trial = Trial.open(url, COORDINATOR, key_file=key_file)
    today = trial.clock().date()
    done: list[tuple[Any, float, float]] = []
    failures: list[str] = []
    barrier.wait(WAIT)
    for kind, argument in work:
        started = time.perf_counter()
        try:
            if kind == "randomize":
                trial.randomize(argument)
            else:
                study_id, index, instrument = argument
                trial.record_questionnaire(
                    study_id,
                    "baseline",
                    instrument,
                    baseline_answers(instrument, index),
                    completed_on=today,
                )
        except Exception as error:
            failures.append(f"writer {writer}: {kind} {argument}: {type(error).__name__}: {error}")
            continue
        done.append((argument, started, time.perf_counter()))
    trial.close()
    report.put((writer, done, failures))


def _peer_writer(
    url: str, key_file: Path, work: Work, barrier: Barrier, report: Any, writer: int
) -> None:
    del key_file
    engine = peer_engine(url)
    insert = _PEER_TABLE.insert()
    with engine.connect():
        pass  # connect before the barrier, as the lumbar writers open their Context
    done: list[tuple[Any, float, float]] = []
    failures: list[str] = []
    barrier.wait(WAIT)
    for _, n in work:
        started = time.perf_counter()
        try:
            with engine.begin() as connection:
                connection.execute(insert, {"writer": writer, "n": n, "note": "bench"})
        except Exception as error:
            failures.append(f"writer {writer}: insert {n}: {type(error).__name__}: {error}")
            continue
        done.append((n, started, time.perf_counter()))
    engine.dispose()
    report.put((writer, done, failures))


def peer_engine(url: str) -> Any:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _durable(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


def run_writers(
    target: Callable[..., None], url: str, key_file: Path, shares: list[Work]
) -> Outcome:
    """Run one process a share, all starting together; what they acknowledged."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(shares) + 1)
    report = context.Queue()
    processes = [
        context.Process(target=target, args=(url, key_file, share, barrier, report, writer))
        for writer, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    barrier.wait(WAIT)
    latencies: list[float] = []
    acknowledged: dict[int, list[Any]] = {}
    failures: list[str] = []
    first, last = float("inf"), 0.0
    for _ in processes:
        writer, done, failed = report.get(timeout=WAIT)
        acknowledged[writer] = [argument for argument, _, _ in done]
        latencies.extend(end - start for _, start, end in done)
        if done:
            first = min(first, *(start for _, start, _ in done))
            last = max(last, *(end for _, _, end in done))
        failures.extend(failed)
    for process in processes:
        process.join(WAIT)
    return Outcome(max(last - first, 1e-9), latencies, acknowledged, failures)


def shares_of(work: Work, writers: int) -> list[Work]:
    return [work[writer::writers] for writer in range(writers)]


# ---------------------------------------------------------------------------- checks


def check_submissions(url: str, outcome: Outcome) -> list[str]:
    """Stored = acknowledged, once each, in each writer's order in the audit trail."""
    problems = []
    expected = {
        (study_id, instrument)
        for done in outcome.acknowledged.values()
        for study_id, _, instrument in done
    }
    acknowledged = sum(len(done) for done in outcome.acknowledged.values())
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(
            select(Questionnaire.participant_id, Questionnaire.instrument).where(
                Questionnaire.visit == "baseline"
            )
        ).all()
        records = connection.execute(
            select(AuditRecord.seq, AuditRecord.entity_id)
            .where(AuditRecord.action == "questionnaire.record")
            .order_by(AuditRecord.seq)
        ).all()
    engine.dispose()
    if len(stored) != acknowledged:
        problems.append(f"{len(stored)} questionnaires stored, {acknowledged} acknowledged")
    if len(set(stored)) != len(stored):
        problems.append("a questionnaire is stored twice")
    audited = [entity_id for _, entity_id in records]
    if sorted(audited) != sorted(f"{s}/baseline/{i}" for s, i in expected):
        problems.append("the audit trail's questionnaires are not the acknowledged ones")
    position = {entity_id: index for index, entity_id in enumerate(audited)}
    for writer, done in outcome.acknowledged.items():
        order = [position.get(f"{s}/baseline/{i}", -1) for s, _, i in done]
        if order != sorted(order):
            problems.append(f"writer {writer}'s submissions are out of order in the audit trail")
    return problems


def check_randomizations(url: str, outcome: Outcome) -> list[str]:
    """One allocation per acknowledged randomization; positions 1..k per stratum, audited in
    that order; each writer's randomizations audited in its order."""
    problems = []
    acknowledged = [study_id for done in outcome.acknowledged.values() for study_id in done]
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(Allocation.participant_id, AllocationSlot.stratum, AllocationSlot.position).join(
                AllocationSlot, AllocationSlot.id == Allocation.slot_id
            )
        ).all()
        records = connection.execute(
            select(AuditRecord.entity_id, AuditRecord.new)
            .where(AuditRecord.action == "participant.randomize")
            .order_by(AuditRecord.seq)
        ).all()
    engine.dispose()
    if len(rows) != len(acknowledged) or len(set(acknowledged)) != len(acknowledged):
        problems.append(f"{len(rows)} allocations stored, {len(acknowledged)} acknowledged")
    if len({row.participant_id for row in rows}) != len(rows):
        problems.append("a participant holds two allocations")
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_stratum[row.stratum].append(row.position)
    for stratum, positions in by_stratum.items():
        if sorted(positions) != list(range(1, len(positions) + 1)):
            problems.append(f"stratum {stratum}: positions are not 1..{len(positions)}")
    import json  # noqa: PLC0415 - only the check reads the audit payloads

    audited: dict[str, list[int]] = defaultdict(list)
    for record in records:
        payload = json.loads(record.new)
        audited[payload["stratum"]].append(payload["position"])
    for stratum, positions in audited.items():
        if positions != sorted(positions):
            problems.append(f"stratum {stratum}: randomizations audited out of list order")
    order = {record.entity_id: index for index, record in enumerate(records)}
    if set(order) != set(acknowledged):
        problems.append("the audit trail's randomizations are not the acknowledged ones")
    for writer, done in outcome.acknowledged.items():
        seen = [order.get(study_id, -1) for study_id in done]
        if seen != sorted(seen):
            problems.append(f"writer {writer}'s randomizations are out of order in the audit")
    return problems


def lumbar_checks(url: str, key_file: Path) -> list[str]:
    checker = Trial.open(url, CHECKER, key_file=key_file)
    try:
        problems = []
        report = checker.verify_randomization()
        if not report.valid:
            problems.append(
                "verify_randomization: " + "; ".join(p.rule for p in report.problems[:3])
            )
        audit = checker.verify_audit()
        if not audit.intact:
            problems.append("verify_audit: " + "; ".join(f.detail for f in audit.findings[:3]))
        return problems
    finally:
        checker.close()


def check_peer(url: str, outcome: Outcome) -> list[str]:
    engine = create_engine(url)
    with engine.begin() as connection:
        stored = connection.execute(select(_PEER_TABLE.c.writer, _PEER_TABLE.c.n)).all()
        connection.execute(_PEER_TABLE.delete())  # the next peer run starts empty
    engine.dispose()
    expected = {(w, n) for w, done in outcome.acknowledged.items() for n in done}
    if len(stored) != len(expected) or set(stored) != expected:
        return [f"peer: {len(stored)} rows stored, {len(expected)} acknowledged"]
    return []


# ---------------------------------------------------------------------------- one backend


@dataclass
class Row:
    backend: str
    operation: str
    writers: int
    count: int
    per_second: float
    p50_ms: float
    p99_ms: float
    peer_per_second: float
    peer_p99_ms: float
    problems: list[str]


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def row_of(
    backend: str, operation: str, writers: int, lumbar: Outcome, peer: Outcome, problems: list[str]
) -> Row:
    count = len(lumbar.latencies)
    return Row(
        backend,
        operation,
        writers,
        count,
        count / lumbar.seconds,
        1000 * statistics.median(lumbar.latencies) if lumbar.latencies else float("nan"),
        1000 * percentile(lumbar.latencies, 0.99),
        len(peer.latencies) / peer.seconds,
        1000 * percentile(peer.latencies, 0.99),
        [*lumbar.failures[:3], *peer.failures[:3], *problems],
    )


def run_backend(backend: Backend, writer_counts: Sequence[int]) -> list[Row]:
    protocol = shipped_protocol(PROTOCOL)
    rows = []
    for writers in writer_counts:
        url = backend.copy(f"w{writers}")
        submissions: Work = [
            ("submit", (study_id, index, instrument))
            for index, study_id in enumerate(backend.study_ids)
            for instrument in protocol.baseline.instruments
        ]
        # Each participant's questionnaires stay with one writer, in order.
        shares = [
            [item for item in submissions if backend.study_ids.index(item[1][0]) % writers == w]
            for w in range(writers)
        ]
        lumbar = run_writers(_lumbar_writer, url, backend.key_file, shares)
        problems = check_submissions(url, lumbar)
        peer = run_writers(
            _peer_writer, url, backend.key_file, peer_shares(len(lumbar.latencies), writers)
        )
        problems += check_peer(url, peer)
        rows.append(row_of(backend.name, "submit", writers, lumbar, peer, problems))
        print_row(rows[-1])
        randomizations: Work = [("randomize", study_id) for study_id in backend.study_ids]
        lumbar = run_writers(
            _lumbar_writer, url, backend.key_file, shares_of(randomizations, writers)
        )
        problems = check_randomizations(url, lumbar) + lumbar_checks(url, backend.key_file)
        peer = run_writers(
            _peer_writer, url, backend.key_file, peer_shares(len(lumbar.latencies), writers)
        )
        problems += check_peer(url, peer)
        rows.append(row_of(backend.name, "randomize", writers, lumbar, peer, problems))
        print_row(rows[-1])
        if backend.name == "sqlite":
            Path(str(make_url(url).database)).unlink()
    return rows


def peer_shares(count: int, writers: int) -> list[Work]:
    """The peer's inserts, numbered on from those of earlier peer runs on this database."""
    offset = peer_shares.offset  # type: ignore[attr-defined]
    peer_shares.offset += count  # type: ignore[attr-defined]
    return shares_of([("insert", offset + n) for n in range(count)], writers)


peer_shares.offset = 0  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- output

HEADER = (
    f"{'backend':<11}{'operation':<11}{'writers':>8}{'ops':>6}{'ops/s':>9}{'p50 ms':>9}"
    f"{'p99 ms':>9}{'peer/s':>9}{'peer p99':>9}{'x peer':>8}  checks"
)


def print_row(row: Row) -> None:
    verdict = "ok" if not row.problems else "FAILED: " + " | ".join(row.problems)
    print(
        f"{row.backend:<11}{row.operation:<11}{row.writers:>8}{row.count:>6}"
        f"{row.per_second:>9.1f}{row.p50_ms:>9.1f}{row.p99_ms:>9.1f}"
        f"{row.peer_per_second:>9.1f}{row.peer_p99_ms:>9.1f}"
        f"{row.per_second / row.peer_per_second:>7.2f}x  {verdict}",
        flush=True,
    )


def verdicts(rows: list[Row]) -> list[str]:
    lines = []
    for (backend, operation), goal in TARGETS.items():
        row = next(
            (
                r
                for r in rows
                if (r.backend, r.operation, r.writers) == (backend, operation, TARGET_WRITERS)
            ),
            None,
        )
        if row is None:
            continue
        met = row.per_second >= goal and row.p99_ms < P99_TARGET_MS and not row.problems
        lines.append(
            f"target: {backend} {operation} with {TARGET_WRITERS} writers >= {goal:g}/s, "
            f"p99 < {P99_TARGET_MS:g} ms, none lost, duplicated or reordered: "
            f"{'met' if met else 'not met'} ({row.per_second:.0f}/s, p99 {row.p99_ms:.0f} ms, "
            f"checks {'ok' if not row.problems else 'FAILED'})"
        )
    return lines


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--participants",
        type=int,
        default=320,
        help="participants a case randomizes (six submissions each; default 320, at most 400)",
    )
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments(argv)
    print(
        "lumbar operations benchmark: randomizations and baseline questionnaire submissions "
        f"through lumbar.operations.Trial, {options.participants} participants a case, "
        f"writers {', '.join(map(str, options.writers))} (separate processes, each its own "
        f"Context); peer: {PEER}, same writers, same database, same run"
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lumbar-bench-ops-") as name:
        folder = Path(name)
        for backend_name in options.backends:
            if backend_name == "postgresql":
                why = postgres_available(options.postgres_url)
                if why is not None:
                    print(f"postgresql: skipped, the server does not answer ({why})")
                    continue
                database = f"lumbar_bench_{secrets.token_hex(4)}"
                with _Server(options.postgres_url) as connection:
                    connection.execute(text(f'CREATE DATABASE "{database}"'))
                url = make_url(options.postgres_url).set(database=database)
                template_url = url.render_as_string(False)
            else:
                template_url = f"sqlite:///{folder / 'template.db'}"
            started = time.perf_counter()
            backend = prepare(backend_name, template_url, folder, options.participants)
            print(
                f"{backend_name}: prepared {options.participants} enrolled participants "
                f"through the API in {time.perf_counter() - started:.1f} s"
            )
            print(HEADER)
            try:
                rows += run_backend(backend, options.writers)
            except Exception:
                traceback.print_exc()
            finally:
                backend.drop_all()
    print()
    print(
        "ops/s: acknowledged operations / (last return - first call); p50/p99: each "
        "operation's latency in its writer; x peer: ops/s over the peer's rows/s"
    )
    for line in machine():
        print(line)
    print(f"{os.cpu_count()} CPUs shared by the writers, the database and the benchmark")
    for line in verdicts(rows):
        print(line)
    return 1 if any(row.problems for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
