"""``lumbar worker``: send participants their invitations and reminders."""

from __future__ import annotations

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lumbar.cli._common import app, console, echo_table
from lumbar.cli.trial import As, Db, KeyFile, Reference, open_trial
from lumbar.errors import OperationError, Problem

if TYPE_CHECKING:
    from lumbar.operations.transports import Transport

__all__ = [
    "SMS_TOKEN_ENV",
    "SMTP_PASSWORD_ENV",
    "TransportName",
    "messages_command",
    "worker_command",
]

SMTP_PASSWORD_ENV = "LUMBAR_SMTP_PASSWORD"
SMS_TOKEN_ENV = "LUMBAR_SMS_TOKEN"


class TransportName(StrEnum):
    smtp = "smtp"
    file = "file"
    sms = "sms"


@app.command("worker")
def worker_command(
    link_base: Annotated[
        str,
        typer.Option(
            "--link-base",
            help="What a survey link starts with; the token follows it "
            "(e.g. https://trial.example.org/survey/).",
        ),
    ],
    transport: Annotated[
        TransportName,
        typer.Option(help="How messages leave: smtp, file (development) or sms (over HTTP)."),
    ] = TransportName.file,
    once: Annotated[
        bool, typer.Option("--once", help="Send what is due now and stop (e.g. from cron).")
    ] = False,
    interval: Annotated[
        int, typer.Option(min=1, help="Seconds between steps when running on.")
    ] = 60,
    folder: Annotated[
        Path, typer.Option(help="file: the folder of messages.jsonl (it holds contacts).")
    ] = Path("messages"),
    smtp_host: Annotated[str, typer.Option(help="smtp: the mail server.")] = "localhost",
    smtp_port: Annotated[int, typer.Option(min=1, max=65535, help="smtp: its port.")] = 25,
    smtp_from: Annotated[
        str | None, typer.Option(help="smtp: the sender address (required for smtp).")
    ] = None,
    smtp_user: Annotated[
        str | None,
        typer.Option(help=f"smtp: sign in as this user, with the password in {SMTP_PASSWORD_ENV}."),
    ] = None,
    smtp_starttls: Annotated[
        bool, typer.Option("--smtp-starttls", help="smtp: switch to TLS with STARTTLS.")
    ] = False,
    sms_url: Annotated[
        str | None,
        typer.Option(
            help=f"sms: the provider's URL a JSON message is POSTed to (bearer token in "
            f"{SMS_TOKEN_ENV}, if it needs one)."
        ),
    ] = None,
    messages: Annotated[
        Path | None,
        typer.Option(
            help="The messages in another language: a message catalogue with the keys of "
            "lumbar's messages/en.yaml (as for 'lumbar serve --messages')."
        ),
    ] = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Send participants the invitations and reminders the protocol declares, when due.

    Each step queues the protocol's messages for newly randomized participants, claims the
    messages due, checks each again (not sent when the visit is complete, follow-up has
    ended or the window has closed), sends it and records the outcome; a failed attempt is
    tried again later. Several workers may run at once on PostgreSQL. Run as a user who
    may open identifiers and record questionnaires (a coordinator or an admin).
    """
    from lumbar.messages import Catalogue

    catalogue = Catalogue.load(messages)  # a catalogue missing a key is refused at start
    chosen = _transport(
        transport, folder, smtp_host, smtp_port, smtp_from, smtp_user, smtp_starttls, sms_url
    )
    trial = open_trial(db, actor, key_file)
    out = console()
    try:
        while True:
            done = trial.send_messages(chosen, link_base=link_base, catalogue=catalogue)
            out.print(
                f"{trial.clock().isoformat(timespec='seconds')} queued {done.planned}, "
                f"sent {done.sent}, skipped {done.skipped}, to retry {done.retrying}, "
                f"failed {done.failed}"
            )
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        out.print("Stopped.")
    finally:
        trial.close()


@app.command("messages")
def messages_command(
    reference: Reference, db: Db = None, actor: As = None, key_file: KeyFile = None
) -> None:
    """A participant's invitations and reminders: when due, and what became of each."""
    trial = open_trial(db, actor, key_file)
    try:
        rows = [
            (
                m.visit,
                m.message,
                m.channel,
                m.due_at.date().isoformat(),
                m.status,
                m.attempts,
                m.sent_at.isoformat(timespec="minutes") if m.sent_at else None,
                m.reason or m.last_error,
            )
            for m in trial.participant_messages(reference)
        ]
    finally:
        trial.close()
    echo_table(
        f"Messages to {reference}",
        ("visit", "message", "channel", "due", "status", "attempts", "sent", "why"),
        rows,
    )


def _transport(
    name: TransportName,
    folder: Path,
    smtp_host: str,
    smtp_port: int,
    smtp_from: str | None,
    smtp_user: str | None,
    smtp_starttls: bool,
    sms_url: str | None,
) -> Transport:
    from lumbar.operations.transports import FileTransport, HttpSmsTransport, SmtpTransport

    if name is TransportName.file:
        return FileTransport(folder)
    if name is TransportName.smtp:
        if not smtp_from:
            raise _missing("--smtp-from", "the sender address", "e.g. trial@example.org")
        return SmtpTransport(
            smtp_host,
            smtp_port,
            smtp_from,
            username=smtp_user,
            password=os.environ.get(SMTP_PASSWORD_ENV),
            starttls=smtp_starttls,
        )
    if not sms_url:
        raise _missing("--sms-url", "the SMS provider's URL", "e.g. https://sms.example.org/send")
    return HttpSmsTransport(sms_url, token=os.environ.get(SMS_TOKEN_ENV))


def _missing(flag: str, what: str, hint: str) -> OperationError:
    return OperationError(
        "the transport is not configured", [Problem(flag, f"is needed: {what}", hint=hint)]
    )
