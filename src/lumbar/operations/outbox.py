"""The outbox: messages queued for someone in the same unit of work as what they report.

A message is written with the record it is about, or not at all: a serious adverse
event and the notice to the site's monitors commit together, so no event is recorded
without its notice and no notice reports an event that was rolled back.

Messages are addressed to a role at a site (``recipient_role``, ``site_id``), not to
named people: a monitor assigned to the site after the event still finds the notice
waiting. Today's one channel is ``inbox``: the notice is shown in lumbar (the monitor's
notifications page and dashboard) until one of the site's monitors acknowledges it,
which is audited. A message carries no free text and no identifier, because the
monitor may be blinded: a serious event's description can reveal the arm.

Participants' messages
----------------------
The protocol's ``messages`` declare, for every follow-up visit, an invitation when its
window opens, reminders and a last reminder before it closes, by ``email`` or ``sms``.
``lumbar worker`` sends them, in steps (:meth:`OutboxService.send_messages`):

1. **Plan** (:meth:`OutboxService.plan_messages`): queue every declared message of every
   randomized participant whose follow-up goes on and whose visit's window has not closed,
   once (a unique key on participant, recipient and subject makes it idempotent). Planning
   is the worker's job, not randomization's: participants randomized before the protocol
   declared messages, or before the worker first ran, get theirs too.
2. **Claim** due messages: status ``sending``, ``claimed_at``, ``claimed_by``, one more
   attempt, committed before anything is sent. On PostgreSQL the claim reads with
   ``SELECT ... FOR UPDATE SKIP LOCKED`` in a unit that shares the trial's write lock, so
   several workers run side by side and never claim the same message; on SQLite writers
   take turns.
3. **Check again, at the moment of sending**: the message is ``skipped``, with its
   ``reason``, when the participant's follow-up has ended, every questionnaire of the visit
   is recorded, the window has closed, a later message of the same visit is already due
   (a worker that was down sends one message, not a backlog), or the vault holds no fitting
   contact.
4. **Send**: a new survey link (:meth:`.SurveyLinkService.issue_survey_token`,
   valid until the window closes), the contact opened from the vault (audited as any
   opening), one :class:`~lumbar.operations.transports.Envelope` to the transport.
5. **Record** ``sent``; or, when the transport fails, ``queued`` again with
   ``next_attempt_at`` after an exponential back-off (:data:`BACKOFF`, doubled at each
   attempt) until :data:`MAX_ATTEMPTS`, then ``failed``. A permanent refusal fails at once.

A crash between sending and recording leaves the message ``sending``. After
:data:`LEASE` another worker (or the same after restart) claims it again and, since it
cannot know whether the transport delivered, sends it once more, marked
:data:`INTERRUPTED`; a message interrupted a second time is ``failed`` rather than sent a
third time. So a crash sends a message at most twice, and the SMTP transport gives both
copies the same ``Message-ID``. Contacts, links and texts are never written to the outbox,
the audit trail or a log.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select

from lumbar.errors import AccessError, OperationError, Problem
from lumbar.messages import Catalogue
from lumbar.operations.context import Service, Unit
from lumbar.operations.enrolment import EnrolmentService
from lumbar.operations.schedule import FOLLOW_UP_ENDS, follow_up_ended_on, recorded_questionnaires
from lumbar.operations.survey import SurveyLinkService
from lumbar.operations.transports import DeliveryError, Envelope, Transport
from lumbar.protocol import Protocol
from lumbar.store.schema import (
    AdverseEvent,
    Allocation,
    OutboxMessage,
    Participant,
    Site,
    Staff,
    Withdrawal,
)

__all__ = [
    "BACKOFF",
    "INTERRUPTED",
    "LEASE",
    "MAX_ATTEMPTS",
    "MONITOR",
    "PARTICIPANT",
    "SERIOUS_ADVERSE_EVENT",
    "SYNTHETIC_MARK",
    "Delivery",
    "MessageView",
    "NotificationView",
    "OutboxService",
    "queue_serious_adverse_event",
]

_log = logging.getLogger("lumbar.worker")

SERIOUS_ADVERSE_EVENT = "serious_adverse_event"
MONITOR = "monitor"
PARTICIPANT = "participant"
"""The recipient of an invitation or reminder (``recipient_role``)."""

MAX_ATTEMPTS = 5
"""How many times a participant's message is tried before it is ``failed``."""
BACKOFF = dt.timedelta(minutes=5)
"""The wait after a first failed attempt; doubled after each further one (5, 10, 20,
40 minutes: a mail server's restart or a provider's hiccup, not a day)."""
LEASE = dt.timedelta(minutes=10)
"""How long a claimed message is left to its worker before another may claim it again
(far longer than one SMTP or HTTP exchange with its timeout of 30 seconds)."""
INTERRUPTED = "interrupted: claimed but not recorded"
"""``last_error`` of a message sent again after a worker stopped between claim and record."""
BATCH = 50
"""How many messages one worker claims at a time."""


