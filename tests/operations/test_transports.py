"""The transports against real servers the tests start: SMTP (aiosmtpd) and an HTTP stub
for SMS, and the development file transport."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from lumbar.messages import MESSAGES, Catalogue
from lumbar.operations.context import utc_now
from lumbar.operations.outbox import SYNTHETIC_MARK
from lumbar.operations.transports import (
    DeliveryError,
    Envelope,
    FileTransport,
    HttpSmsTransport,
    SmtpTransport,
)
from lumbar.protocol import Protocol, shipped_protocol
from tests.clitools import Cli
from tests.operations.test_reminders import ADDRESS, LINK, WEEK_10_OPENS, _participant
from tests.operations.world import World, build_world

pytestmark = pytest.mark.integration


class _Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse = False

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    """A real SMTP server (aiosmtpd, of the dev extra) on a free port of this machine."""
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port (the controller checks it by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _envelope(channel: str = "email", to: str = ADDRESS) -> Envelope:
    return Envelope(7, channel, to, "Your 10 weeks questionnaires", f"Answer here: {LINK}abc")


def test_smtp_delivers_to_a_real_smtp_server(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    SmtpTransport("127.0.0.1", port, sender="trial@example.org").send(_envelope())
    ((mail_from, recipients, content),) = inbox.messages
    assert (mail_from, recipients) == ("trial@example.org", [ADDRESS])
    message = message_from_bytes(content)
    assert message["Subject"] == "Your 10 weeks questionnaires"
    assert message["Message-ID"] == "<lumbar-outbox-7@example.org>"
    assert f"{LINK}abc" in message.get_payload()


def test_smtp_refusal_is_permanent_and_names_no_address(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    inbox.refuse = True
    with pytest.raises(DeliveryError) as caught:
        SmtpTransport("127.0.0.1", port, sender="trial@example.org").send(_envelope())
    assert caught.value.permanent
    assert ADDRESS not in str(caught.value)


def test_smtp_server_that_is_not_there_is_worth_trying_again(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError) as caught:
        SmtpTransport("127.0.0.1", 1, sender="trial@example.org", timeout=5).send(_envelope())
    assert not caught.value.permanent


def test_the_worker_sends_reminders_through_a_real_smtp_server(
    world: World, smtp_server: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp_server
    study_id = _participant(world)
    worker = world.as_("coord")
    transport = SmtpTransport("127.0.0.1", port, sender="trial@example.org")
    world.clock.advance(WEEK_10_OPENS)
    assert worker.send_messages(transport, link_base=LINK).sent == 1
    world.clock.advance(7)
    assert worker.send_messages(transport, link_base=LINK).sent == 1
    assert [recipients for _, recipients, _ in inbox.messages] == [[ADDRESS], [ADDRESS]]
    assert all(b"SYNTHETIC" not in content for _, _, content in inbox.messages)  # a real trial
    sent = [m.message for m in worker.participant_messages(study_id) if m.status == "sent"]
    assert sent == ["invitation", "reminder_1"]


def test_the_file_transport_writes_one_json_line_a_message(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "outbox")
    transport.send(_envelope())
    transport.send(_envelope("sms", "+1 206 555 0100"))
    lines = (tmp_path / "outbox" / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    shown = [json.loads(line) for line in lines]
    assert [(m["channel"], m["to"]) for m in shown] == [
        ("email", ADDRESS),
        ("sms", "+1 206 555 0100"),
    ]


class _SmsStub(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, Any], str | None]]] = []
    status: ClassVar[int] = 202

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        type(self).received.append((body, self.headers.get("Authorization")))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sms_stub() -> Iterator[tuple[type[_SmsStub], str]]:
    handler = type("Stub", (_SmsStub,), {"received": [], "status": 202})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_port}/messages"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_sms_is_posted_as_json_to_the_configured_url(
    sms_stub: tuple[type[_SmsStub], str],
) -> None:
    handler, url = sms_stub
    HttpSmsTransport(url, token="s3cret").send(_envelope("sms", "+1 206 555 0100"))
    ((body, authorization),) = handler.received
    assert body == {"id": 7, "to": "+1 206 555 0100", "text": f"Answer here: {LINK}abc"}
    assert authorization == "Bearer s3cret"


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (429, False), (503, False)])
def test_sms_service_refusals_say_whether_to_try_again(
    sms_stub: tuple[type[_SmsStub], str], status: int, permanent: bool
) -> None:
    handler, url = sms_stub
    handler.status = status
    with pytest.raises(DeliveryError) as caught:
        HttpSmsTransport(url).send(_envelope("sms", "+1 206 555 0100"))
    assert caught.value.permanent is permanent
    assert "555" not in str(caught.value)


def test_lumbar_worker_once_sends_what_is_due_through_the_file_transport(
    world: World, tmp_path: Path
) -> None:
    # The command runs on the real clock: randomize the participant 63 days before now.
    world.clock.now = utc_now() - dt.timedelta(days=WEEK_10_OPENS)
    study_id = _participant(world)
    cli = Cli(world.url, world.key_file)
    folder = tmp_path / "messages"
    arguments = ("worker", "--once", "--transport", "file", "--folder", str(folder))
    output = cli(*arguments, "--link-base", LINK, user="coord")
    assert "queued 12, sent 1, skipped 0" in output
    (line,) = (folder / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    shown = json.loads(line)
    assert (shown["channel"], shown["to"]) == ("email", ADDRESS)
    assert LINK in shown["text"]
    assert ADDRESS not in output
    again = cli(*arguments, "--link-base", LINK, user="coord")
    assert "queued 0, sent 0" in again
    history = cli("messages", study_id, user="coord")
    for shown in ("invitation", "sent", "reminder_1", "queued"):
        assert shown in history
    assert ADDRESS not in history


def test_lumbar_worker_says_what_the_smtp_transport_needs(world: World) -> None:
    cli = Cli(world.url, world.key_file)
    output = cli("worker", "--once", "--transport", "smtp", "--link-base", LINK, code=2)
    assert "--smtp-from" in output


def test_the_worker_sends_an_sms_protocols_messages_through_the_http_stub(
    database_url: str, tmp_path: Path, sms_stub: tuple[type[_SmsStub], str]
) -> None:
    handler, url = sms_stub
    reference = shipped_protocol("massage-clbp")
    by_sms = Protocol.model_validate(
        {**reference.model_dump(by_alias=True), "messages": {"channel": "sms"}}
    )
    world = build_world(database_url, tmp_path, protocol=by_sms, synthetic=True)
    _participant(world, contact="+1 206 555 0100")
    world.clock.advance(WEEK_10_OPENS)
    worker = world.as_("coord")
    assert worker.send_messages(HttpSmsTransport(url), link_base=LINK).sent == 1
    ((body, _),) = handler.received
    assert body["to"] == "+1 206 555 0100"
    assert LINK in body["text"]
    assert body["text"].startswith(SYNTHETIC_MARK)  # a synthetic trial's messages say so


def _second_language(folder: Path) -> Path:
    """A catalogue in a made-up language 'xx': every English text, marked."""
    english = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    other = {key: f"[xx] {text}" for key, text in english.items()} | {"language": "xx"}
    path = folder / "xx.yaml"
    path.write_text(yaml.safe_dump(other, allow_unicode=True), encoding="utf-8")
    return path


def test_lumbar_worker_sends_the_words_of_another_languages_catalogue(
    world: World, tmp_path: Path
) -> None:
    world.clock.now = utc_now() - dt.timedelta(days=WEEK_10_OPENS)
    _participant(world)
    cli = Cli(world.url, world.key_file)
    folder = tmp_path / "messages"
    catalogue = _second_language(tmp_path)
    arguments = ("worker", "--once", "--transport", "file", "--folder", str(folder))
    output = cli(*arguments, "--link-base", LINK, "--messages", str(catalogue), user="coord")
    assert "sent 1" in output
    (line,) = (folder / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    shown = json.loads(line)
    assert shown["subject"].startswith("[xx] ")
    assert shown["text"].startswith("[xx] Thank you for taking part in")
    assert LINK in shown["text"]


def test_a_synthetic_trials_message_begins_with_its_catalogues_mark(
    database_url: str, tmp_path: Path
) -> None:
    world = build_world(database_url, tmp_path, synthetic=True)
    _participant(world)
    world.clock.advance(WEEK_10_OPENS)
    folder = tmp_path / "messages"
    catalogue = Catalogue.load(_second_language(tmp_path))
    worker = world.as_("coord")
    assert worker.send_messages(FileTransport(folder), link_base=LINK, catalogue=catalogue).sent
    shown = json.loads((folder / "messages.jsonl").read_text(encoding="utf-8"))
    assert shown["text"].startswith("[xx] " + SYNTHETIC_MARK)
    assert Catalogue.load().text("message.synthetic") == SYNTHETIC_MARK


def test_lumbar_worker_refuses_a_catalogue_missing_a_key_at_start_naming_it(
    world: World, tmp_path: Path
) -> None:
    english = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    del english["message.email"]
    catalogue = tmp_path / "short.yaml"
    catalogue.write_text(yaml.safe_dump(english), encoding="utf-8")
    folder = tmp_path / "messages"
    cli = Cli(world.url, world.key_file)
    output = cli(
        "worker", "--once", "--transport", "file", "--folder", str(folder),
        "--link-base", LINK, "--messages", str(catalogue), user="coord", code=2,
    )  # fmt: skip
    assert "message.email" in output
    assert "is missing" in output
    assert not folder.exists()  # refused before anything was sent
