"""Benchmark: participants sending their follow-up through their links, against a bare FastAPI
endpoint doing one SQLite insert.

Run by hand from the repository root (it is not a test; a few minutes)::

    .venv/bin/python bench/submissions.py
    .venv/bin/python bench/submissions.py --participants 20 --seconds 5 --links 300

What is measured: ``--participants`` (100) simulated participants over loopback, each a loop
of what a phone does with a link: open it (``GET /survey/{token}``), send the RDQ's screen and
the bothersomeness screen (``POST``, answered 303), and send the survey (``POST .../submit``,
answered 303 to the thank-you page: the acknowledgement). Each takes a new link as soon as
its last survey is acknowledged, for ``--seconds`` (or until the links run out). The trial is
the shipped protocol with its visits reduced to those two questionnaires (the issue's
"the RDQ and bothersomeness"), its participants randomized 70 days before the run, so that
each has a week-10 link open now, issued through the operations before the clock starts.

- **SQLite**: lumbar's application, one uvicorn worker, as ``lumbar serve`` runs it (the
  access log off, as bench/web.py does), on the embedded trial (WAL, ``synchronous=FULL``).
- **PostgreSQL** (when 127.0.0.1:5432 answers): ``lumbar serve --workers N`` (``--workers``,
  4) on a database of its own, dropped at the end.
- **peer**: in the same run, a bare FastAPI application (one uvicorn worker) whose one
  endpoint inserts one row into a SQLite table (WAL, ``synchronous=FULL``), driven by as
  many clients for as long.

Reported: durable surveys a second (acknowledged surveys / seconds), p50 and p99 of a
survey's submit request and of its four requests together, requests a second, and the
ratio of lumbar's requests a second to the peer's. Afterwards every acknowledged survey is
counted in the database: stored once, both questionnaires, from the link.

The targets (issue 12): at least 500 durable surveys a second with p99 under 100 ms on
SQLite, more on PostgreSQL with several workers, and at least half the bare endpoint's
throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import PEER, free_port, machine, start
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lumbar.operations import Trial, create_trial
from lumbar.protocol import Protocol, shipped_protocol
from operations import eligible

SITE = "SEA"
COORDINATOR = "coord"
VISIT = "week_10"
INSTRUMENTS = ("rdq", "bothersomeness")
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SURVEYS_TARGET = 500.0
"""Issue 12: durable surveys a second on SQLite."""
P99_TARGET_MS = 100.0
PEER_SHARE = 0.5
"""Issue 12: at least half the bare endpoint's throughput."""

APP = """
import sys, uvicorn
from pathlib import Path
from lumbar.web.app import create_app
uvicorn.run(create_app(sys.argv[1], key_file=Path(sys.argv[2])), host="127.0.0.1",
            port=int(sys.argv[3]), log_level="warning", access_log=False, timeout_keep_alive=300)
"""


# ---------------------------------------------------------------------------- the trial


def protocol() -> Protocol:
    """The shipped protocol, every visit reduced to the RDQ and bothersomeness."""
    data = shipped_protocol("massage-clbp").model_dump(mode="json", by_alias=True)
    for visit in data["visits"]:
        visit["instruments"] = list(INSTRUMENTS)
    data["outcomes"] = [o for o in data["outcomes"] if o["instrument"] in INSTRUMENTS]
    return Protocol.model_validate(data)


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def prepare(url: str, key_file: Path, links: int) -> list[str]:
    """``links`` randomized participants, 70 days ago, each with a week-10 link; the links."""
    chosen = protocol()
    clock = Clock(dt.datetime.now(dt.UTC) - dt.timedelta(days=70))
    create_trial(
        chosen, url, admin="admin", key_file=key_file, seed=20260105, synthetic=True, clock=clock
    )
    admin = Trial.open(url, "admin", key_file=key_file, clock=clock)
    admin.add_site(SITE, "Seattle")
    admin.add_staff(COORDINATOR, "coordinator", [SITE])
    admin.close()
    coordinator = Trial.open(url, COORDINATOR, key_file=key_file, clock=clock)
    today = clock.now.date()
    answers = eligible(chosen)
    study_ids = []
    for index in range(links):
        screening = coordinator.screen(SITE, answers)
        coordinator.consent(screening.screening_number, "1.0", today)
        study_id = coordinator.enrol(screening.screening_number)
        coordinator.record_visit(
            study_id, "baseline", survey_answers(index), completed_on=today, source="staff_entry"
        )
        coordinator.randomize(study_id)
        study_ids.append(study_id)
    tokens = [coordinator.issue_survey_token(study_id, VISIT).token for study_id in study_ids]
    coordinator.close()
    return tokens


