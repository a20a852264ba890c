"""Participants' submissions through a real `lumbar serve`, under a burst, a SIGKILL and a
double submit: no acknowledged submission is lost, none is stored twice, none in part.

The trial has ``PARTICIPANTS`` randomized participants whose 10-week window is open today
(by the real clock, which `lumbar serve` runs on) and a link each. Every participant is a
thread that does what their phone does, through the pages: open the link, send each
questionnaire's screen, send the survey. When ``KILL_AFTER`` surveys were acknowledged (the
submit answered with the thank-you page's address) the server is killed with SIGKILL while
the others are on their way. Then the server is started again on the same database and:

- every acknowledged survey is stored, every questionnaire of the visit once, from the link;
- every other survey is stored whole (the kill landed after its commit) or not at all, and
  then its participant finishes it through the same link, once;
- sending any survey again stores nothing (the link is used up);
- the audit trail verifies.

On SQLite and on PostgreSQL (a database of its own, from the ``database_url`` fixture).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from lumbar.store.schema import Participant, Questionnaire
from tests.operations.world import World, answers_for, build_world, rdq_answers

pytestmark = pytest.mark.integration

PARTICIPANTS = 24
KILL_AFTER = 6
"""Surveys acknowledged before the kill: the rest are in flight, or not sent yet."""
TIMEOUT = 60.0
VISIT = "week_10"


def _answers(instrument: str) -> dict[str, str]:
    answers: dict[str, Any] = rdq_answers(5) if instrument == "rdq" else answers_for(instrument, 1)
    return {f"answer_{item}": str(value) for item, value in answers.items()}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serving(world: World, folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`lumbar serve` on the world's trial, in a process of its own; killed at the end."""
    port = _free_port()
    log = (folder / f"serve-{port}.log").open("wb")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = ["serve", "--db", world.url, "--key-file", str(world.key_file), "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "lumbar", *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert process.poll() is None, (folder / f"serve-{port}.log").read_text()
            try:
                if httpx.get(base + "/survey/thanks", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "lumbar serve did not start"
            time.sleep(0.1)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT)
        log.close()


def _trial_with_links(world: World) -> dict[str, str]:
    """``PARTICIPANTS`` randomized 70 days ago (real time) with a week-10 link each."""
    world.clock.now = dt.datetime.now(dt.UTC) - dt.timedelta(days=70)
    links = {}
    coord = world.as_("coord")
    try:
        for _ in range(PARTICIPANTS):
            study_id = world.randomized()
            links[study_id] = coord.issue_survey_token(study_id, VISIT).token
    finally:
        coord.close()
    world.clock.now = dt.datetime.now(dt.UTC)
    return links


def _answer(client: httpx.Client, token: str, instruments: tuple[str, ...]) -> httpx.Response:
    """What a phone does: open the link, send every screen, send the survey; the last answer."""
    _save_every_screen(client, token, instruments)
    return client.post(f"/survey/{token}/submit")


def _save_every_screen(client: httpx.Client, token: str, instruments: tuple[str, ...]) -> None:
    assert client.get(f"/survey/{token}").status_code == 200
    for instrument in instruments:
        saved = client.post(f"/survey/{token}/{instrument}", data=_answers(instrument))
        assert saved.status_code == 303, (instrument, saved.status_code, saved.text)


def _acknowledged(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"] == "/survey/thanks"


def _stored(world: World) -> dict[str, list[tuple[str, str]]]:
    """(instrument, source) of every questionnaire of the visit, by study id (read directly)."""
    monitor = world.as_("monitor")
    try:
        with monitor.db.read() as session:
            rows = session.execute(
                select(Participant.study_id, Questionnaire.instrument, Questionnaire.source)
                .join(Participant, Participant.id == Questionnaire.participant_id)
                .where(Questionnaire.visit == VISIT)
            ).all()
    finally:
        monitor.close()
    stored: dict[str, list[tuple[str, str]]] = {}
    for study_id, instrument, source in rows:
        stored.setdefault(str(study_id), []).append((instrument, source))
    return stored


def _audit_intact(world: World) -> None:
    monitor = world.as_("monitor")
    try:
        report = monitor.verify_audit()
        assert report.intact, report.findings
    finally:
        monitor.close()


def test_a_server_killed_mid_burst_loses_no_acknowledged_survey(
    database_url: str, tmp_path: Path
) -> None:
    world = build_world(database_url, tmp_path)
    instruments = tuple(world.protocol.visit(VISIT).instruments)
    links = _trial_with_links(world)
    acknowledged: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def participant(study_id: str) -> None:
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            try:
                token = links[study_id]
                if study_id in ready:
                    sent = client.post(f"/survey/{token}/submit")
                else:
                    sent = _answer(client, token, instruments)
                if _acknowledged(sent):
                    with lock:
                        acknowledged.append(study_id)
                        if len(acknowledged) >= KILL_AFTER:
                            enough.set()
            except (httpx.HTTPError, AssertionError):
                pass  # the server died under it: not acknowledged

    with _serving(world, tmp_path) as (server, base):
        # Half the participants answered every screen already and only send the survey in
        # the burst, so that surveys are being stored when the kill lands.
        ready = set(list(links)[: PARTICIPANTS // 2])
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            for study_id in ready:
                _save_every_screen(client, links[study_id], instruments)
        phones = [threading.Thread(target=participant, args=(s,)) for s in links]
        for phone in phones:
            phone.start()
        assert enough.wait(TIMEOUT * 3), "too few surveys acknowledged before the kill"
        server.send_signal(signal.SIGKILL)
        server.wait(TIMEOUT)
        for phone in phones:
            phone.join(TIMEOUT)
        with lock:
            acked = list(acknowledged)  # nothing more can be acknowledged now
    assert server.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acked) < PARTICIPANTS, "the kill must land mid-burst"

    with _serving(world, tmp_path) as (_, base):
        stored = _stored(world)
        whole = sorted((instrument, "participant_link") for instrument in instruments)
        for study_id in acked:
            assert sorted(stored.get(study_id, [])) == whole, study_id
        unacknowledged = [study_id for study_id in links if study_id not in acked]
        for study_id in unacknowledged:
            assert sorted(stored.get(study_id, [])) in ([], whole), study_id  # never in part
        # Those not stored finish through the same link, once; the answers saved before
        # the kill are still there, so the review already has them.
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            for study_id in unacknowledged:
                if study_id in stored:
                    continue
                assert _acknowledged(_answer(client, links[study_id], instruments)), study_id
            # Sending again stores nothing: every link is used up.
            for study_id, token in links.items():
                again = client.post(f"/survey/{token}/submit")
                assert again.status_code == 410, (study_id, again.status_code)
                assert client.get(f"/survey/{token}").status_code == 410
    final = _stored(world)
    assert set(final) == set(links)
    for study_id in links:
        assert sorted(final[study_id]) == whole, study_id
    _audit_intact(world)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_survey_sent_twice_at_once_is_stored_once(database_url: str, tmp_path: Path) -> None:
    world = build_world(database_url, tmp_path)
    instruments = tuple(world.protocol.visit(VISIT).instruments)
    links = _trial_with_links(world)
    tokens = list(links.values())[:4]
    with _serving(world, tmp_path) as (_, base):
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            for token in tokens:
                _save_every_screen(client, token, instruments)
        answers: dict[str, list[httpx.Response]] = {token: [] for token in tokens}
        start = threading.Barrier(2 * len(tokens))

        def send(token: str) -> None:
            with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
                start.wait()
                answers[token].append(client.post(f"/survey/{token}/submit"))

        senders = [threading.Thread(target=send, args=(t,)) for t in tokens for _ in range(2)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(TIMEOUT)
    stored = _stored(world)
    for study_id, token in links.items():
        if token not in tokens:
            continue
        statuses = sorted(response.status_code for response in answers[token])
        assert statuses == [303, 410], (study_id, statuses)  # one thanked, one told it is used
        assert sorted(stored[study_id]) == sorted(
            (instrument, "participant_link") for instrument in instruments
        )
    _audit_intact(world)
