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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select

from lumbar.errors import OperationError, Problem
from lumbar.operations.context import Service, Unit
from lumbar.store.schema import AdverseEvent, OutboxMessage, Participant, Site, Staff

__all__ = [
    "MONITOR",
    "SERIOUS_ADVERSE_EVENT",
    "NotificationView",
    "OutboxService",
    "queue_serious_adverse_event",
]

SERIOUS_ADVERSE_EVENT = "serious_adverse_event"
MONITOR = "monitor"


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
