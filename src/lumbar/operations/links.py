"""What every participant link shares: issuing, where it stands, listing, revoking.

::

    row, token = add_link(unit, ConsentToken, "lmc_", "consent_token.issue",
                          {"study_id": ..., "version": ...}, participant_id=..., ...)
    rows = participant_links(unit, SurveyToken, participant.id, SurveyToken.kind == "survey")
    [link_status(row, unit.now) for row in rows]           # "sent", "opened", "used", ...
    live = live_links(unit, ConsentToken, participant.id)  # unused and unrevoked
    revoke_links(unit, live, "consent_token.revoke", {"study_id": ..., "reason": "revoked"},
                 refusal=Problem("participant", "has no unused consent link", reference))

A participant holds three kinds of link: survey links and session-rating links (both rows
of ``survey_token``, told apart by ``kind``) and consent links (``consent_token``). Each
kind keeps its own rules where it is issued (who may issue it, when it opens and expires,
what it opens: :mod:`~lumbar.operations.survey`, :mod:`~lumbar.operations.ratings`,
:mod:`~lumbar.operations.consent`); the token itself is made and checked in
:mod:`~lumbar.operations.authentication`. This module holds what is the same for all of
them: storing a new link with its audit record, the status of a link at a time, noting
that it was opened, the live links of a participant, and revoking them (one audit record a
link, and the same refusal when there is none).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select

from lumbar.errors import OperationError, Problem
from lumbar.operations.authentication import new_token
from lumbar.operations.context import Transaction, Unit
from lumbar.store.schema import ConsentToken, SurveyToken

__all__ = [
    "LINK_STATUSES",
    "add_link",
    "link_status",
    "live_links",
    "note_opened",
    "participant_links",
    "revoke_links",
]

LINK_STATUSES = ("revoked", "used", "expired", "not open yet", "saved", "opened", "sent")
"""Where a link stands, in the order :func:`link_status` decides it."""

Link = TypeVar("Link", SurveyToken, ConsentToken)


def add_link(
    unit: Unit,
    model: type[Link],
    token_prefix: str,
    action: str,
    new: Mapping[str, Any],
    **fields: Any,
) -> tuple[Link, str]:
    """Store a new link of ``model`` with ``fields`` (whose it is, what it opens, when it
    expires), made by the unit's member of staff now with a new token of ``token_prefix``
    (only its digest is kept), and audit it as ``action``: ``new`` and the link's prefix,
    expiry and (a ``survey_token`` row's) opening. Returns the row and the token, to be shown
    this once."""
    token, prefix, digest = new_token(token_prefix)
    row = model(
        prefix=prefix, token_hash=digest, created_by=unit.scope.id, created_at=unit.now, **fields
    )
    unit.session.add(row)
    unit.session.flush()
    when = {"expires_at": row.expires_at.isoformat()}
    if isinstance(row, SurveyToken):
        when["opens_at"] = row.opens_at.isoformat()
    unit.audit(action, row.__tablename__, row.id, new={**new, "prefix": prefix, **when})
    return row, token


def link_status(row: SurveyToken | ConsentToken, now: dt.datetime) -> str:
    """Where a link stands at ``now``, from its timestamps: ``revoked``, ``used``,
    ``expired``, ``not open yet`` (before ``opens_at``; a consent link opens when issued),
    ``saved`` (answers saved through it, not submitted), ``opened`` or ``sent``; the first
    that holds, in that order. A session-rating link is never ``used`` nor ``saved`` (it is
    used again before each session and keeps no draft)."""
    opens_at = row.opens_at if isinstance(row, SurveyToken) else None
    saved = bool(row.draft) if isinstance(row, SurveyToken) else False
    if row.revoked_at is not None:
        return "revoked"
    if row.used_at is not None:
        return "used"
    if row.expires_at <= now:
        return "expired"
    if opens_at is not None and now < opens_at:
        return "not open yet"
    if saved:
        return "saved"
    return "opened" if row.opened_at is not None else "sent"


def note_opened(
    work: Transaction, row: SurveyToken | ConsentToken, action: str, new: Mapping[str, Any]
) -> None:
    """Note, the first time only, that the participant opened the link (audited as
    ``action`` with ``new``)."""
    if row.opened_at is None:
        row.opened_at = work.now
        work.audit(action, row.__tablename__, row.id, new=dict(new))


def participant_links(
    unit: Unit, model: type[Link], participant_id: int, *where: ColumnElement[bool]
) -> list[Link]:
    """The participant's links in ``model``'s table (narrowed by ``where``), oldest first."""
    return list(
        unit.session.execute(
            select(model).where(model.participant_id == participant_id, *where).order_by(model.id)
        ).scalars()
    )


def live_links(
    unit: Unit, model: type[Link], participant_id: int, *where: ColumnElement[bool]
) -> list[Link]:
    """The participant's unused, unrevoked links (narrowed by ``where``), oldest first."""
    return participant_links(
        unit,
        model,
        participant_id,
        model.used_at.is_(None),
        model.revoked_at.is_(None),
        *where,
    )


def revoke_links(
    unit: Unit,
    rows: Iterable[SurveyToken | ConsentToken],
    action: str,
    new: Mapping[str, Any],
    *,
    refusal: Problem | None = None,
) -> int:
    """Revoke ``rows`` now, by the unit's member of staff, each with an audit record
    ``action`` (old: the link's prefix; new: ``new``); returns how many were revoked.

    With ``refusal``, revoking none is refused (``no link to revoke``, naming the problem)
    and nothing changes."""
    count = 0
    for row in rows:
        row.revoked_at = unit.now
        row.revoked_by = unit.scope.id
        unit.audit(action, row.__tablename__, row.id, old={"prefix": row.prefix}, new=dict(new))
        count += 1
    if not count and refusal is not None:
        raise OperationError("no link to revoke", [refusal])
    return count