@dataclass(frozen=True)
class NotificationView:
    """One queued message, as its recipient reads it."""

    id: int
    kind: str
    site: str
    """The site's code."""
    study_id: str | None
    subject: str
    """What it is about, as ``<table>:<id>`` (``adverse_event:12``)."""
    details: dict[str, Any]
    created_at: dt.datetime
    status: str
    """``queued`` (waiting for a recipient) or ``acknowledged``."""
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None


@dataclass(frozen=True)
class MessageView:
    """A participant's invitation or reminder, as staff see it (no contact, no text)."""

    id: int
    study_id: str
    visit: str
    message: str
    """``invitation``, ``reminder_1``..., ``last``."""
    channel: str
    status: str
    """``queued``, ``sending``, ``sent``, ``skipped`` or ``failed``."""
    due_at: dt.datetime
    attempts: int
    sent_at: dt.datetime | None
    reason: str | None
    last_error: str | None


@dataclass(frozen=True)
class Delivery:
    """What one worker step did."""

    planned: int = 0
    """Messages newly queued."""
    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    """Failed attempts queued again for later."""
    failed: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.skipped + self.retrying + self.failed


@dataclass(frozen=True)
class _Claimed:
    id: int
    participant_id: int
    study_id: str
    channel: str
    visit: str
    message: str
    attempts: int


def queue_serious_adverse_event(
    unit: Unit, event: AdverseEvent, participant: Participant
) -> OutboxMessage:
    """Queue the notice of a serious adverse event for the monitors of its site (in ``unit``,
    the unit that records the event, so both commit or neither)."""
    message = OutboxMessage(
        kind=SERIOUS_ADVERSE_EVENT,
        channel="inbox",
        recipient_role=MONITOR,
        site_id=participant.site_id,
        participant_id=participant.id,
        subject=f"adverse_event:{event.id}",
        payload={
            "adverse_event": event.id,
            "onset_date": event.onset_date.isoformat(),
            "severity": event.severity,
        },
        status="queued",
        created_at=unit.now,
    )
    unit.session.add(message)
    unit.session.flush()
    unit.audit(
        "notification.queue",
        "outbox",
        message.id,
        new={
            "kind": message.kind,
            "to": f"{MONITOR} at site {participant.site_id}",
            "subject": message.subject,
        },
    )
    return message


