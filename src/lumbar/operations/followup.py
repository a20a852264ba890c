"""Follow-up at a glance: how complete each follow-up visit is, and whom to call.

::

    board = trial.follow_up()              # today, at your sites
    board.completion                       # each visit: complete of due, all sites
    board.by_site                          # each visit and site
    board.by_arm                           # each visit and arm; None for a blinded user
    board.to_call                          # windows closing soon, or reminders used up

**Due** means the visit's window has opened on the day asked about. A participant
whose follow-up ended (withdrawal of consent, loss to follow-up) before the window
closed without completing it is not counted (the dashboard's ``withdrawn``); a visit
completed is counted, whenever follow-up ended. So the rate is
``complete / (complete + due + overdue + missed)``, of visits whose window has opened,
with the statuses of :mod:`lumbar.operations.schedule`. The day asked about (``on``)
decides which windows have opened and how many days are left; questionnaires count as
recorded now (as on the dashboard), not as they stood on that day.

**Whom to call**: participants whose visit window is open and not complete, and who
either have at most :data:`CLOSING_SOON` days left or whose reminders are used up (every
message planned for the visit is sent, skipped or failed: no reminder is left to go).
The list names the study id, site, visit, days left, where their survey link stands and
the last message; never a contact: staff open those on the participant's identifiers
page, where each opening is audited.

The arm breakdown is made only for an unblinded user (the arm is opened with the
randomization key for them alone); a blinded user gets ``None`` and nothing that
names an arm.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from lumbar.errors import OperationError, Problem
from lumbar.operations.context import Service, Unit
from lumbar.operations.links import link_status
from lumbar.operations.outbox import PARTICIPANT
from lumbar.operations.schedule import VisitStatus, participant_statuses
from lumbar.operations.survey import LINK_STATUS_WORDS
from lumbar.store.schema import Allocation, OutboxMessage, Participant, SurveyToken

__all__ = ["CLOSING_SOON", "Completion", "FollowUp", "FollowUpService", "ToCall"]

CLOSING_SOON = 7
"""Days left in a window at which a participant who has not answered is worth a call (a
week: the reference protocol's last reminder goes three days before the close, so a
call a week before leaves time for both)."""

_COUNTED = ("complete", "due", "overdue", "missed")
"""The statuses of a visit whose window has opened and that is still expected."""


@dataclass(frozen=True)
class Completion:
    """One visit's completion in one group (every site, a site, or an arm)."""

    visit: str
    group: str
    """``all``, a site's code, or an arm's id."""
    label: str
    """What the group is called (``All sites``, the site's code, the arm's label)."""
    due: int
    """Participants whose window for the visit has opened (and who are still expected)."""
    complete: int

    @property
    def rate(self) -> float | None:
        """Complete of due, as a fraction; None when no one is due yet."""
        return self.complete / self.due if self.due else None


@dataclass(frozen=True)
class ToCall:
    """A participant worth a call about one visit (no contact details: see the module)."""

    study_id: str
    site: str
    visit: str
    status: str
    """``due`` or ``overdue`` (the window is open)."""
    closes: dt.date
    days_left: int
    """Days from the day asked about to the window's last day (0: it closes today)."""
    closing_soon: bool
    reminders_exhausted: bool
    link: str | None
    """Where the visit's latest survey link stands, in words (``sent``, ``opened``,
    ``partially answered`` ...); None when no link was issued."""
    last_message: str | None
    """The last message that went or was tried (``invitation``, ``reminder_1`` ...)."""
    last_message_status: str | None
    """``sent``, ``skipped`` (not sent: see the reason), ``failed`` or ``sending``."""
    last_message_reason: str | None
    """Why it was not sent (``no e-mail address in the vault`` ...), or its last error."""
    last_message_at: dt.datetime | None
    """When it was sent; None when it was not."""


@dataclass(frozen=True)
class FollowUp:
    """How follow-up stands at the user's sites on one day."""

    on: dt.date
    closing_within: int
    completion: tuple[Completion, ...]
    """Each follow-up visit, every site together."""
    by_site: tuple[Completion, ...]
    """Each follow-up visit at each of the user's sites (sites with randomized participants)."""
    by_arm: tuple[Completion, ...] | None
    """Each follow-up visit in each arm; None for a blinded user."""
    to_call: tuple[ToCall, ...]
    """Soonest closing first."""


