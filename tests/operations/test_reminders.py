"""Participants' invitations and reminders: planned from the protocol, checked again at the
moment of sending, sent once by several workers, retried with back-off, and what a crash
between sending and recording does."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select, text

from lumbar.errors import OperationError
from lumbar.operations import Trial
from lumbar.operations.outbox import BACKOFF, INTERRUPTED, LEASE, MAX_ATTEMPTS, MessageView
from lumbar.operations.transports import DeliveryError, Envelope
from lumbar.store import Database
from lumbar.store.schema import AuditRecord, OutboxMessage
from tests import postgres as pg
from tests.operations.world import World, answers_for, build_world, rdq_answers

pytestmark = pytest.mark.integration

ADDRESS = "pat.example@example.org"
LINK = "https://trial.example.org/survey/"
WEEK_10_OPENS = 63  # day 70, window 7 days before and 21 after: days 63 to 91


class Crash(BaseException):
    """A worker killed between sending and recording (not an error it could catch)."""


@dataclass
class Recording:
    """A transport that keeps what it was given; fails or crashes when told to."""

    channels: tuple[str, ...] = ("email",)
    sent: list[Envelope] = field(default_factory=list)
    failures: int = 0
    crashes: int = 0
    pause: float = 0.0

    def send(self, envelope: Envelope) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("SMTP: the server answered 451")
        if self.pause:
            time.sleep(self.pause)  # lets a second worker reach the same messages meanwhile
        self.sent.append(envelope)
        if self.crashes:
            self.crashes -= 1
            raise Crash


def _participant(world: World, contact: str = ADDRESS) -> str:
    study_id = world.randomized("SEA")
    coordinator = world.as_("coord")
    coordinator.record_identity(study_id, contact=contact)
    coordinator.close()
    return study_id


def _worker(world: World) -> Trial:
    return world.as_("coord")


def _messages(
    trial: Trial, study_id: str, visit: str = "week_10"
) -> dict[str, tuple[str, str | None]]:
    return {
        m.message: (m.status, m.reason)
        for m in trial.participant_messages(study_id)
        if m.visit == visit
    }


def _invitation(trial: Trial, study_id: str) -> MessageView:
    (found,) = [
        m
        for m in trial.participant_messages(study_id)
        if (m.visit, m.message) == ("week_10", "invitation")
    ]
    return found


def _complete_week_10(world: World, study_id: str) -> None:
    coordinator = world.as_("coord")
    coordinator.record_visit(
        study_id,
        "week_10",
        {
            name: rdq_answers(3) if name == "rdq" else answers_for(name, 1)
            for name in world.protocol.visit("week_10").instruments
        },
        completed_on=world.clock.today,
    )
    coordinator.close()


def test_the_invitation_goes_when_the_window_opens_with_a_link_and_only_once(
    world: World,
) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording()
    first = worker.send_messages(transport, link_base=LINK)
    assert first.planned == 12  # 3 follow-up visits x (invitation, 2 reminders, last)
    assert (first.handled, transport.sent) == (0, [])  # nothing due yet

    world.clock.advance(WEEK_10_OPENS)
    assert worker.send_messages(transport, link_base=LINK).sent == 1
    (envelope,) = transport.sent
    assert (envelope.channel, envelope.to) == ("email", ADDRESS)
    assert "10 weeks" in envelope.subject
    assert LINK + "lsv_" in envelope.text or LINK in envelope.text
    again = worker.send_messages(transport, link_base=LINK)
    assert (again.planned, again.handled, len(transport.sent)) == (0, 0, 1)
    assert _messages(worker, study_id)["invitation"] == ("sent", None)


def test_a_reminder_stops_when_the_questionnaires_are_complete(world: World) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording()
    world.clock.advance(WEEK_10_OPENS)
    worker.send_messages(transport, link_base=LINK)
    _complete_week_10(world, study_id)
    world.clock.advance(7)
    step = worker.send_messages(transport, link_base=LINK)
    assert (step.sent, step.skipped) == (0, 1)
    assert len(transport.sent) == 1  # the invitation only
    assert _messages(worker, study_id)["reminder_1"] == ("skipped", "questionnaires complete")


def test_a_reminder_stops_when_the_participant_withdrew(world: World) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording()
    world.clock.advance(WEEK_10_OPENS)
    worker.send_messages(transport, link_base=LINK)  # invitation sent, reminders queued
    coordinator = world.as_("coord")
    coordinator.withdraw(study_id, "withdrew_consent", "no longer wishes", world.clock.today)
    coordinator.close()
    world.clock.advance(7)
    step = worker.send_messages(transport, link_base=LINK)
    assert (step.sent, step.skipped) == (0, 1)
    assert _messages(worker, study_id)["reminder_1"] == ("skipped", "follow-up ended")


def test_nothing_is_sent_once_the_window_has_closed(world: World) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording()
    worker.plan_messages()  # queued, but no worker runs until after week 10's window
    world.clock.advance(92)
    step = worker.send_messages(transport, link_base=LINK)
    assert step.sent == 0
    assert transport.sent == []
    assert set(_messages(worker, study_id).values()) == {("skipped", "window closed")}


def test_a_worker_that_was_down_sends_the_latest_message_not_a_backlog(world: World) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording()
    worker.plan_messages()
    world.clock.advance(WEEK_10_OPENS + 14)  # invitation, reminder 1 and 2 all due
    step = worker.send_messages(transport, link_base=LINK)
    assert (step.sent, step.skipped) == (1, 2)
    shown = _messages(worker, study_id)
    assert shown["reminder_2"] == ("sent", None)
    assert shown["invitation"] == shown["reminder_1"] == ("skipped", "a later message is due")


@pytest.mark.parametrize("contact", ["+1 206 555 0100", "12 High Street, Seattle"])
def test_a_contact_that_does_not_fit_the_channel_is_skipped(world: World, contact: str) -> None:
    study_id = _participant(world, contact=contact)
    worker, transport = _worker(world), Recording()
    world.clock.advance(WEEK_10_OPENS)
    assert worker.send_messages(transport, link_base=LINK).skipped == 1
    assert _messages(worker, study_id)["invitation"] == (
        "skipped",
        "no e-mail address in the vault",
    )
    issued = world.as_("admin").audit_records(action="survey_token.issue", limit=10)
    assert issued.records == ()  # no link is made for a message that cannot go


def test_failed_attempts_are_tried_again_after_a_doubling_wait(world: World) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording(failures=2)
    world.clock.advance(WEEK_10_OPENS)
    opened = world.clock.now

    assert worker.send_messages(transport, link_base=LINK).retrying == 1
    message = _invitation(worker, study_id)
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.last_error == "SMTP: the server answered 451"
    assert worker.send_messages(transport, link_base=LINK).handled == 0  # not before its time

    world.clock.now = opened + BACKOFF
    assert worker.send_messages(transport, link_base=LINK).retrying == 1
    world.clock.now = opened + BACKOFF + BACKOFF  # the second wait is twice the first
    assert worker.send_messages(transport, link_base=LINK).handled == 0
    world.clock.now = opened + BACKOFF + 2 * BACKOFF
    assert worker.send_messages(transport, link_base=LINK).sent == 1
    assert _messages(worker, study_id)["invitation"] == ("sent", None)
    assert len(transport.sent) == 1


def test_a_message_fails_for_good_after_the_last_attempt(world: World) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording(failures=100)
    world.clock.advance(WEEK_10_OPENS)
    for _ in range(MAX_ATTEMPTS):
        worker.send_messages(transport, link_base=LINK)
        world.clock.now += BACKOFF * 2**MAX_ATTEMPTS
    message = _invitation(worker, study_id)
    assert (message.status, message.attempts) == ("failed", MAX_ATTEMPTS)
    assert worker.send_messages(transport, link_base=LINK).handled == 0


def test_a_crash_between_sending_and_recording_sends_once_more_after_the_lease(
    world: World,
) -> None:
    study_id = _participant(world)
    worker, transport = _worker(world), Recording(crashes=1)
    world.clock.advance(WEEK_10_OPENS)
    with pytest.raises(Crash):
        worker.send_messages(transport, link_base=LINK)
    assert _messages(worker, study_id)["invitation"][0] == "sending"
    restarted = _worker(world)
    assert restarted.send_messages(transport, link_base=LINK).handled == 0  # still leased
    world.clock.now += LEASE
    assert restarted.send_messages(transport, link_base=LINK).sent == 1
    # The transport was handed the message twice: once before the crash, once after.
    assert [e.id for e in transport.sent] == [transport.sent[0].id] * 2
    message = _invitation(restarted, study_id)
    assert (message.status, message.last_error) == ("sent", INTERRUPTED)


def test_a_message_interrupted_twice_is_failed_not_sent_a_third_time(world: World) -> None:
    study_id = _participant(world)
    transport = Recording(crashes=2)
    world.clock.advance(WEEK_10_OPENS)
    for _ in range(2):
        with pytest.raises(Crash):
            _worker(world).send_messages(transport, link_base=LINK)
        world.clock.now += LEASE
    step = _worker(world).send_messages(transport, link_base=LINK)
    assert step.sent == 0
    assert len(transport.sent) == 2
    assert _messages(_worker(world), study_id)["invitation"][0] == "failed"


def test_two_workers_send_each_message_once(world: World) -> None:
    participants = [_participant(world) for _ in range(4)]
    _worker(world).plan_messages()
    world.clock.advance(WEEK_10_OPENS)
    transport = Recording(pause=0.05)
    errors: list[BaseException] = []

    def work() -> None:
        trial = _worker(world)
        try:
            while trial.send_messages(transport, link_base=LINK, limit=1).handled:
                pass
        except BaseException as error:
            errors.append(error)
        finally:
            trial.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [envelope.id for envelope in transport.sent]
    assert len(ids) == len(set(ids)) == len(participants)
    assert world.as_("admin").verify_audit().intact  # claims side by side keep one chain


@pytest.fixture
def postgres_world(tmp_path: Path) -> Iterator[World]:
    """A world on PostgreSQL alone (SKIP LOCKED is PostgreSQL's)."""
    try:
        server = pg.server_url()
    except pg.PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL: {error}")
    url = pg.create_database(server)
    try:
        yield build_world(url, tmp_path)
    finally:
        pg.drop_database(url)


def test_a_worker_passes_over_a_message_another_holds_instead_of_waiting(
    postgres_world: World,
) -> None:
    world = postgres_world
    for _ in range(2):
        _participant(world)
    _worker(world).plan_messages()
    world.clock.advance(WEEK_10_OPENS)
    database = Database(world.url)
    with database.read() as session:
        first = session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.subject == "visit:week_10:invitation")
            .order_by(OutboxMessage.id)
        ).first()
    holder = database.engine.connect()
    holder.begin()
    holder.execute(text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": first})
    # Another worker holds the first message (as while it claims it); it lets go a moment
    # later, so a worker that waited for it instead of passing over would claim it then.
    release = threading.Timer(1.0, holder.rollback)
    release.start()
    try:
        transport = Recording()
        assert _worker(world).send_messages(transport, link_base=LINK, limit=1).sent == 1
        (envelope,) = transport.sent
        assert envelope.id != first
    finally:
        release.join()
        holder.close()
        database.dispose()


def test_contacts_and_links_reach_no_log_audit_record_or_outbox_row(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _participant(world)
    worker, transport = _worker(world), Recording(failures=1)
    world.clock.advance(WEEK_10_OPENS)
    worker.send_messages(transport, link_base=LINK)
    world.clock.now += BACKOFF
    worker.send_messages(transport, link_base=LINK)
    (envelope,) = transport.sent
    secrets = (ADDRESS, envelope.text.split(LINK)[1].split()[0])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "message" in logged  # the worker does log what it does
    database = Database(world.url)
    with database.read() as session:
        audit = "\n".join(f"{r.old} {r.new}" for r in session.scalars(select(AuditRecord)).all())
        outbox = "\n".join(
            f"{m.payload} {m.last_error} {m.reason}"
            for m in session.scalars(select(OutboxMessage)).all()
        )
    database.dispose()
    for secret in secrets:
        assert secret not in logged
        assert secret not in audit
        assert secret not in outbox
    assert repr(envelope).count(ADDRESS) == 0


def test_a_participant_randomized_later_gets_messages_too(world: World) -> None:
    worker = _worker(world)
    assert worker.plan_messages() == 0
    _participant(world)
    assert worker.plan_messages() == 12
    assert worker.plan_messages() == 0


def test_a_transport_for_another_channel_is_refused(world: World) -> None:
    with pytest.raises(OperationError, match="sends sms; the protocol's messages go by email"):
        _worker(world).send_messages(Recording(channels=("sms",)), link_base=LINK)