def survey_answers(index: int) -> dict[str, dict[str, object]]:
    yes = (7 * index) % 24
    return {
        "rdq": {f"rdq_{n:02d}": int(n <= yes) for n in range(1, 25)},
        "bothersomeness": {"bothersomeness": index % 11},
    }


def screen_form(instrument: str, index: int) -> dict[str, str]:
    return {
        f"answer_{item}": str(value) for item, value in survey_answers(index)[instrument].items()
    }


def stored(url: str) -> tuple[int, int, int]:
    """(week-10 questionnaires from a link, distinct participants among them, used links)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            questionnaires, people = connection.execute(
                text(
                    "SELECT count(*), count(DISTINCT participant_id) FROM questionnaire "
                    "WHERE visit = :visit AND source = 'participant_link'"
                ),
                {"visit": VISIT},
            ).one()
            (used,) = connection.execute(
                text("SELECT count(*) FROM survey_token WHERE used_at IS NOT NULL")
            ).one()
    finally:
        engine.dispose()
    return int(questionnaires), int(people), int(used)


# ---------------------------------------------------------------------------- clients


@dataclass
class Result:
    label: str
    seconds: float = 0.0
    surveys: list[float] = field(default_factory=list)
    """Seconds from opening the link to the acknowledgement, one a survey."""
    submits: list[float] = field(default_factory=list)
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    ran_out: bool = False

    def percentile(self, values: list[float], fraction: float) -> float:
        ordered = sorted(values)
        if not ordered:
            return float("nan")
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def per_second(self) -> float:
        return len(self.surveys) / self.seconds if self.seconds else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def participants(base: str, tokens: list[str], clients: int, seconds: float) -> Result:
    result = Result("lumbar")
    queue = list(enumerate(tokens))
    queue.reverse()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def participant(client: httpx.AsyncClient, stop: float) -> None:
        while time.perf_counter() < stop:
            if not queue:
                result.ran_out = True
                return
            index, token = queue.pop()
            began = time.perf_counter()
            try:
                opened = await client.get(f"/survey/{token}")
                result.requests += 1
                if opened.status_code != 200:
                    result.failures.append(f"open: {opened.status_code}")
                    continue
                for instrument in INSTRUMENTS:
                    saved = await client.post(
                        f"/survey/{token}/{instrument}", data=screen_form(instrument, index)
                    )
                    result.requests += 1
                    if saved.status_code != 303:
                        result.failures.append(f"{instrument}: {saved.status_code}")
                mark = time.perf_counter()
                sent = await client.post(f"/survey/{token}/submit")
                result.requests += 1
            except httpx.HTTPError as error:
                result.failures.append(f"{type(error).__name__}: {error}")
                continue
            done = time.perf_counter()
            if sent.status_code == 303 and sent.headers.get("location") == "/survey/thanks":
                result.surveys.append(done - began)
                result.submits.append(done - mark)
            else:
                result.failures.append(f"submit: {sent.status_code}")

    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        await client.get("/survey/thanks")  # the connection pool warm
        started = time.perf_counter()
        stop = started + seconds
        await asyncio.gather(*(participant(client, stop) for _ in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


async def peer_clients(base: str, clients: int, seconds: float) -> Result:
    result = Result("peer")
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one(client: httpx.AsyncClient, stop: float) -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            response = await client.post("/insert")
            result.requests += 1
            if response.status_code == 200:
                result.surveys.append(time.perf_counter() - began)
                result.submits.append(time.perf_counter() - began)
            else:
                result.failures.append(f"peer: {response.status_code}")

    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        await client.get("/")
        started = time.perf_counter()
        stop = started + seconds
        await asyncio.gather(*(one(client, stop) for _ in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------- servers


def serve(url: str, key_file: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """lumbar's application on ``url``: in-process uvicorn for one worker (as bench/web.py),
    ``lumbar serve --workers`` for several (its access log to /dev/null)."""
    if workers == 1:
        return start(APP, url, str(key_file))
    port = free_port()
    command = [sys.executable, "-m", "lumbar", "serve", "--db", url, "--key-file", str(key_file)]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(base + "/survey/thanks", timeout=1)
            return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("lumbar serve did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Case:
    backend: str
    workers: int
    links: int
    result: Result
    peer: Result
    counted: tuple[int, int, int]
    prepared_in: float


def run_case(
    backend: str, url: str, folder: Path, workers: int, options: argparse.Namespace
) -> Case:
    key_file = folder / f"{backend}.key"
    began = time.perf_counter()
    tokens = prepare(url, key_file, options.links)
    prepared_in = time.perf_counter() - began
    app, base = serve(url, key_file, workers)
    try:
        result = asyncio.run(participants(base, tokens, options.participants, options.seconds))
    finally:
        stop(app)
    peer, peer_base = start(PEER, str(folder / f"peer-{backend}.db"))
    try:
        bare = asyncio.run(peer_clients(peer_base, options.participants, options.seconds))
    finally:
        stop(peer)
    return Case(backend, workers, len(tokens), result, bare, stored(url), prepared_in)


def report(case: Case) -> list[str]:
    result, peer = case.result, case.peer
    questionnaires, people, used = case.counted
    acknowledged = len(result.surveys)
    ratio = result.requests_per_second / peer.requests_per_second if peer.per_second else 0.0
    lines = [
        f"{case.backend}, {case.workers} worker{'s' * (case.workers != 1)}, {options_line(case)}",
        f"  surveys acknowledged {acknowledged} in {result.seconds:.1f} s: "
        f"{result.per_second:.1f} durable surveys/s ({result.requests_per_second:.0f} requests/s)"
        + (" (the links ran out)" if result.ran_out else ""),
        f"  submit request p50 {result.percentile(result.submits, 0.5):.1f} ms, "
        f"p99 {result.percentile(result.submits, 0.99):.1f} ms; whole survey (4 requests) "
        f"p50 {result.percentile(result.surveys, 0.5):.1f} ms, "
        f"p99 {result.percentile(result.surveys, 0.99):.1f} ms",
        f"  peer (bare FastAPI, one SQLite insert): {peer.per_second:.1f} inserts/s, "
        f"p50 {peer.percentile(peer.surveys, 0.5):.1f} ms, "
        f"p99 {peer.percentile(peer.surveys, 0.99):.1f} ms",
        f"  lumbar's requests/s against the peer's: {ratio:.2f}x; surveys/s against the peer's "
        f"inserts/s: {result.per_second / peer.per_second if peer.per_second else 0:.2f}x",
        f"  stored: {questionnaires} questionnaires from links for {people} participants, "
        f"{used} links used; failures {len(result.failures)}",
    ]
    lines += [f"    {failure}" for failure in result.failures[:5]]
    return lines


def options_line(case: Case) -> str:
    return f"{case.links} links prepared through the operations in {case.prepared_in:.1f} s"


def verdicts(cases: list[Case]) -> list[str]:
    out = []
    for case in cases:
        result = case.result
        p99 = result.percentile(result.submits, 0.99)
        ratio = result.requests_per_second / case.peer.requests_per_second
        if case.backend == "sqlite":
            met = result.per_second >= SURVEYS_TARGET and p99 < P99_TARGET_MS
            out.append(
                f"target: sqlite >= {SURVEYS_TARGET:.0f} surveys/s, submit p99 < "
                f"{P99_TARGET_MS:.0f} ms: {'met' if met else 'not met'} "
                f"({result.per_second:.0f}/s, p99 {p99:.0f} ms)"
            )
        out.append(
            f"target: {case.backend} at least {PEER_SHARE:.1f}x the bare endpoint's requests/s: "
            f"{'met' if ratio >= PEER_SHARE else 'not met'} ({ratio:.2f}x)"
        )
    return out


def correct(case: Case) -> bool:
    questionnaires, people, used = case.counted
    acknowledged = len(case.result.surveys)
    # An unacknowledged survey may be stored (answered after the clients stopped waiting):
    # never the other way round, and always whole.
    return (
        people >= acknowledged
        and questionnaires == len(INSTRUMENTS) * people
        and used == people
        and not case.result.failures
    )


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--participants", type=int, default=100, help="concurrent (100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per case (10)")
    parser.add_argument(
        "--links", type=int, default=600, help="participants prepared with a link (600)"
    )
    parser.add_argument("--workers", type=int, default=4, help="PostgreSQL's workers (4)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--no-postgres", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = arguments(argv)
    print(
        f"lumbar survey benchmark: {options.participants} participants for {options.seconds:g} s "
        f"a case, each opening a link and sending {' and '.join(INSTRUMENTS)} (SYNTHETIC trial)"
    )
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="lumbar-bench-surveys-") as folder_name:
        folder = Path(folder_name)
        cases.append(run_case("sqlite", f"sqlite:///{folder / 'trial.db'}", folder, 1, options))
        print("\n".join(report(cases[-1])))
        if not options.no_postgres:
            cases += postgres_case(folder, options)
    print("\n".join(machine()))
    print(
        f"{os.cpu_count()} CPUs shared by the clients, the server and the peer "
        f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    print("\n".join(verdicts(cases)))
    return 0 if all(correct(case) for case in cases) else 1


def postgres_case(folder: Path, options: argparse.Namespace) -> list[Case]:
    server = options.postgres_url
    try:
        engine = create_engine(server, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            name = f"lumbar_bench_{uuid.uuid4().hex[:12]}"
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        print(f"postgresql: skipped ({str(error).strip().splitlines()[0]})")
        return []
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        case = run_case("postgresql", url, folder, options.workers, options)
        print("\n".join(report(case)))
        return [case]
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