class FollowUpService(Service):
    """The follow-up dashboard's numbers (read only, at the user's sites)."""

    def follow_up(self, on: dt.date | None = None, closing_within: int = CLOSING_SOON) -> FollowUp:
        """Completion of each follow-up visit (complete of due, due meaning its window has
        opened) overall, by site and, for an unblinded user only, by arm; and whom to call:
        open windows closing within ``closing_within`` days or whose reminders are used up."""
        if closing_within < 0:
            raise OperationError(
                "a look-ahead is a number of days",
                [
                    Problem(
                        "closing_within",
                        "must be 0 or more days",
                        closing_within,
                        f"e.g. {CLOSING_SOON}",
                    )
                ],
            )
        with self._unit("view", write=False) as unit:
            today = on or unit.now.date()
            codes = unit.site_codes()
            rows = unit.session.execute(
                unit.scope.visible(
                    select(Participant.id, Participant.study_id, Participant.site_id, Allocation)
                    .join(Allocation, Allocation.participant_id == Participant.id)
                    .order_by(Participant.study_id)
                )
            ).all()
            statuses = participant_statuses(unit, self.protocol, [row[0] for row in rows], today)
            arm_of: dict[str, str] | None = None
            if unit.scope.unblinded:  # a blinded user's arms are never opened
                arm_of = {str(row[1]): self._arm(row[3]) for row in rows}
            follow_ups = [visit.id for visit in self.protocol.follow_up_visits]
            overall, sites, arms = _Tally(), _Tally(), _Tally()
            for status in statuses:
                if status.status not in _COUNTED or status.opens > today:
                    continue
                done = status.status == "complete"
                overall.add(status.visit, "all", done)
                sites.add(status.visit, status.site, done)
                if arm_of is not None:
                    arms.add(status.visit, arm_of[status.study_id], done)
            site_codes = sorted({codes[row[2]] for row in rows})
            by_arm = None
            if arm_of is not None:
                by_arm = tuple(
                    arms.completion(visit, arm.id, arm.label)
                    for visit in follow_ups
                    for arm in self.protocol.arms
                )
            return FollowUp(
                today,
                closing_within,
                tuple(overall.completion(visit, "all", "All sites") for visit in follow_ups),
                tuple(
                    sites.completion(visit, code, code)
                    for visit in follow_ups
                    for code in site_codes
                ),
                by_arm,
                _to_call(
                    unit,
                    [s for s in statuses if s.status in ("due", "overdue") and s.opens <= today],
                    {str(row[1]): row[0] for row in rows},
                    today,
                    closing_within,
                ),
            )


def _to_call(
    unit: Unit,
    open_windows: Sequence[VisitStatus],
    participant_ids: dict[str, int],
    today: dt.date,
    closing_within: int,
) -> tuple[ToCall, ...]:
    """Of the open windows, those closing soon or with no reminder left (two queries)."""
    if not open_windows:
        return ()
    ids = sorted({participant_ids[status.study_id] for status in open_windows})
    links: dict[tuple[int, str], SurveyToken] = {}
    for token in unit.session.execute(
        select(SurveyToken).where(SurveyToken.participant_id.in_(ids)).order_by(SurveyToken.id)
    ).scalars():
        links[token.participant_id, token.visit] = token  # the latest wins
    messages: dict[tuple[int, str], list[OutboxMessage]] = {}
    for message in unit.session.execute(
        select(OutboxMessage)
        .where(
            OutboxMessage.participant_id.in_(ids),
            OutboxMessage.recipient_role == PARTICIPANT,
        )
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
    ).scalars():
        visit = str(message.payload.get("visit", ""))
        messages.setdefault((message.participant_id or 0, visit), []).append(message)
    calls = []
    for status in open_windows:
        key = (participant_ids[status.study_id], status.visit)
        days_left = (status.closes - today).days
        planned = messages.get(key, [])
        exhausted = bool(planned) and all(m.status not in _WAITING for m in planned)
        soon = days_left <= closing_within
        if not (soon or exhausted):
            continue
        tried = [m for m in planned if m.status != "queued"]
        last = tried[-1] if tried else None
        latest = links.get(key)
        link = None
        if latest is not None:
            raw = link_status(latest, unit.now)
            link = LINK_STATUS_WORDS.get(raw, raw)
        calls.append(
            ToCall(
                study_id=status.study_id,
                site=status.site,
                visit=status.visit,
                status=status.status,
                closes=status.closes,
                days_left=days_left,
                closing_soon=soon,
                reminders_exhausted=exhausted,
                link=link,
                last_message=None if last is None else str(last.payload.get("message")),
                last_message_status=None if last is None else last.status,
                last_message_reason=None if last is None else (last.reason or last.last_error),
                last_message_at=None if last is None else last.sent_at,
            )
        )
    return tuple(sorted(calls, key=lambda call: (call.days_left, call.study_id, call.visit)))


_WAITING = ("queued", "sending")
"""A participant's message still to go (or going)."""


class _Tally:
    """Counts of (visit, group) → [due, complete]."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = {}

    def add(self, visit: str, group: str, done: bool) -> None:
        counts = self.counts.setdefault((visit, group), [0, 0])
        counts[0] += 1
        counts[1] += int(done)

    def groups(self) -> set[str]:
        return {group for _, group in self.counts}

    def completion(self, visit: str, group: str, label: str) -> Completion:
        due, complete = self.counts.get((visit, group), [0, 0])
        return Completion(visit, group, label, due, complete)