class OutboxService(Service):
    """The messages addressed to the signed-in user's role at their sites."""

    def notifications(self, *, waiting: bool = False) -> list[NotificationView]:
        """Messages for your role at your sites, newest first (``waiting``: only those no
        one has acknowledged yet). An administrator sees every role's."""
        with self._unit("notifications", write=False) as unit:
            query = self._addressed(unit).order_by(OutboxMessage.id.desc())
            if waiting:
                query = query.where(OutboxMessage.status == "queued")
            return [_view(*row) for row in unit.session.execute(query).all()]

    def acknowledge_notification(self, notification_id: int) -> NotificationView:
        """Record that you have read and acted on a message (once; audited)."""
        with self._unit("notifications") as unit:
            found = unit.session.execute(
                self._addressed(unit).where(OutboxMessage.id == notification_id)
            ).one_or_none()
            if found is None:
                raise OperationError(
                    "unknown notification",
                    [
                        Problem(
                            "notification",
                            "is not a notification for you",
                            notification_id,
                            "check the number",
                        )
                    ],
                )
            message, site, study_id, _ = found
            if message.status != "queued":
                raise OperationError(
                    "the notification was not acknowledged",
                    [
                        Problem(
                            "notification",
                            f"is already {message.status}",
                            notification_id,
                            "nothing to do",
                        )
                    ],
                )
            message.status = "acknowledged"
            message.acknowledged_at = unit.now
            message.acknowledged_by = unit.scope.id
            unit.audit(
                "notification.acknowledge",
                "outbox",
                message.id,
                old={"status": "queued"},
                new={"status": "acknowledged"},
            )
            return _view(message, site, study_id, unit.scope.username)

    # ------------------------------------------------------- participants' messages

    def participant_messages(self, reference: str) -> list[MessageView]:
        """A participant's invitations and reminders, in the order they are due."""
        with self._unit("view", write=False) as unit:
            participant = unit.participant(reference)
            rows = unit.session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.participant_id == participant.id,
                    OutboxMessage.recipient_role == PARTICIPANT,
                )
                .order_by(OutboxMessage.due_at, OutboxMessage.id)
            ).all()
            return [_message_view(row, str(participant.study_id)) for row in rows]

    def plan_messages(self) -> int:
        """Queue the protocol's messages for every randomized participant at your sites
        whose follow-up goes on, for each visit whose window has not closed; each message
        once, however often this runs. Returns how many were newly queued."""
        declared = self.protocol.messages
        if declared is None:
            return 0
        with self._unit("identity") as unit:
            ended = exists().where(
                Withdrawal.participant_id == Participant.id, Withdrawal.kind.in_(FOLLOW_UP_ENDS)
            )
            participants = unit.session.execute(
                select(Participant.id, Participant.site_id, Allocation.randomized_on)
                .join(Allocation, Allocation.participant_id == Participant.id)
                .where(unit.scope.site_filter(), ~ended)
                .order_by(Participant.id)
            ).all()
            queued = set(
                unit.session.execute(
                    select(OutboxMessage.participant_id, OutboxMessage.subject).where(
                        OutboxMessage.recipient_role == PARTICIPANT
                    )
                )
            )
            today = unit.now.date()
            count = 0
            for participant_id, site_id, randomized_on in participants:
                for visit in self.protocol.follow_up_visits:
                    if randomized_on + dt.timedelta(days=visit.latest_day) < today:
                        continue
                    for planned in declared.plan(visit):
                        subject = f"visit:{visit.id}:{planned.id}"
                        if (participant_id, subject) in queued:
                            continue
                        due = randomized_on + dt.timedelta(days=planned.day)
                        unit.session.add(
                            OutboxMessage(
                                kind="reminder" if planned.id != "invitation" else "invitation",
                                channel=declared.channel,
                                recipient_role=PARTICIPANT,
                                site_id=site_id,
                                participant_id=participant_id,
                                subject=subject,
                                payload={"visit": visit.id, "message": planned.id},
                                status="queued",
                                created_at=unit.now,
                                due_at=_start_of(due),
                                next_attempt_at=_start_of(due),
                                attempts=0,
                            )
                        )
                        count += 1
            if count:
                unit.audit("messages.plan", "outbox", "participants", new={"queued": count})
            return count

    def send_messages(
        self,
        transport: Transport,
        *,
        link_base: str,
        worker: str | None = None,
        limit: int = BATCH,
        catalogue: Catalogue | None = None,
    ) -> Delivery:
        """One worker step: plan, then claim the messages due now on the transport's
        channels, check each again, send it and record what happened (see the module's
        description). ``link_base``: the survey link is it followed by the token;
        ``catalogue``: the words of the messages (English when None)."""
        catalogue = catalogue or Catalogue.load()
        declared = self.protocol.messages
        if declared is not None and declared.channel not in transport.channels:
            raise OperationError(
                "the transport cannot send the protocol's messages",
                [
                    Problem(
                        "transport",
                        f"sends {', '.join(transport.channels)}; the protocol's messages go "
                        f"by {declared.channel}",
                        type(transport).__name__,
                        "choose a transport for " + declared.channel,
                    )
                ],
            )
        worker = worker or f"{socket.gethostname()}:{os.getpid()}"[:64]
        planned = self.plan_messages()
        outcomes = {"sent": 0, "skipped": 0, "retrying": 0, "failed": 0}
        for claimed in self._claim(transport.channels, worker, limit):
            outcome = self._deliver(claimed, transport, link_base, catalogue)
            outcomes[outcome] += 1
        return Delivery(planned, **outcomes)

    def _claim(self, channels: tuple[str, ...], worker: str, limit: int) -> list[_Claimed]:
        """Claim up to ``limit`` due messages for ``worker``, committed before any is sent."""
        with self.context.unit(self.principal, "identity", per_participant=True) as unit:
            now = unit.now
            query = (
                select(OutboxMessage, Participant.study_id)
                .join(Participant, Participant.id == OutboxMessage.participant_id)
                .where(
                    OutboxMessage.recipient_role == PARTICIPANT,
                    OutboxMessage.channel.in_(channels),
                    unit.scope.site_filter(OutboxMessage.site_id),
                    or_(
                        and_(
                            OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now
                        ),
                        and_(
                            OutboxMessage.status == "sending",
                            OutboxMessage.claimed_at <= now - LEASE,
                        ),
                    ),
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            )
            if self.context.db.backend == "postgresql":
                # Rows another worker holds are passed over, not waited for.
                query = query.with_for_update(skip_locked=True, of=OutboxMessage)
            claimed = []
            for message, study_id in unit.session.execute(query):
                if message.status == "sending":  # its worker stopped before recording
                    if message.last_error == INTERRUPTED:
                        _finish(unit, message, "failed", error="interrupted twice")
                        continue
                    message.last_error = INTERRUPTED
                    _log.warning(
                        "message %s was claimed but not recorded: sending again", message.id
                    )
                message.status = "sending"
                message.claimed_at = now
                message.claimed_by = worker
                message.attempts += 1
                unit.audit(
                    "message.claim",
                    "outbox",
                    message.id,
                    new={"worker": worker, "attempt": message.attempts},
                )
                claimed.append(
                    _Claimed(
                        message.id,
                        message.participant_id or 0,
                        str(study_id),
                        message.channel,
                        str(message.payload["visit"]),
                        str(message.payload["message"]),
                        message.attempts,
                    )
                )
            return claimed

    def _deliver(
        self, claimed: _Claimed, transport: Transport, link_base: str, catalogue: Catalogue
    ) -> str:
        """Check one claimed message again, send it and record the outcome."""
        visit = self.protocol.visit(claimed.visit)
        with self._unit("identity") as unit:
            message = unit.session.get(OutboxMessage, claimed.id)
            assert message is not None  # claimed rows are never deleted
            reason, closes = _still_wanted(unit, self.protocol, claimed, message)
            if reason is not None:
                _finish(unit, message, "skipped", reason=reason)
                return "skipped"
        try:
            contact = EnrolmentService(self.context, self.principal).identity(claimed.study_id)
            to = _address(contact.contact, claimed.channel)
            if to is None:
                missing = "e-mail address" if claimed.channel == "email" else "telephone number"
                return self._record(claimed, "skipped", reason=f"no {missing} in the vault")
            # The link lasts to the window's close; it replaces the one an earlier message
            # carried, and takes over the answers saved through it.
            link = SurveyLinkService(self.context, self.principal).issue_survey_token(
                claimed.study_id, claimed.visit
            )
        except AccessError:
            raise
        except OperationError as error:
            # The link service checks again too: nothing due, or follow-up ended.
            return self._record(claimed, "skipped", reason=error.summary)
        envelope = Envelope(
            claimed.id,
            claimed.channel,
            to,
            _subject(catalogue, self.protocol, visit.label),
            _text(
                catalogue,
                self.protocol,
                visit.label,
                link_base + link.token,
                closes,
                claimed.channel,
                synthetic=self.context.synthetic,
            ),
        )
        try:
            transport.send(envelope)
        except DeliveryError as error:
            if error.permanent or claimed.attempts >= MAX_ATTEMPTS:
                return self._record(claimed, "failed", error=error.reason)
            return self._record(claimed, "retrying", error=error.reason)
        return self._record(claimed, "sent")

    def _record(
        self,
        claimed: _Claimed,
        outcome: str,
        *,
        reason: str | None = None,
        error: str | None = None,
    ) -> str:
        with self._unit("identity") as unit:
            message = unit.session.get(OutboxMessage, claimed.id)
            assert message is not None
            if outcome == "retrying":
                wait = BACKOFF * 2 ** (claimed.attempts - 1)
                message.status = "queued"
                message.next_attempt_at = unit.now + wait
                message.last_error = (error or "")[:255]
                unit.audit(
                    "message.retry",
                    "outbox",
                    message.id,
                    new={
                        "attempt": claimed.attempts,
                        "error": message.last_error,
                        "next_attempt_at": message.next_attempt_at.isoformat(),
                    },
                )
                _log.info(
                    "message %s not delivered (%s): trying again at %s",
                    message.id,
                    message.last_error,
                    message.next_attempt_at.isoformat(),
                )
            else:
                _finish(unit, message, outcome, reason=reason, error=error)
            return outcome

    def _addressed(self, unit: Unit) -> Select[OutboxMessage, str, str | None, str | None]:
        query = (
            select(OutboxMessage, Site.code, Participant.study_id, Staff.username)
            .join(Site, Site.id == OutboxMessage.site_id)
            .outerjoin(Participant, Participant.id == OutboxMessage.participant_id)
            .outerjoin(Staff, Staff.id == OutboxMessage.acknowledged_by)
            .where(OutboxMessage.channel == "inbox", unit.scope.site_filter(OutboxMessage.site_id))
        )
        if unit.scope.role != "admin":
            query = query.where(OutboxMessage.recipient_role == unit.scope.role)
        return query


def _view(
    message: OutboxMessage, site: str, study_id: str | None, acknowledged_by: str | None
) -> NotificationView:
    return NotificationView(
        id=message.id,
        kind=message.kind,
        site=site,
        study_id=study_id,
        subject=message.subject,
        details=dict(message.payload),
        created_at=message.created_at,
        status=message.status,
        acknowledged_at=message.acknowledged_at,
        acknowledged_by=acknowledged_by,
    )


_TELEPHONE = re.compile(r"\+?[0-9][0-9 ()./-]{5,30}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _address(contact: str | None, channel: str) -> str | None:
    """The contact, when it is what ``channel`` sends to: an e-mail address for ``email``,
    a telephone number for ``sms`` (a postal address is neither)."""
    if contact is None:
        return None
    contact = contact.strip()
    pattern = _EMAIL if channel == "email" else _TELEPHONE
    return contact if pattern.fullmatch(contact) else None


def _start_of(day: dt.date) -> dt.datetime:
    """The first moment of ``day``, in UTC: when a message due that day may go."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)


def _still_wanted(
    unit: Unit, protocol: Protocol, claimed: _Claimed, message: OutboxMessage
) -> tuple[str | None, dt.date]:
    """Why the message must not go now (None: it may), and the day its window closes."""
    visit = protocol.visit(claimed.visit)
    randomized_on = unit.session.execute(
        select(Allocation.randomized_on).where(Allocation.participant_id == claimed.participant_id)
    ).scalar_one()
    closes = randomized_on + dt.timedelta(days=visit.latest_day)
    if follow_up_ended_on(unit.session, claimed.participant_id) is not None:
        return "follow-up ended", closes
    recorded = recorded_questionnaires(unit.session, [claimed.participant_id])
    done = {
        instrument for instrument, _ in recorded.get(claimed.participant_id, {}).get(visit.id, ())
    }
    if set(visit.instruments) <= done:
        return "questionnaires complete", closes
    if unit.now.date() > closes:
        return "window closed", closes
    later = unit.session.execute(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.participant_id == claimed.participant_id,
            OutboxMessage.recipient_role == PARTICIPANT,
            OutboxMessage.subject.like(f"visit:{visit.id}:%"),
            OutboxMessage.due_at > message.due_at,
            OutboxMessage.due_at <= unit.now,
        )
        .limit(1)
    ).first()
    if later is not None:
        return "a later message is due", closes
    return None, closes


def _finish(
    unit: Unit,
    message: OutboxMessage,
    status: str,
    *,
    reason: str | None = None,
    error: str | None = None,
) -> None:
    """Record a participant's message as sent, skipped or failed (audited, no contact)."""
    message.status = status
    if status == "sent":
        message.sent_at = unit.now
    if reason is not None:
        message.reason = reason[:64]
    if error is not None:
        message.last_error = error[:255]
    details: dict[str, Any] = {"status": status, "subject": message.subject}
    if message.reason is not None and status == "skipped":
        details["reason"] = message.reason
    if status == "failed":
        details["error"] = message.last_error
    unit.audit(f"message.{status}", "outbox", message.id, new=details)
    _log.info(
        "message %s (%s) %s%s",
        message.id,
        message.subject,
        status,
        f": {reason or error}" if reason or error else "",
    )


SYNTHETIC_MARK = "SYNTHETIC DATA (a demonstration with simulated participants): "
"""What begins every message of a synthetic trial in English (the English catalogue's
``message.synthetic``; another catalogue gives its own)."""


def _subject(catalogue: Catalogue, protocol: Protocol, label: str) -> str:
    return catalogue.text("message.subject", trial=protocol.trial.title, visit=label)


def _text(
    catalogue: Catalogue,
    protocol: Protocol,
    label: str,
    link: str,
    closes: dt.date,
    channel: str,
    *,
    synthetic: bool = False,
) -> str:
    """The message's words, from the participants' message catalogue."""
    mark = catalogue.text("message.synthetic") if synthetic else ""
    key = "message.sms" if channel == "sms" else "message.email"
    return mark + catalogue.text(
        key, trial=protocol.trial.title, visit=label, closes=closes, link=link
    )


def _message_view(row: OutboxMessage, study_id: str) -> MessageView:
    assert row.due_at is not None  # every participant's message has a due time
    return MessageView(
        id=row.id,
        study_id=study_id,
        visit=str(row.payload["visit"]),
        message=str(row.payload["message"]),
        channel=row.channel,
        status=row.status,
        due_at=row.due_at,
        attempts=row.attempts,
        sent_at=row.sent_at,
        reason=row.reason,
        last_error=row.last_error,
    )
