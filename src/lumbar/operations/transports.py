"""How a participant's message leaves lumbar: one small interface, three transports.

::

    transport = SmtpTransport("mail.example.org", 587, sender="trial@example.org")
    transport.send(Envelope(12, "email", "p@example.org", "Your questionnaires", "..."))

A :class:`Transport` handles some channels (``email``, ``sms``) and sends one
:class:`Envelope` at a time; it raises :class:`DeliveryError` when it cannot, saying
whether trying again may help (``permanent``). The error's message never holds the
address or the text: it is recorded in the outbox and may be logged.

- :class:`SmtpTransport`: e-mail through an SMTP server (``smtplib``), optionally with
  STARTTLS and a sign-in. Each message carries a ``Message-ID`` made from its outbox id,
  so a mail system that drops duplicates drops a message sent again after a crash.
- :class:`FileTransport`: development; each message is appended as one JSON line to
  ``messages.jsonl`` in a folder (the address included: the folder holds contacts).
- :class:`HttpSmsTransport`: SMS through a provider's HTTP API: a POST of
  ``{"id": ..., "to": ..., "text": ...}`` as JSON to a configured URL, with an optional
  bearer token; any 2xx answer is delivery.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol

from lumbar.errors import OperationError, Problem

__all__ = [
    "DeliveryError",
    "Envelope",
    "FileTransport",
    "HttpSmsTransport",
    "SmtpTransport",
    "Transport",
]


class DeliveryError(OperationError):
    """A transport could not deliver a message (the message names no address)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__("the message was not delivered", [Problem("transport", message)])
        self.reason = message
        self.permanent = permanent
        """Trying again will not help (the server refused the address, say)."""


@dataclass(frozen=True)
class Envelope:
    """One message to one participant, ready to send."""

    id: int
    """The outbox message's id."""
    channel: str
    to: str = field(repr=False)
    """The e-mail address or telephone number, from the vault: never logged."""
    subject: str
    text: str = field(repr=False)
    """The body; holds the participant's survey link, a secret."""


class Transport(Protocol):
    """Sends participants' messages on some channels."""

    @property
    def channels(self) -> tuple[str, ...]: ...

    def send(self, envelope: Envelope) -> None:
        """Deliver ``envelope`` or raise :class:`DeliveryError`."""
        ...


@dataclass(frozen=True)
class SmtpTransport:
    """E-mail through an SMTP server."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout: float = 30.0

    @property
    def channels(self) -> tuple[str, ...]:
        return ("email",)

    def send(self, envelope: Envelope) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = envelope.to
        message["Subject"] = envelope.subject
        message["Date"] = formatdate(usegmt=True)
        domain = self.sender.rpartition("@")[2] or "lumbar.invalid"
        message["Message-ID"] = f"<lumbar-outbox-{envelope.id}@{domain}>"
        message.set_content(envelope.text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("SMTP: the server refused the recipient", permanent=True) from None
        except smtplib.SMTPResponseException as error:
            # 5xx: the server will not take it; 4xx: try again later.
            raise DeliveryError(
                f"SMTP: the server answered {error.smtp_code}", permanent=error.smtp_code >= 500
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"SMTP: {type(error).__name__}") from None


@dataclass(frozen=True)
class FileTransport:
    """Development: every message as one JSON line in ``<folder>/messages.jsonl``."""

    folder: Path

    @property
    def channels(self) -> tuple[str, ...]:
        return ("email", "sms")

    def send(self, envelope: Envelope) -> None:
        line = json.dumps(
            {
                "id": envelope.id,
                "channel": envelope.channel,
                "to": envelope.to,
                "subject": envelope.subject,
                "text": envelope.text,
            },
            ensure_ascii=False,
        )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / "messages.jsonl").open("a", encoding="utf-8") as file:
                file.write(line + "\n")
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise DeliveryError(f"file: {type(error).__name__}") from None


@dataclass(frozen=True)
class HttpSmsTransport:
    """SMS through a provider's HTTP API (a JSON POST to ``url``)."""

    url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    @property
    def channels(self) -> tuple[str, ...]:
        return ("sms",)

    def send(self, envelope: Envelope) -> None:
        body = json.dumps({"id": envelope.id, "to": envelope.to, "text": envelope.text})
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.url, data=body.encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            # A 4xx other than 429 (too many requests) will not change on a second try.
            permanent = 400 <= error.code < 500 and error.code != 429
            raise DeliveryError(
                f"SMS: the service answered {error.code}", permanent=permanent
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise DeliveryError(f"SMS: {type(error).__name__}") from None
