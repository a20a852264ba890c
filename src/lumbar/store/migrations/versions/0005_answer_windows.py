"""Each questionnaire's window status: where its completion date falls against its visit.

- ``questionnaire.window_status``: ``in_window``, ``early`` or ``late`` (None for the baseline,
  which is completed before the randomization its window counts from);
- ``questionnaire.days_from_target``: days from the visit's target day to completion.

Existing follow-up questionnaires are filled from the protocol frozen in the database
(its ``visits``: target day and window) and the participant's randomization date, the
way lumbar computes them when it stores a questionnaire
(:meth:`lumbar.protocol.Visit.timing`). The protocol is read as plain data here, not
through the current protocol model, so this migration keeps working on the protocol
format it was written for whatever the model becomes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import yaml
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("questionnaire", sa.Column("window_status", sa.String(length=16), nullable=True))
    op.add_column("questionnaire", sa.Column("days_from_target", sa.Integer(), nullable=True))
    _fill(op.get_bind())


def downgrade() -> None:
    # Not a batch (a copy of the table): answers and scores refer to the questionnaire rows.
    op.drop_column("questionnaire", "days_from_target")
    op.drop_column("questionnaire", "window_status")


def _fill(connection: sa.Connection) -> None:
    """Set the window status of every follow-up questionnaire whose visit the protocol has."""
    protocol_yaml = connection.execute(sa.text("SELECT protocol_yaml FROM trial")).scalar()
    if protocol_yaml is None:
        return  # a new, empty database
    # The YAML was checked (aliases and size bounded) when the trial was created from it.
    protocol: Any = yaml.safe_load(protocol_yaml)
    visits = protocol.get("visits") or []
    # (target day, first day, last day) of each follow-up visit; the first visit is the baseline.
    windows = {
        visit["id"]: (
            visit["day"],
            visit["day"] - visit["window"]["before"],
            visit["day"] + visit["window"]["after"],
        )
        for visit in visits[1:]
    }
    rows = connection.execute(
        sa.text(
            "SELECT questionnaire.id, questionnaire.visit, questionnaire.completed_on, "
            "allocation.randomized_on FROM questionnaire JOIN allocation "
            "ON allocation.participant_id = questionnaire.participant_id"
        )
    ).all()
    updates = []
    for questionnaire_id, visit, completed_on, randomized_on in rows:
        if visit not in windows:
            continue
        target, first, last = windows[visit]
        day = (_date(completed_on) - _date(randomized_on)).days
        window = "early" if day < first else "late" if day > last else "in_window"
        updates.append({"id": questionnaire_id, "window": window, "days": day - target})
    if updates:
        connection.execute(
            sa.text(
                "UPDATE questionnaire SET window_status = :window, days_from_target = :days "
                "WHERE id = :id"
            ),
            updates,
        )


def _date(value: Any) -> Any:
    """A date column's value as a date (SQLite hands back text through plain SQL)."""
    import datetime as dt  # noqa: PLC0415 - only where needed

    return dt.date.fromisoformat(value) if isinstance(value, str) else value
