"""The messages a protocol sends participants about their follow-up visits.

Declared once for every follow-up visit: an invitation when the visit's window opens,
reminders a number of days after it opens, and a last reminder a number of days before
it closes, all on one channel (``email`` or ``sms``). :meth:`ParticipantMessages.plan`
turns the declaration into days counted from randomization, one list per visit; the
outbox (:mod:`lumbar.operations.outbox`) queues them and checks each again at the moment
of sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from lumbar._declared import Flag, Frozen, Whole

if TYPE_CHECKING:
    from lumbar.protocol.model import Visit

__all__ = ["CHANNELS", "Channel", "ParticipantMessages", "PlannedMessage"]

Channel = Literal["email", "sms"]
CHANNELS: tuple[Channel, ...] = ("email", "sms")


@dataclass(frozen=True)
class PlannedMessage:
    """One message of one visit: its id (``invitation``, ``reminder_1``..., ``last``) and
    the day, counted from randomization, it is due."""

    id: str
    day: int


class ParticipantMessages(Frozen):
    """Invitations and reminders to answer a follow-up visit's questionnaires."""

    channel: Channel = Field(description="how the messages reach the participant: email or sms")
    invitation: Flag = Field(
        default=True, description="send an invitation on the day the visit's window opens"
    )
    reminders_after_days: tuple[Whole, ...] = Field(
        default=(),
        description="send a reminder this many days after the window opens (each at least 1, "
        "in increasing order)",
    )
    last_days_before_close: Whole | None = Field(
        default=None,
        ge=0,
        description="send a last reminder this many days before the window closes (0: on "
        "its last day)",
    )

    def plan(self, visit: Visit) -> tuple[PlannedMessage, ...]:
        """The messages of ``visit``, in the order they are due."""
        planned = []
        if self.invitation:
            planned.append(PlannedMessage("invitation", visit.earliest_day))
        for number, days in enumerate(self.reminders_after_days, start=1):
            planned.append(PlannedMessage(f"reminder_{number}", visit.earliest_day + days))
        if self.last_days_before_close is not None:
            planned.append(PlannedMessage("last", visit.latest_day - self.last_days_before_close))
        return tuple(sorted(planned, key=lambda message: message.day))
